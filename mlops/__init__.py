"""The core every stage shares, in three layers (each imports only those below it):

config/     settings, errors, logging and process set-up
contracts/  what a use case is (card, tables, model inputs, batches) and the metrics it names
stores/     the offline and online stores, the MLflow registry and runs, the prediction log
compute/    the Ray engine (beside the stores)
"""
