"""Throughput and memory benchmarks, side by side with other toolkits: ``python -m benchmarks.run``."""
