"""The model stage follows the task kind: a multiclass and a regression model are searched,
scored against the task's two baselines, bootstrapped and gated with the same functions as a
binary one, and beat both baselines on data with a signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.contracts.card import Floor, PromotionGate, TrainingBudget
from mlops.contracts.model_inputs import contributions, predict
from mlops.contracts.tasks import Multiclass, Regression, Task, repeated
from models import training
from models.evaluation import evaluate
from models.mlflow_logging import plots
from models.noise import bootstrap_intervals
from models.promotion import decide
from models.training import fit_linear, fit_xgboost, predict_linear

BUDGET = TrainingBudget(
    time_budget_seconds=30,
    search_trials=1,
    early_stopping_rounds=5,
    baseline_max_rows=2000,
    train_days=5,
    validation_days=1,
    test_days=1,
)
ROWS = 4_500  # train 3,000, validation 750, test 750


def _inputs(rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "region": pd.Categorical(rng.choice(["north", "south", "coast"], ROWS)),
            "size": rng.normal(size=ROWS),
        }
    )
    frame.loc[::40, "size"] = np.nan  # a missing value both models must take
    return frame


def _species(inputs: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    """Three classes of unequal size, driven by both inputs, not linearly (an interaction and a
    curve a linear model cannot draw)."""
    size = inputs["size"].fillna(0).to_numpy()
    coast = (inputs["region"] == "coast").to_numpy()
    logits = np.column_stack(
        [np.full(ROWS, 1.0), 1.5 * np.abs(size) - 0.5, -0.5 + 2.5 * coast * (size > 0)]
    )
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return pd.Series([rng.choice(3, p=row) for row in p])


def _price(inputs: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    """A skewed positive target: log-normal around a region effect and a size slope."""
    region = inputs["region"].map({"north": 0.0, "south": 0.4, "coast": 0.9}).astype(float)
    mean = 3 + region + 0.5 * inputs["size"].fillna(0) ** 2
    return pd.Series(np.exp(mean + rng.normal(0, 0.3, ROWS)))


@pytest.mark.parametrize(
    ("task", "labels"),
    [(Multiclass(("heron", "ibis", "stork")), _species), (Regression(), _price)],
    ids=["multiclass", "regression"],
)
def test_a_model_of_each_kind_beats_its_baselines_and_passes_its_gate(task: Task, labels) -> None:
    rng = np.random.default_rng(5)
    x = _inputs(rng)
    y = labels(x, rng).astype(task.label_dtype)
    train, validation, test = slice(0, 3000), slice(3000, 3750), slice(3750, ROWS)

    fitted = fit_xgboost(x[train], y[train], x[validation], y[validation], BUDGET, task)
    linear = fit_linear(x[train], y[train], BUDGET.baseline_max_rows, task)
    predictions = {
        "model": predict(fitted.booster, x[test]),
        "linear": predict_linear(linear, x[test], task),
        "prior": repeated(task.constant(y[train].to_numpy()), len(y[test])),
    }
    shape = (len(y[test]), 3) if task.kind == "multiclass" else (len(y[test]),)
    assert all(p.shape == shape for p in predictions.values())
    # Explanations: per class for a multiclass model; a row's sum is its margin.
    explained = contributions(fitted.booster, x[test])
    assert explained.shape == (*shape, 3)  # region, size, bias
    margin = fitted.booster.inplace_predict(
        x[test], iteration_range=(0, fitted.rounds), predict_type="margin"
    )
    # float32 sums: within 1e-6 of the margin, relative to it where it is large (a price).
    np.testing.assert_allclose(explained.sum(axis=-1), margin, rtol=1e-6, atol=1e-6)

    scores = {
        name: evaluate(y[test], p, task).metrics[task.primary] for name, p in predictions.items()
    }
    assert scores["prior"] == pytest.approx(1.0, abs=0.05)  # the best constant, fitted on train
    assert scores["model"] < scores["linear"] < scores["prior"]

    noise = bootstrap_intervals(y[test], predictions["model"], [task.primary], 100, 0.9, task)
    assert scores["model"] in noise.intervals[task.primary]

    expected_plots = {
        "multiclass": {"confusion_matrix"},
        "regression": {"predicted_vs_actual", "residuals"},
    }[task.kind] | {"feature_importance"}
    importance = training.importance(fitted.booster, x[test])
    assert set(importance) == {"region", "size"} and all(v > 0 for v in importance.values())
    assert set(plots(task, y[test].to_numpy(), predictions, importance)) == expected_plots

    floor = {task.primary: Floor(max=0.95)}
    gate = PromotionGate(min_improvement=0.01, floors=floor, slice_tolerance=0.1, min_slice_rows=1)
    decision = decide(evaluate(y[test], predictions["model"], task), None, gate, task.primary)
    assert decision.promote, decision.reason
