"""Steps 4-5 of ML system design: model development, evaluation and promotion.

dataset.py     point-in-time training set from Feast, split by time
training.py    baselines, XGBoost with a time-bounded search, scoring on the test window
evaluation.py  metrics (NCE, log loss, ROC-AUC, PR-AUC, ECE), overall and per slice
tracking.py    the MLflow run: params, metrics, plots, lineage, git commit, card, model
registry.py    versions, @champion / @previous, decisions and their reasons
promotion.py   the gate: floors, margin over the champion, slice tolerance
report.py      what `mlops train --json` prints and the Prefect artifact shows

`flows/train.py` runs them in order; each is a plain function a test can call without Prefect.
"""

from models.dataset import training_end
from models.train_report import TrainReport

__all__ = ["TrainReport", "training_end"]
