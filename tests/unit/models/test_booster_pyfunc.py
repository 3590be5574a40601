"""The logged model's pyfunc (models/booster_pyfunc.py) on a small booster saved to a folder:
raw model inputs in (categories as strings), the service's probabilities out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.contracts.model_inputs import as_float, as_frame, category_codes, predict
from models import booster_pyfunc

CATEGORIES = {"device": ("mobile", "desktop", "tablet"), "country": ("DE", "FR", "US", "BR")}
SCORE = "click_probability"


@pytest.fixture(scope="module")
def booster():
    """Trained on categorical inputs as training fits them (pandas categoricals), early
    stopped, so that the trees after its best round exist but must not count."""
    import xgboost as xgb

    rng = np.random.default_rng(0)
    n = 4000
    inputs = {
        "device": rng.integers(0, 3, n).astype(np.float32),
        "country": rng.integers(0, 4, n).astype(np.float32),
        "position": rng.integers(1, 6, n).astype(np.float32),
        "ctr": rng.normal(size=n).astype(np.float32),
    }
    inputs["ctr"][::20] = np.nan
    inputs["device"][::37] = np.nan
    frame = as_frame(inputs, CATEGORIES)
    logit = -1 + (inputs["device"] == 1) - 0.3 * inputs["position"] + np.nan_to_num(inputs["ctr"])
    labels = rng.random(n) < 1 / (1 + np.exp(-logit))
    train = xgb.DMatrix(frame[:3000], labels[:3000], enable_categorical=True)
    validation = xgb.DMatrix(frame[3000:], labels[3000:], enable_categorical=True)
    params = {"objective": "binary:logistic", "tree_method": "hist", "eta": 0.3, "seed": 0}
    params |= {"max_cat_to_onehot": 8}
    booster = xgb.train(
        params, train, 200, evals=[(validation, "v")], early_stopping_rounds=3, verbose_eval=False
    )
    assert booster.best_iteration + 1 < booster.num_boosted_rounds()
    return booster


@pytest.fixture(scope="module")
def raw_rows() -> pd.DataFrame:
    """Model inputs as the prediction log records them: categories as strings, None missing."""
    return pd.DataFrame(
        {
            "device": ["mobile", "desktop", "tablet", None, "desktop", "phone"],
            "country": ["DE", "US", "BR", "FR", None, "DE"],
            "position": [1.0, 3.0, 5.0, 2.0, 4.0, 1.0],
            "ctr": [0.5, None, -1.2, 0.0, 2.0, 0.1],
        }
    )


@pytest.fixture(scope="module")
def saved(booster, raw_rows, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pyfunc") / "model"
    booster_pyfunc.save_model(
        booster,
        str(path),
        categories={**CATEGORIES, "not_an_input": ("a",)},
        score_name=SCORE,
        input_example=raw_rows.head(3),
        metadata={"serving_defaults": {"device": "mobile"}},
        pip_requirements=["xgboost", "pandas"],
    )
    return path


def served_scores(booster, rows: pd.DataFrame) -> np.ndarray:
    """As the service scores: category codes and floats stacked into one float32 matrix."""
    columns = [
        category_codes(rows[name].to_numpy(object), CATEGORIES[name])
        if name in CATEGORIES
        else as_float(rows[name].to_numpy(np.float64, na_value=np.nan))
        for name in booster.feature_names
    ]
    best = booster.best_iteration + 1
    return booster.inplace_predict(np.column_stack(columns), iteration_range=(0, best))


def test_the_pyfunc_scores_raw_inputs_as_the_service_and_training_do(booster, raw_rows, saved):
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(saved))
    scores = model.predict(raw_rows)
    assert list(scores.columns) == [SCORE]
    np.testing.assert_allclose(scores[SCORE], served_scores(booster, raw_rows), rtol=0, atol=1e-6)
    codes = {
        name: category_codes(raw_rows[name].to_numpy(object), CATEGORIES[name])
        if name in CATEGORIES
        else as_float(raw_rows[name].to_numpy(np.float64, na_value=np.nan))
        for name in booster.feature_names
    }
    trained_way = predict(booster, as_frame(codes, CATEGORIES))
    np.testing.assert_allclose(scores[SCORE], trained_way, rtol=0, atol=1e-6)
    # Its own input example, as MLflow gives it back.
    example = model.input_example
    np.testing.assert_allclose(
        model.predict(example)[SCORE], served_scores(booster, example), rtol=0, atol=1e-6
    )


def test_unknown_and_missing_values_and_left_out_columns_read_as_missing(raw_rows, saved):
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(saved))
    unknown = raw_rows.assign(device="phone")
    missing = raw_rows.assign(device=None)
    left_out = raw_rows.drop(columns=["device"])
    expected = model.predict(missing)[SCORE]
    for rows in (unknown, left_out):
        np.testing.assert_allclose(model.predict(rows)[SCORE], expected, rtol=0, atol=1e-6)
    # float32 numbers (training's model inputs) score as float64 ones (a JSON client's).
    narrow = raw_rows.assign(ctr=raw_rows["ctr"].astype(np.float32))
    np.testing.assert_allclose(
        model.predict(narrow)[SCORE], model.predict(raw_rows)[SCORE], rtol=0, atol=1e-6
    )


def test_the_model_keeps_its_native_flavor_and_says_what_a_caller_sends(booster, saved):
    import mlflow.xgboost
    from mlflow.models import Model

    mlmodel = Model.load(str(saved / "MLmodel"))
    pyfunc = mlmodel.flavors["python_function"]
    assert pyfunc["loader_module"] == "booster_pyfunc"
    assert (saved / pyfunc["code"] / "booster_pyfunc.py").is_file()
    assert pyfunc["config"] == {
        "categories": {name: list(values) for name, values in CATEGORIES.items()},
        "score_name": SCORE,
        "classes": [],  # one probability per row, not a multiclass model's
    }
    assert mlmodel.flavors["xgboost"]["model_format"] == "ubj"
    assert mlmodel.metadata == {"serving_defaults": {"device": "mobile"}}
    native = mlflow.xgboost.load_model(str(saved))
    assert native.save_raw("ubj") == booster.save_raw("ubj")

    signature = mlmodel.signature
    assert signature is not None
    assert {c.name: (c.type.name, c.required) for c in signature.inputs.inputs} == {
        "device": ("string", False),
        "country": ("string", False),
        "position": ("double", False),
        "ctr": ("double", False),
    }
    assert [(c.name, c.type.name) for c in signature.outputs.inputs] == [(SCORE, "double")]


def test_a_base_margin_is_kept_in_the_model_and_added_by_every_scorer(tmp_path: Path) -> None:
    """A booster trained from a base margin (log-odds effects): training's `predict`, the
    service's matrix path and the pyfunc give the same probabilities, after a save and load;
    a missing effect counts as none."""
    import xgboost as xgb

    from mlops.contracts.card import TrainingBudget
    from mlops.contracts.model_inputs import BaseMargin
    from mlops.contracts.tasks import Binary
    from models.training import fit_xgboost
    from serving.model_loading import ServedModel

    rng = np.random.default_rng(1)
    n = 4000
    inputs = {
        "device": rng.integers(0, 3, n).astype(np.float32),
        "effect": rng.normal(0, 1, n).astype(np.float32),
    }
    inputs["effect"][::25] = np.nan
    frame = as_frame(inputs, {"device": CATEGORIES["device"]})
    logit = -2 + np.nan_to_num(inputs["effect"]) + 0.5 * (inputs["device"] == 1)
    labels = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int))
    margin = BaseMargin.for_training(["effect"], float(labels[:3000].mean()))
    budget = TrainingBudget(
        train_days=1, validation_days=1, test_days=1, time_budget_seconds=60,
        search_trials=1, early_stopping_rounds=5, baseline_max_rows=1000,
    )  # fmt: skip
    fitted = fit_xgboost(
        frame[:3000], labels[:3000], frame[3000:], labels[3000:], budget, Binary(), margin=margin
    )
    saved = tmp_path / "model.ubj"
    fitted.booster.save_model(str(saved))
    booster = xgb.Booster(model_file=str(saved))
    assert BaseMargin.of(booster) == margin

    expected = predict(booster, frame)
    without_margin = booster.inplace_predict(frame, iteration_range=(0, booster.best_iteration + 1))
    assert not np.allclose(expected, without_margin, atol=1e-3)  # the margin counts
    matrix = np.column_stack([inputs[name] for name in booster.feature_names or []])
    served = ServedModel("m", "1", booster, {}).predict(matrix)
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-6)
    scorer = booster_pyfunc.BoosterScorer(booster, {"device": CATEGORIES["device"]}, SCORE)
    raw = pd.DataFrame(
        {
            "device": pd.Categorical.from_codes(
                np.nan_to_num(inputs["device"], nan=-1).astype(int), CATEGORIES["device"]
            ).astype(object),
            "effect": inputs["effect"],
        }
    )
    np.testing.assert_allclose(scorer.predict(raw)[SCORE], expected, rtol=0, atol=1e-6)
    # Contributions sum to the margin; the effect's own value counts as its contribution.
    from mlops.contracts.model_inputs import contributions

    explained = contributions(booster, frame)
    assert explained.shape == (n, 3)  # device, effect, bias
    full = booster.inplace_predict(
        frame,
        iteration_range=(0, booster.best_iteration + 1),
        predict_type="margin",
        base_margin=margin.frame_margin(frame),
    )
    np.testing.assert_allclose(explained.sum(axis=1), full, rtol=1e-6, atol=1e-6)
    effect = np.nan_to_num(inputs["effect"])
    assert np.corrcoef(explained[:, 1], effect)[0, 1] > 0.95
    # A missing effect is no effect: the trees start from the intercept alone.
    missing = frame.iloc[[0]].assign(effect=np.float32(np.nan))
    assert margin.frame_margin(missing).tolist() == [margin.intercept]
