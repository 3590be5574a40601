"""Steps 4-5 of ML system design: model development, evaluation and promotion.

dataset.py          point-in-time training set from Feast, split by time
training.py         baselines, XGBoost with a small search, scoring on the test window
training_engine.py  the engine `MLOPS_ENGINE` chooses for the join and the fit: local or Ray
distributed.py      the join and the fit on Ray: the same rows, the same model
evaluation.py       metrics overall and per slice
noise.py            seeded bootstrap intervals: how noisy a metric is on one window
promotion.py        the gate: floors, margin over the champion, slice tolerance
mlflow_logging.py   the MLflow run: params, metrics, plots, lineage, git commit, card, model
booster_pyfunc.py   the logged model's pyfunc: raw model inputs in, the service's scores out
train_report.py     what `mlops train --json` prints and the Prefect artifact shows

`flows/train.py` runs them in order; each is a plain function a test can call without Prefect.
The registry (versions, aliases, decisions) is shared with serving: `mlops.stores.registry`.
"""

from models.dataset import training_end
from models.train_report import TrainReport

__all__ = ["TrainReport", "training_end"]
