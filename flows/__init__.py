"""Prefect flows: one per lifecycle step, each a thin sequence of stage functions.

ingest.py         new batches: validated, bad rows quarantined, features stored, a summary each
train.py          training set, baselines and XGBoost, promotion gate, decision record
predict.py        batch prediction: a table of rows scored by one model version
monitor.py        a window against the champion's reference, the verdict, retraining on it
promote.py        human overrides of the promotion gate: promote a version, roll back
dispatch.py       run a flow here (local profile) or through its deployment (server profile)
deployments.py    prefect.yaml's deployments, and `mlops deploy` that registers them
serve.py          `python -m flows.serve`: the deployments on their schedules, one process
prefect_names.py  a flow run's name and its artifacts' keys
"""
