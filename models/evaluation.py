"""Offline evaluation of a model on one window, overall and per slice; the metrics themselves
are the task's (`mlops.contracts.tasks`), shared with monitoring."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops.contracts.tasks import Task


@dataclass(frozen=True)
class Evaluation:
    """Metrics on one window, overall and for every slice (`dimension=value`)."""

    metrics: dict[str, float]
    slices: dict[str, dict[str, float]] = field(default_factory=dict)
    slice_rows: dict[str, int] = field(default_factory=dict)

    def flat(self, prefix: str = "") -> dict[str, float]:
        """Metric name -> value, slices as `slice.<dimension>.<value>.<metric>` (MLflow keys)."""
        out = {f"{prefix}{name}": value for name, value in self.metrics.items()}
        for key, metrics in self.slices.items():
            dimension, value = key.split("=", 1)
            for name, metric in metrics.items():
                out[f"{prefix}slice.{dimension}.{value}.{name}"] = metric
        return out


def evaluate(
    y: np.ndarray | pd.Series,
    p: np.ndarray,
    task: Task,
    slices: Mapping[str, pd.Series] | None = None,
) -> Evaluation:
    """The task's metrics of predictions `p` against labels `y`, overall and per slice."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    per_slice: dict[str, dict[str, float]] = {}
    rows: dict[str, int] = {}
    for dimension, labels in (slices or {}).items():
        labels = np.asarray(labels.astype("string").fillna("<missing>"), dtype=object)
        for value in sorted(set(labels)):
            mask = labels == value
            key = f"{dimension}={value}"
            per_slice[key] = task.score(y[mask], p[mask])
            rows[key] = int(mask.sum())
    return Evaluation(metrics=task.score(y, p), slices=per_slice, slice_rows=rows)
