"""The task kinds: what a label is, what a model predicts for it, and how that is scored.

A card names its task (`task.kind`); a stage asks the task object (`task_for(card.task)`) instead
of branching on the kind itself:

    binary       a two-valued label coded 0/1; predictions are P(label = 1), one per row
    multiclass   one of the card's `classes`, coded by position; predictions are one probability
                 per class, a row summing to 1
    regression   a number; predictions are numbers

Every kind has a normalized primary metric that reads the same way: below 1, the model knows
more than the best constant on the window scored (the base rate, the class frequencies, the
mean). `nce` (normalized cross-entropy) for both classification kinds, the binary one being its
two-class case; `nrmse` (RMSE over the window mean's RMSE) for regression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from mlops.contracts import metrics as binary_metrics

TaskKind = Literal["binary", "multiclass", "regression"]
# XGBoost objectives a regression card may choose, with the evaluation metric early stopping
# watches for each (the objective's own loss).
REGRESSION_OBJECTIVES: dict[str, str] = {
    "reg:squarederror": "rmse",
    "reg:absoluteerror": "mae",
    "count:poisson": "poisson-nloglik",
    "reg:tweedie": "tweedie-nloglik@1.5",
}
MULTICLASS_METRICS = ("nce", "log_loss", "accuracy", "macro_f1")
REGRESSION_METRICS = ("nrmse", "rmse", "mae", "r2")


class Task(Protocol):
    """What every stage asks of a task kind."""

    @property
    def kind(self) -> TaskKind: ...

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric `score` returns (per-class recalls aside)."""
        ...

    @property
    def primary(self) -> str:
        """The normalized metric: below 1 beats the best constant."""
        ...

    def xgboost_params(self) -> dict[str, Any]: ...

    def constant(self, train_y: np.ndarray) -> np.ndarray:
        """The prior baseline's prediction for one row, fitted on the training labels."""
        ...

    def score(self, y: np.ndarray, predictions: np.ndarray) -> dict[str, float]: ...


@dataclass(frozen=True)
class Binary:
    kind: TaskKind = "binary"
    metrics: tuple[str, ...] = binary_metrics.METRICS
    primary: str = "nce"

    def xgboost_params(self) -> dict[str, Any]:
        return {"objective": "binary:logistic", "eval_metric": "logloss"}

    def constant(self, train_y: np.ndarray) -> np.ndarray:
        return np.array([float(np.mean(train_y))])

    def score(self, y: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        return binary_metrics.score(y, predictions)


@dataclass(frozen=True)
class Multiclass:
    classes: tuple[str, ...]
    kind: TaskKind = "multiclass"
    metrics: tuple[str, ...] = MULTICLASS_METRICS
    primary: str = "nce"

    def xgboost_params(self) -> dict[str, Any]:
        return {
            "objective": "multi:softprob",
            "eval_metric": "mlogloss",
            "num_class": len(self.classes),
        }

    def constant(self, train_y: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.asarray(train_y, dtype=np.int64), minlength=len(self.classes))
        return counts / counts.sum()

    def score(self, y: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        """`predictions`: rows x classes probabilities; `recall.<class>` for each class too
        (NaN for a class absent from the window)."""
        y = np.asarray(y, dtype=np.int64)
        p = np.clip(np.asarray(predictions, dtype=np.float64), binary_metrics.EPSILON, 1)
        p = p / p.sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.log(p[np.arange(len(y)), y])))
        frequencies = np.bincount(y, minlength=len(self.classes)) / len(y)
        present = frequencies[frequencies > 0]
        entropy = float(-np.sum(present * np.log(present)))
        predicted = p.argmax(axis=1)
        recalls, f1s = {}, []
        for index, name in enumerate(self.classes):
            actual, chosen = y == index, predicted == index
            hits = int(np.sum(actual & chosen))
            recall = hits / actual.sum() if actual.any() else math.nan
            precision = hits / chosen.sum() if chosen.any() else 0.0
            recalls[f"recall.{name}"] = recall
            if actual.any():  # macro-F1 over the classes the window holds
                both = precision + recall
                f1s.append(2 * precision * recall / both if both else 0.0)
        return {
            "nce": loss / entropy if entropy > 0 else math.nan,
            "log_loss": loss,
            "accuracy": float(np.mean(predicted == y)),
            "macro_f1": float(np.mean(f1s)),
            **recalls,
        }


@dataclass(frozen=True)
class Regression:
    objective: str = "reg:squarederror"
    kind: TaskKind = "regression"
    metrics: tuple[str, ...] = REGRESSION_METRICS
    primary: str = "nrmse"

    def xgboost_params(self) -> dict[str, Any]:
        return {"objective": self.objective, "eval_metric": REGRESSION_OBJECTIVES[self.objective]}

    def constant(self, train_y: np.ndarray) -> np.ndarray:
        # The mean minimises squared error; under absolute error the median is the best constant.
        centre = np.median if self.objective == "reg:absoluteerror" else np.mean
        return np.array([float(centre(np.asarray(train_y, dtype=np.float64)))])

    def score(self, y: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        y = np.asarray(y, dtype=np.float64)
        errors = np.asarray(predictions, dtype=np.float64) - y
        rmse = float(np.sqrt(np.mean(errors**2)))
        spread = float(np.std(y))  # the RMSE of predicting the window's own mean
        return {
            "nrmse": rmse / spread if spread > 0 else math.nan,
            "rmse": rmse,
            "mae": float(np.mean(np.abs(errors))),
            "r2": 1 - (rmse / spread) ** 2 if spread > 0 else math.nan,
        }


def task_for(kind: TaskKind, classes: Sequence[str] = (), objective: str | None = None) -> Task:
    """The task object a card's `task` section describes (validated there)."""
    if kind == "multiclass":
        return Multiclass(tuple(classes))
    if kind == "regression":
        return Regression(objective or "reg:squarederror")
    return Binary()
