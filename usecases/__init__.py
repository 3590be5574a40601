"""Use cases: each package here is one ML problem the platform runs (see mlops/usecase.py)."""
