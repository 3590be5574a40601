"""Evidently's performance report runs for every task kind on the reference frame's shape,
including a multiclass window that lacks a rare class (Evidently's recall per class cannot)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlops.contracts.tasks import Binary, Multiclass, Regression, Task
from mlops.stores.reference import LABEL, prediction_columns
from monitoring.evidently_reports import performance_report

pytestmark = pytest.mark.integration

QUEUES = Multiclass(("billing", "delivery", "fraud"))
CONTEXT = {"timestamp": datetime(2026, 1, 2, tzinfo=UTC), "tags": [], "metadata": {}}


def window(task: Task, rows: int, seed: int, without: int | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    if task.classes:
        predictions = rng.dirichlet(np.ones(len(task.classes)), rows)
        labels = rng.choice([c for c in range(len(task.classes)) if c != without], rows)
    elif task.kind == "regression":
        labels = rng.lognormal(3, 0.5, rows)
        predictions = labels * rng.lognormal(0, 0.2, rows)
    else:
        predictions = rng.beta(2, 8, rows)
        labels = (rng.random(rows) < predictions).astype(int)
    return pd.DataFrame({**prediction_columns(task, predictions), LABEL: labels.astype(float)})


def metric_names(snapshot) -> set[str]:
    return {m["config"]["type"].rsplit(":", 1)[-1] for m in snapshot.dict()["metrics"]}


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (Binary(), {"RocAuc", "LogLoss"}),
        (Regression(), {"RMSE", "MAE", "R2Score", "MeanError", "ValueDrift"}),
        (QUEUES, {"Accuracy", "F1Score", "LogLoss", "RecallByLabel", "ValueDrift"}),
    ],
)
def test_each_kind_is_reported_in_its_own_terms(task: Task, expected: set[str]) -> None:
    snapshot = performance_report(window(task, 400, 1), window(task, 300, 2), task, **CONTEXT)
    assert metric_names(snapshot) == expected


def test_a_multiclass_window_without_a_rare_class_still_gets_its_report() -> None:
    current = window(QUEUES, 200, 3, without=QUEUES.classes.index("fraud"))
    snapshot = performance_report(window(QUEUES, 400, 4), current, QUEUES, **CONTEXT)
    assert metric_names(snapshot) == {"Accuracy", "F1Score", "LogLoss", "ValueDrift"}
