"""Bootstrap intervals of the floor metrics: seeded, around what the window measured, cheap."""

import math

import numpy as np
import pytest

from mlops.contracts.card import Floor, PromotionGate
from mlops.contracts.metrics import score
from mlops.contracts.tasks import Binary
from models.noise import Bootstrap, bootstrap_intervals, floor_intervals

BINARY = Binary()

FLOOR_METRICS = ("nce", "roc_auc", "ece")


def window(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and a slightly miscalibrated model's predictions, a few percent positive."""
    rng = np.random.default_rng(seed)
    truth = rng.beta(1.2, 20, rows)
    return (rng.random(rows) < truth).astype(float), np.clip(truth * 1.2, 0, 1)


def test_intervals_are_deterministic_with_a_seed():
    y, p = window(3000)
    first = bootstrap_intervals(y, p, FLOOR_METRICS, 100, 0.9, BINARY, seed=7)
    assert first == bootstrap_intervals(y, p, FLOOR_METRICS, 100, 0.9, BINARY, seed=7)
    assert first != bootstrap_intervals(y, p, FLOOR_METRICS, 100, 0.9, BINARY, seed=8)
    assert (first.rows, first.resamples, first.confidence) == (3000, 100, 0.9)


@pytest.mark.parametrize("rows", [1000, 20_000])
def test_each_interval_contains_what_the_window_measured(rows):
    y, p = window(rows)
    measured = score(y, p)
    noise = bootstrap_intervals(y, p, FLOOR_METRICS, 200, 0.9, BINARY)
    for metric in FLOOR_METRICS:
        interval = noise.intervals[metric]
        assert measured[metric] in interval, (metric, measured[metric], interval)
        assert interval.low < interval.high


def test_intervals_narrow_with_more_rows_and_widen_with_confidence():
    small, large = window(1000), window(20_000)
    width = {
        (rows, confidence): bootstrap_intervals(*w, ["nce"], 200, confidence, BINARY)
        for rows, w in (("small", small), ("large", large))
        for confidence in (0.8, 0.95)
    }

    def span(noise: Bootstrap) -> float:
        return noise.intervals["nce"].high - noise.intervals["nce"].low

    assert span(width["large", 0.8]) < span(width["small", 0.8]) / 2
    assert span(width["small", 0.8]) < span(width["small", 0.95])


def test_intervals_agree_with_scoring_rows_drawn_one_by_one():
    y, p = window(2000, seed=3)
    rng = np.random.default_rng(11)
    naive = np.array(
        [
            [score(y[idx], p[idx])[m] for m in FLOOR_METRICS]
            for idx in rng.integers(len(y), size=(400, len(y)))
        ]
    )
    ours = bootstrap_intervals(y, p, FLOOR_METRICS, 400, 0.9, BINARY, seed=1)
    for metric, samples in zip(FLOOR_METRICS, naive.T, strict=True):
        # The same spread; ours is moved by the resamples' bias (large for ECE only).
        low, high = np.quantile(samples, [0.05, 0.95])
        interval = ours.intervals[metric]
        assert interval.high - interval.low == pytest.approx(high - low, rel=0.25), metric


def test_a_window_without_both_classes_has_undefined_intervals():
    noise = bootstrap_intervals(np.zeros(500), np.full(500, 0.1), FLOOR_METRICS, 50, 0.9, BINARY)
    assert math.isnan(noise.intervals["roc_auc"].low)
    assert math.isnan(noise.intervals["nce"].high)
    ece = noise.intervals["ece"]  # defined on one class: every resample is off by 0.1
    assert (ece.low, ece.high) == pytest.approx((0.1, 0.1))
    assert 0.5 not in noise.intervals["roc_auc"]  # NaN bounds contain nothing


def test_the_gate_bootstraps_exactly_its_floor_metrics():
    gate = PromotionGate(
        min_improvement=0.0,
        floors={"log_loss": Floor(max=0.5), "pr_auc": Floor(min=0.05)},
        slice_tolerance=0.01,
        min_slice_rows=100,
        bootstrap_resamples=30,
        bootstrap_confidence=0.8,
    )
    noise = floor_intervals(*window(1000), gate, BINARY, seed=2)
    assert set(noise.intervals) == {"log_loss", "pr_auc"}
    assert (noise.resamples, noise.confidence) == (30, 0.8)
