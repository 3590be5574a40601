"""Use cases: each package here is one ML problem the platform runs
(its interface: mlops/contracts/usecase.py)."""
