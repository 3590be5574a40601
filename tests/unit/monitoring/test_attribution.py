"""Attribution shift on a real booster: shares of the mean |TreeSHAP contribution|."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from monitoring.attribution import attribution_shares, attribution_shift

CATEGORIES = {"slot": ["top", "side"]}


@pytest.fixture(scope="module")
def frame_and_booster() -> tuple[pd.DataFrame, xgb.Booster]:
    rng = np.random.default_rng(0)
    rows = 4_000
    frame = pd.DataFrame(
        {
            "strong": rng.normal(size=rows),
            "weak": rng.normal(size=rows),
            "slot": rng.choice(CATEGORIES["slot"], size=rows),
        }
    )
    margin = 2.0 * frame["strong"] + 0.5 * frame["weak"] + (frame["slot"] == "top") * 0.5
    labels = rng.random(rows) < 1 / (1 + np.exp(-margin))
    inputs = frame.assign(slot=pd.Categorical(frame["slot"], categories=CATEGORIES["slot"]))
    matrix = xgb.DMatrix(inputs, label=labels, enable_categorical=True)
    params = {"objective": "binary:logistic", "max_depth": 3, "nthread": 1}
    return frame, xgb.train(params, matrix, num_boost_round=30)


def test_shares_sum_to_one_and_rank_the_inputs_as_the_world_does(frame_and_booster):
    frame, booster = frame_and_booster
    shares = attribution_shares(booster, CATEGORIES, frame)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["strong"] > shares["weak"] > 0 and shares["slot"] > 0


def test_the_same_traffic_does_not_shift_and_a_held_input_does(frame_and_booster):
    frame, booster = frame_and_booster
    assert attribution_shift(booster, CATEGORIES, frame, frame.iloc[::-1]).distance < 1e-6
    # The strong input held at its mean: the model's reasons move to the others.
    held = frame.assign(strong=0.0)
    shift = attribution_shift(booster, CATEGORIES, frame, held)
    assert shift.distance > 0.3
    assert shift.moved()[0].startswith("strong ")
    assert shift.window["strong"] < shift.reference["strong"] / 3
