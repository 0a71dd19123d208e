"""Local stand-ins for vendor services (tests and benchmarks only, never product code)."""
