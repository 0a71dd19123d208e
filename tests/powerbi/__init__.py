"""Power BI sink tests: emulator validations, limiter, batcher, sink, dataset upkeep, faults, burst."""
