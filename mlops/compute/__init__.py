"""Compute engines beyond one process: Ray for the join, the fit and materialization."""
