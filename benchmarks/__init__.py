"""Benchmarks of the data path and of training; `make bench` runs `python -m benchmarks`."""
