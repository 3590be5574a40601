"""Metrics of probability models: what training, the promotion gate and monitoring all score with.

NCE (normalized cross-entropy) is the log loss divided by the log loss of always predicting the
evaluated window's base rate: below 1 the model knows more than the base rate. Normalizing by the
window's own base rate makes models scored on the same window directly comparable.
ECE uses equal-mass bins: at a base rate of a few percent, equal-width bins would put almost
every prediction into the first bin and hide miscalibration.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Literal

import numpy as np

METRICS = ("nce", "log_loss", "roc_auc", "pr_auc", "ece")
# The metrics where lower is better, of every task kind (`mlops.contracts.tasks`); the others
# (areas under curves, accuracy, F1, R²) are better higher.
LOWER_IS_BETTER = frozenset({"nce", "log_loss", "ece", "nrmse", "rmse", "mae"})
ECE_BINS = 20
EPSILON = 1e-7

# A metric a card may name (primary, floors), whatever its task kind.
Metric = Literal[
    "nce", "log_loss", "roc_auc", "pr_auc", "ece",  # binary (nce and log_loss: multiclass too)
    "accuracy", "macro_f1",  # multiclass
    "nrmse", "rmse", "mae", "r2",  # regression
]  # fmt: skip


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(_row_log_losses(y, p)))


def _row_log_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def nce(y: np.ndarray, p: np.ndarray) -> float:
    return _normalized(log_loss(y, p), y)


def _normalized(loss: float, y: np.ndarray) -> float:
    """`loss` over the log loss of always predicting the window's base rate, on that window.

    That log loss is the binary entropy of the base rate, computed from it in closed form rather
    than in another pass over the rows (`resampled_scores` scores hundreds of resamples).
    """
    base_rate = float(np.mean(y))
    if base_rate in (0.0, 1.0):
        return math.nan
    q = min(max(base_rate, EPSILON), 1 - EPSILON)  # clipped as `log_loss` clips
    return loss / -(base_rate * math.log(q) + (1 - base_rate) * math.log(1 - q))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    return _ece(y, p, np.argsort(p, kind="stable"), bins)


def _ece(y: np.ndarray, p: np.ndarray, ascending: np.ndarray, bins: int = ECE_BINS) -> float:
    gaps = [
        abs(float(p[chunk].mean()) - float(y[chunk].mean())) * len(chunk)
        for chunk in np.array_split(ascending, min(bins, len(ascending)))
    ]
    return float(sum(gaps) / len(y))


def _areas(y: np.ndarray, p: np.ndarray, ascending: np.ndarray) -> tuple[float, float]:
    """ROC-AUC and PR-AUC (average precision, as scikit-learn defines it) from one sort.

    Tied scores form one threshold. Sorting once for every metric matters: the gate scores two
    models and a dozen slices on the test window, and sorting dominates.
    """
    order = ascending[::-1]
    scores, labels = p[order], y[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives = np.cumsum(labels)[last_of_each_score]
    false_positives = last_of_each_score + 1 - true_positives
    tpr = np.r_[0.0, true_positives / true_positives[-1]]
    fpr = np.r_[0.0, false_positives / false_positives[-1]]
    roc_auc = float(np.trapezoid(tpr, fpr))
    precision = true_positives / (true_positives + false_positives)
    pr_auc = float(np.sum(np.diff(tpr) * precision))  # recall is the true positive rate
    return roc_auc, pr_auc


def score(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """All metrics of predictions `p` against labels `y`; NaN where one class is absent."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    return _score(y, p, np.argsort(p, kind="stable"), log_loss(y, p))


def resampled_scores(
    y: np.ndarray, p: np.ndarray, resamples: int, rng: np.random.Generator
) -> Iterator[dict[str, float]]:
    """`score` of each of `resamples` resamples of the window: its rows drawn with replacement.

    For a bootstrap, without sorting or taking logs per resample: the rows are sorted and their
    log losses taken once, and a resample is built from how often each row was drawn, in place,
    so it comes out sorted.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    ascending = np.argsort(p, kind="stable")
    y, p = y[ascending], p[ascending]
    losses = _row_log_losses(y, p)
    rows = len(y)
    positions = np.arange(rows)
    for _ in range(resamples):
        counts = np.bincount(rng.integers(rows, size=rows), minlength=rows)
        drawn = np.repeat(positions, counts)
        # Not `counts @ losses`: BLAS threads made that 3x slower on a busy machine.
        yield _score(y[drawn], p[drawn], positions, float(np.mean(losses[drawn])))


def _score(y: np.ndarray, p: np.ndarray, ascending: np.ndarray, loss: float) -> dict[str, float]:
    """`score`, given the order of `p` and the log loss."""
    both_classes = 0 < y.sum() < len(y)
    roc_auc, pr_auc = _areas(y, p, ascending) if both_classes else (math.nan, math.nan)
    return {
        "nce": _normalized(loss, y),
        "log_loss": loss,
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "ece": _ece(y, p, ascending),
    }


def improvement(metric: str, challenger: float, champion: float) -> float:
    """How much better the challenger is; positive means better, whatever the direction."""
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def finite_or_none(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """For JSON: NaN (a metric undefined on one class) becomes null."""
    return {k: (None if math.isnan(v) else round(v, 6)) for k, v in metrics.items()}
