"""Stores: offline and online features, the MLflow registry and runs, the prediction log, batch
prediction's scores."""
