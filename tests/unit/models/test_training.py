from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlops.contracts.card import TrainingBudget
from mlops.contracts.tasks import Binary
from models.dataset import TimeWindows, frame_hash
from models.training import (
    SearchOutOfTime,
    candidate_params,
    fit_linear,
    fit_xgboost,
    predict,
    predict_linear,
    search,
)

BUDGET = TrainingBudget(
    time_budget_seconds=30,
    search_trials=3,
    early_stopping_rounds=5,
    baseline_max_rows=1000,
    train_days=5,
    validation_days=1,
    test_days=1,
)


def test_windows_follow_each_other_and_end_at_the_given_time():
    end = datetime(2026, 1, 8, tzinfo=UTC)
    windows = TimeWindows.ending_at(end, BUDGET)
    assert windows.train_start == datetime(2026, 1, 1, tzinfo=UTC)
    assert windows.validation_start == datetime(2026, 1, 6, tzinfo=UTC)
    assert windows.test_start == datetime(2026, 1, 7, tzinfo=UTC)
    assert windows.end == end


def test_frame_hash_changes_with_content_not_with_the_index():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert frame_hash(frame) == frame_hash(frame.set_axis([5, 6]))
    assert frame_hash(frame) != frame_hash(frame.assign(a=[1, 3]))


def test_search_candidates_start_with_the_defaults_and_are_seeded():
    assert candidate_params(4, seed=1) == candidate_params(4, seed=1)
    assert candidate_params(4, seed=1)[0] == candidate_params(4, seed=2)[0]
    assert len({str(p) for p in candidate_params(6, seed=1)}) == 6


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    n = 6000
    device = rng.choice(["mobile", "desktop"], n)
    x = rng.normal(size=n)
    logit = -2 + 1.5 * (device == "mobile") + x
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int))
    frame = pd.DataFrame(
        {"device": pd.Categorical(device, categories=["mobile", "desktop"]), "x": x}
    )
    frame.loc[::50, "x"] = np.nan
    return frame, y


def test_xgboost_keeps_the_best_trial_and_its_categories(data, tmp_path):
    import xgboost as xgb

    x, y = data
    fitted = fit_xgboost(x[:4000], y[:4000], x[4000:], y[4000:], BUDGET, Binary(), seed=0)
    assert len(fitted.trials) == 3
    best = min(t.validation_loss for t in fitted.trials)
    assert fitted.rounds == next(t.rounds for t in fitted.trials if t.validation_loss == best)
    # Saved and loaded, the model still maps categories by value, whatever their order.
    fitted.booster.save_model(tmp_path / "model.ubj")
    loaded = xgb.Booster(model_file=str(tmp_path / "model.ubj"))
    reordered = x[4000:].assign(device=x[4000:]["device"].astype(str).astype("category"))
    np.testing.assert_allclose(predict(loaded, reordered), predict(fitted.booster, x[4000:]))


def test_logistic_baseline_handles_missing_and_unseen_values(data):
    x, y = data
    model = fit_linear(x, y, max_rows=2000, task=Binary())
    unseen = x.head(3).assign(device=pd.Categorical([None, "mobile", "desktop"]))
    p = predict_linear(model, unseen, Binary())
    assert ((p > 0) & (p < 1)).all()


def test_the_search_runs_every_trial_or_stops_saying_so_never_fewer():
    """A time budget spent before the last trial stops the run with a message: choosing among
    the trials that fitted in time would make the model depend on the machine's load."""
    import time
    from types import SimpleNamespace

    fits = []

    def slow_fit(params):  # a booster early-stopped at its first round, after a while
        fits.append(params)
        time.sleep(0.05)
        return SimpleNamespace(best_iteration=0, best_score=0.5)

    tight = BUDGET.model_copy(update={"time_budget_seconds": 0.01})
    with pytest.raises(SearchOutOfTime, match=r"after 1 of its 3 trials.*time_budget_seconds"):
        search(slow_fit, tight, Binary(), seed=1)
    fits.clear()
    assert len(search(slow_fit, BUDGET, Binary(), seed=1).trials) == 3 == len(fits)


def test_the_same_data_and_seed_give_the_same_trees_beside_two_busy_processes(data):
    """Training does not depend on the machine's load: the same trees with two CPU-bound
    processes running as without."""
    import subprocess
    import sys

    x, y = data
    split = 4000
    quiet = fit_xgboost(x[:split], y[:split], x[split:], y[split:], BUDGET, Binary(), seed=3)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = fit_xgboost(x[:split], y[:split], x[split:], y[split:], BUDGET, Binary(), seed=3)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert len(loaded.trials) == len(quiet.trials) == BUDGET.search_trials
    assert loaded.booster.get_dump() == quiet.booster.get_dump()
