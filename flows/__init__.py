"""Prefect flows: one per lifecycle step, each a thin sequence of stage functions."""
