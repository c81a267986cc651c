"""Load-test harness and benchmarks."""
