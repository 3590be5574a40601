"""Evidently's performance report runs for every task kind on the reference frame's shape,
including a multiclass window that lacks a rare class (Evidently's recall per class cannot), and
every dashboard panel finds its metric in a day's reports."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlops.contracts.tasks import Binary, Multiclass, Regression, Task
from mlops.stores.reference import LABEL, prediction_columns
from monitoring.evidently_reports import dashboard_panels, drift_report, performance_report

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
    inputs = {"age": rng.normal(40, 10, rows), "device": rng.choice(["ios", "web"], rows)}
    return pd.DataFrame(
        {**inputs, **prediction_columns(task, predictions), LABEL: labels.astype(float)}
    )


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


@pytest.mark.parametrize("task", [Binary(), Regression(), QUEUES], ids=lambda t: t.kind)
def test_every_dashboard_panel_draws_a_metric_the_days_reports_carry(task: Task) -> None:
    """The gate's lines come from the gate report (tests/unit/monitoring/); every other line
    names a metric, and the column it is about, that the drift or performance report ran."""
    reference, current = window(task, 400, 5), window(task, 300, 6)
    categorical = {"device"} | ({"score"} if task.classes else set())
    drift, _ = drift_report(reference, current, categorical, 0.1, 0.1, **CONTEXT)
    performance = performance_report(reference, current, task, **CONTEXT)
    ran = {
        (m["config"]["type"].rsplit(":", 1)[-1], m["config"].get("column"))
        for snapshot in (drift, performance)
        for m in snapshot.dict()["metrics"]
    }
    lines = [
        (line.metric.rsplit(":", 1)[-1], line.metric_labels.get("column"))
        for panel in dashboard_panels("drill", task, ["device"])
        for line in getattr(panel, "values", [])
        if not line.tags
    ]
    assert lines and not [line for line in lines if line not in ran], ran
