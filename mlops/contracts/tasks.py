"""The task kinds: what a label is, what a model predicts for it, and how that is scored.

A card names its task (`task.kind`); a stage asks the task object (`UseCase.task`) instead of
branching on the kind itself:

    binary       a two-valued label coded 0/1; a prediction is P(label = 1), one per row
    multiclass   one of the card's `classes`, coded by its place in the list; a prediction is one
                 probability per class, a row summing to 1
    regression   a number; a prediction is a number

Every kind has a normalized primary metric that reads the same way: below 1, the model knows
more than the best constant on the window scored (the base rate, the class frequencies, the
mean). `nce` (normalized cross-entropy) for both classification kinds, the binary one being its
two-class case; `nrmse` (RMSE over that of the window's mean) for regression.

Each kind also has its two baselines: the best constant fitted on the training labels (`prior`)
and a linear model on the same inputs (logistic, multinomial logistic, ridge).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from mlops.contracts import metrics as binary_metrics

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.base import BaseEstimator

TaskKind = Literal["binary", "multiclass", "regression"]
# XGBoost objectives a regression card may choose, with the evaluation metric early stopping
# watches for each (the objective's own loss).
REGRESSION_OBJECTIVES: dict[str, str] = {
    "reg:squarederror": "rmse",
    "reg:absoluteerror": "mae",
    "count:poisson": "poisson-nloglik",
    "reg:tweedie": "tweedie-nloglik@1.5",
}
# These predict a mean through a log link: never below 0.
LOG_LINK_OBJECTIVES = ("count:poisson", "reg:tweedie")
MULTICLASS_METRICS = ("nce", "log_loss", "accuracy", "macro_f1")
REGRESSION_METRICS = ("nrmse", "rmse", "mae", "r2")
Scores = dict[str, float]


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

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes a prediction gives a probability for, in code order (multiclass); empty
        when a prediction is one number per row."""
        ...

    @property
    def label_dtype(self) -> str:
        """What the label column holds once landed: class codes or numbers."""
        ...

    @property
    def prediction(self) -> str:
        """What one prediction is, in words: the infra check names it when a served one is not."""
        ...

    def valid_prediction(self, value: float) -> bool:
        """Whether a served value can be this task's prediction (finite; a probability in 0..1;
        a count's mean at least 0)."""
        ...

    def xgboost_params(self) -> dict[str, Any]: ...

    def constant(self, train_y: np.ndarray) -> np.ndarray:
        """The prior baseline: one row's prediction, fitted on the training labels."""
        ...

    def score(self, y: np.ndarray, predictions: np.ndarray) -> Scores: ...

    def resampled_scores(
        self, y: np.ndarray, predictions: np.ndarray, resamples: int, rng: np.random.Generator
    ) -> Iterator[Scores]:
        """`score` of each of `resamples` bootstrap resamples of the window's rows."""
        ...

    def linear_baseline(self) -> BaseEstimator:
        """The linear model the challenger must beat, unfitted (the last step of a pipeline)."""
        ...

    def linear_predictions(self, fitted: Any, inputs: pd.DataFrame) -> np.ndarray: ...


def repeated(constant: np.ndarray, rows: int) -> np.ndarray:
    """The prior baseline's predictions for `rows` rows."""
    return np.broadcast_to(constant, (rows, *np.shape(constant))).copy()


@dataclass(frozen=True)
class Binary:
    classes: tuple[str, ...] = ()  # one probability per row: P(label = 1)
    kind: TaskKind = "binary"
    metrics: tuple[str, ...] = binary_metrics.METRICS
    primary: str = "nce"
    label_dtype: str = "int8"
    prediction: str = "a probability"

    def valid_prediction(self, value: float) -> bool:
        return math.isfinite(value) and 0 <= value <= 1

    def xgboost_params(self) -> dict[str, Any]:
        return {"objective": "binary:logistic", "eval_metric": "logloss"}

    def constant(self, train_y: np.ndarray) -> np.ndarray:
        return np.asarray(np.mean(train_y), dtype=np.float64)

    def score(self, y: np.ndarray, predictions: np.ndarray) -> Scores:
        return binary_metrics.score(y, predictions)

    def resampled_scores(
        self, y: np.ndarray, predictions: np.ndarray, resamples: int, rng: np.random.Generator
    ) -> Iterator[Scores]:
        # Sorts once for all resamples: the gate bootstraps hundreds of them.
        return binary_metrics.resampled_scores(y, predictions, resamples, rng)

    def linear_baseline(self) -> BaseEstimator:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=500)

    def linear_predictions(self, fitted: Any, inputs: pd.DataFrame) -> np.ndarray:
        return np.asarray(fitted.predict_proba(inputs)[:, 1])


@dataclass(frozen=True)
class Multiclass:
    classes: tuple[str, ...]
    kind: TaskKind = "multiclass"
    metrics: tuple[str, ...] = MULTICLASS_METRICS
    primary: str = "nce"
    label_dtype: str = "int16"
    prediction: str = "a probability per class"

    def valid_prediction(self, value: float) -> bool:
        return math.isfinite(value) and 0 <= value <= 1

    def xgboost_params(self) -> dict[str, Any]:
        return {
            "objective": "multi:softprob",
            "eval_metric": "mlogloss",
            "num_class": len(self.classes),
        }

    def constant(self, train_y: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.asarray(train_y, dtype=np.int64), minlength=len(self.classes))
        return counts / counts.sum()

    def score(self, y: np.ndarray, predictions: np.ndarray) -> Scores:
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

    def resampled_scores(
        self, y: np.ndarray, predictions: np.ndarray, resamples: int, rng: np.random.Generator
    ) -> Iterator[Scores]:
        return _resampled(self.score, y, predictions, resamples, rng)

    def linear_baseline(self) -> BaseEstimator:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=500)  # multinomial for three or more classes

    def linear_predictions(self, fitted: Any, inputs: pd.DataFrame) -> np.ndarray:
        """One column per card class, zeros for a class the training rows never held."""
        probabilities = np.zeros((len(inputs), len(self.classes)))
        probabilities[:, fitted.classes_.astype(int)] = fitted.predict_proba(inputs)
        return probabilities


@dataclass(frozen=True)
class Regression:
    objective: str = "reg:squarederror"
    classes: tuple[str, ...] = ()
    kind: TaskKind = "regression"
    metrics: tuple[str, ...] = REGRESSION_METRICS
    primary: str = "nrmse"
    label_dtype: str = "float64"
    prediction: str = "a number"

    def valid_prediction(self, value: float) -> bool:
        return math.isfinite(value) and (value >= 0 or self.objective not in LOG_LINK_OBJECTIVES)

    def xgboost_params(self) -> dict[str, Any]:
        return {"objective": self.objective, "eval_metric": REGRESSION_OBJECTIVES[self.objective]}

    def constant(self, train_y: np.ndarray) -> np.ndarray:
        # The mean minimises squared error; under absolute error the median is the best constant.
        centre = np.median if self.objective == "reg:absoluteerror" else np.mean
        return np.asarray(centre(np.asarray(train_y, dtype=np.float64)))

    def score(self, y: np.ndarray, predictions: np.ndarray) -> Scores:
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

    def resampled_scores(
        self, y: np.ndarray, predictions: np.ndarray, resamples: int, rng: np.random.Generator
    ) -> Iterator[Scores]:
        return _resampled(self.score, y, predictions, resamples, rng)

    def linear_baseline(self) -> BaseEstimator:
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)

    def linear_predictions(self, fitted: Any, inputs: pd.DataFrame) -> np.ndarray:
        return np.asarray(fitted.predict(inputs), dtype=np.float64)


def _resampled(
    score: Callable[[np.ndarray, np.ndarray], Scores],
    y: np.ndarray,
    predictions: np.ndarray,
    resamples: int,
    rng: np.random.Generator,
) -> Iterator[Scores]:
    rows = len(y)
    for _ in range(resamples):
        drawn = rng.integers(rows, size=rows)
        yield score(y[drawn], predictions[drawn])


def task_for(kind: TaskKind, classes: Sequence[str] = (), objective: str | None = None) -> Task:
    """The task object a card's `task` section describes (validated there)."""
    if kind == "multiclass":
        return Multiclass(tuple(classes))
    if kind == "regression":
        return Regression(objective or "reg:squarederror")
    return Binary()
