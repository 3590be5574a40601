"""Benchmarks for the data path; `make bench` runs `python -m benchmarks`."""
