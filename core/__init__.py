"""Pure domain: model, rules and use cases. No I/O, no clock, no framework."""
