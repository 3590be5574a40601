"""Monitoring: step 7 of ML system design. The champion's reference against recent traffic.

reference.py  a sample of the champion's test window (inputs, scores, labels), kept with it
window.py     the prediction log over a window, joined with the labels that have arrived
report.py     Evidently: drift, data summary, classification; HTML and workspace snapshots
gate.py       none | retrain | alert, with the reason, from the card's thresholds
history.py    past windows' verdicts, for "drift in k of the last n windows"
"""

from monitoring.window import window_bounds

__all__ = ["window_bounds"]
