"""Stores: offline and online features, the MLflow registry and runs, the prediction log."""
