import math

import numpy as np
import pandas as pd
import pytest

from mlops.contracts.metrics import (
    expected_calibration_error,
    improvement,
    log_loss,
    nce,
    resampled_scores,
    score,
)
from mlops.contracts.tasks import Binary
from models.evaluation import evaluate


@pytest.fixture
def calibrated() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.2, 200_000)
    return (rng.random(len(p)) < p).astype(float), p


def test_nce_is_one_for_the_base_rate_and_below_for_a_model_that_knows_more(calibrated):
    y, p = calibrated
    assert nce(y, np.full(len(y), y.mean())) == pytest.approx(1.0)
    assert nce(y, p) < 0.97


def test_nce_is_undefined_without_both_classes():
    assert math.isnan(nce(np.zeros(10), np.full(10, 0.1)))


def test_calibrated_predictions_have_small_ece_and_shifted_ones_do_not(calibrated):
    y, p = calibrated
    assert expected_calibration_error(y, p) < 0.003
    assert expected_calibration_error(y, p * 1.5) == pytest.approx(0.5 * p.mean(), rel=0.1)


def test_score_reports_every_metric_and_nan_where_a_class_is_missing(calibrated):
    y, p = calibrated
    assert set(score(y, p)) == {"nce", "log_loss", "roc_auc", "pr_auc", "ece"}
    assert math.isnan(score(np.zeros(5), np.full(5, 0.1))["roc_auc"])


def test_evaluate_scores_each_slice_and_flattens_to_mlflow_keys(calibrated):
    y, p = calibrated
    device = pd.Series(np.where(np.arange(len(y)) % 4 == 0, "tablet", "mobile"))
    evaluation = evaluate(y, p, Binary(), {"device": device})
    assert evaluation.slice_rows == {"device=mobile": 150_000, "device=tablet": 50_000}
    flat = evaluation.flat("champion.")
    assert "champion.nce" in flat and "champion.slice.device.tablet.roc_auc" in flat


@pytest.mark.parametrize(
    ("metric", "challenger", "champion", "better"),
    [("nce", 0.90, 0.92, True), ("ece", 0.02, 0.01, False), ("roc_auc", 0.75, 0.70, True)],
)
def test_improvement_is_positive_when_better_whatever_the_direction(
    metric, challenger, champion, better
):
    assert (improvement(metric, challenger, champion) > 0) is better


def test_areas_under_curves_match_scikit_learn_with_ties():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)
    p = rng.integers(0, 50, 5000) / 50  # many tied scores
    y = (rng.random(5000) < p * 0.3).astype(float)
    metrics = score(y, p)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)


def test_nce_divides_by_the_log_loss_of_the_base_rate(calibrated):
    y, p = calibrated
    assert nce(y, p) == pytest.approx(log_loss(y, p) / log_loss(y, np.full(len(y), y.mean())))


def test_resampled_scores_are_the_scores_of_the_drawn_rows(calibrated):
    y, p = calibrated[0][:5000], calibrated[1][:5000]
    draws = np.random.default_rng(4)
    ascending = np.argsort(p, kind="stable")
    for scored in resampled_scores(y, p, 3, np.random.default_rng(4)):
        # The same draws, of the rows in the order of their scores.
        drawn = ascending[draws.integers(len(y), size=len(y))]
        assert scored == pytest.approx(score(y[drawn], p[drawn]), rel=1e-9)
