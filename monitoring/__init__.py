"""Monitoring: step 7 of ML system design. The champion's reference against recent traffic.

window.py             the prediction log over a window, joined with the labels that have arrived
evidently_reports.py  Evidently: drift, performance and gate reports, HTML and the workspace
signals.py            what a window measured (drift, signals) and the verdict on it
gate.py               none | retrain | alert, with the reason, from the card's thresholds
history.py            past windows' verdicts, for "drift in k of the last n windows"
record.py             what a judged window leaves: reports, history, MLflow run, summary
live_evidence.py      the @challenger against the champion on the same live requests

The champion's reference sample is kept with its model: `mlops.stores.reference`.
"""

from monitoring.window import window_bounds

__all__ = ["window_bounds"]
