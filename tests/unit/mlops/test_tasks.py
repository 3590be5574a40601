"""The task kinds: each scores its predictions with a normalized primary metric that reads the
same way (1 is the best constant, 0 is perfect), and the card accepts only what its kind means."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from mlops.config.errors import UserError
from mlops.contracts import metrics
from mlops.contracts.card import RequirementsCard, TaskSpec
from mlops.contracts.tasks import Binary, Multiclass, Regression, repeated
from mlops.contracts.usecase import load_use_case

RNG = np.random.default_rng(3)
SPECIES = ("heron", "ibis", "stork")


def test_binary_is_the_platforms_probability_metrics() -> None:
    y = RNG.integers(0, 2, 500)
    p = RNG.uniform(0.01, 0.99, 500)
    assert Binary().score(y, p) == pytest.approx(metrics.score(y, p), nan_ok=True)
    assert Binary().constant(y) == pytest.approx(y.mean())


def test_multiclass_class_frequencies_score_one_and_the_truth_near_zero() -> None:
    task = Multiclass(SPECIES)
    y = np.repeat([0, 1, 2], [600, 300, 100])  # classes of unequal size
    constant = repeated(task.constant(y), len(y))
    frequencies = task.score(y, constant)
    assert frequencies["nce"] == pytest.approx(1.0)
    assert frequencies["accuracy"] == pytest.approx(0.6)  # the biggest class, always
    assert frequencies["recall.heron"] == 1.0 and frequencies["recall.stork"] == 0.0

    truth = task.score(y, np.eye(3)[y])
    assert truth["nce"] < 1e-5
    assert truth["accuracy"] == truth["macro_f1"] == 1.0


def test_a_class_absent_from_the_window_has_no_recall_and_leaves_macro_f1_alone() -> None:
    y = np.array([0, 0, 1, 1])
    scores = Multiclass(SPECIES).score(y, np.eye(3)[y])
    assert np.isnan(scores["recall.stork"])
    assert scores["macro_f1"] == 1.0


def test_regression_mean_scores_one_and_the_truth_zero() -> None:
    y = RNG.lognormal(3, 1, 2_000)  # a skewed target
    task = Regression()
    mean = task.score(y, np.full_like(y, y.mean()))
    assert mean["nrmse"] == pytest.approx(1.0) and mean["r2"] == pytest.approx(0.0)
    assert task.score(y, y) == pytest.approx({"nrmse": 0.0, "rmse": 0.0, "mae": 0.0, "r2": 1.0})
    # Under absolute error the best constant is the median, not the mean.
    assert Regression("reg:absoluteerror").constant(y) == pytest.approx(np.median(y))


@pytest.mark.parametrize(
    ("task", "labels"),
    [
        (Multiclass(SPECIES), RNG.integers(0, 3, 300)),
        (Regression(), RNG.normal(10, 2, 300)),
        (Regression("count:poisson"), RNG.poisson(3, 300)),
        (Regression("reg:tweedie"), RNG.poisson(1, 300) * RNG.gamma(2, 1, 300)),
    ],
    ids=["multiclass", "squared-error", "poisson", "tweedie"],
)
def test_xgboost_trains_with_each_kinds_parameters(task, labels) -> None:
    import xgboost as xgb

    x = RNG.normal(size=(len(labels), 3))
    data = xgb.DMatrix(x, labels)
    booster = xgb.train(task.xgboost_params(), data, num_boost_round=5, evals=[(data, "train")])
    predictions = booster.predict(data)
    scores = task.score(labels, predictions)
    assert set(task.metrics) <= set(scores)
    assert scores[task.primary] < 1.0  # it learnt something on its own training rows


def test_a_card_without_a_task_is_binary_and_its_metrics_must_be_its_tasks(tmp_path) -> None:
    raw = yaml.safe_load((load_use_case("adclick").package_dir / "card.yaml").read_text())
    raw.pop("task", None)
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert RequirementsCard.load(path).task.kind == "binary"

    raw["task"] = {"kind": "regression"}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationError, match="regression task is scored by nrmse"):
        RequirementsCard.load(path)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"kind": "multiclass"}, "lists its classes"),
        ({"kind": "multiclass", "classes": ["yes", "no"]}, "two are a binary task"),
        ({"kind": "multiclass", "classes": ["a", "b", "a"]}, "three or more distinct"),
        ({"kind": "binary", "classes": ["a", "b", "c"]}, "belongs to a multiclass task"),
        ({"kind": "regression", "objective": "multi:softprob"}, "one of"),
        ({"kind": "binary", "objective": "reg:squarederror"}, "regression task's"),
    ],
)
def test_a_task_section_that_does_not_fit_its_kind_is_refused(section, message) -> None:
    with pytest.raises(ValidationError, match=message):
        TaskSpec.model_validate(section)


def _diagnosis_as(tmp_path, name: str, task: dict, label: dict) -> None:
    """diagnosis, declared in YAML, copied under another name with another task and label."""
    source = load_use_case("diagnosis").package_dir
    target = tmp_path / "usecases" / name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("data"))
    card = yaml.safe_load((target / "card.yaml").read_text())
    card |= {"use_case": name, "task": task}
    primary = "nrmse" if task["kind"] == "regression" else "nce"
    card["offline_metrics"] = {"primary": primary, "secondary": []}
    card["gates"]["promotion"]["floors"] = {primary: {"max": 0.9}}
    (target / "card.yaml").write_text(yaml.safe_dump(card))
    contract = yaml.safe_load((target / "contract.yaml").read_text())
    contract["label"] = label
    (target / "contract.yaml").write_text(yaml.safe_dump(contract))


def test_a_contract_label_that_does_not_fit_the_cards_kind_is_refused(tmp_path) -> None:
    label = {"column": "malignant", "positive": ["Yes"], "negative": ["No"]}
    _diagnosis_as(tmp_path, "misfit", {"kind": "regression"}, label)
    with pytest.raises(UserError, match="task is regression, so the label names no positive"):
        load_use_case("misfit", tmp_path)


def test_each_kind_lands_its_label_as_its_task_codes_it(tmp_path) -> None:
    _diagnosis_as(tmp_path, "appraisal", {"kind": "regression"}, {"column": "malignant"})
    appraisal = load_use_case("appraisal", tmp_path)
    table = load_use_case("diagnosis").data_files[0]
    frame = pd.read_csv(table, nrows=4)

    frame["malignant"] = ["12.5", 3, None, "7"]
    landed = appraisal.conform("examinations", frame)["malignant"]
    assert landed.tolist()[:2] == [12.5, 3.0] and landed.isna().tolist() == [0, 0, 1, 0]
    frame["malignant"] = ["12.5", "a lot", None, "7"]
    with pytest.raises(UserError, match=r"column 'malignant' holds 1 value\(s\) that are not"):
        appraisal.conform("examinations", frame)


def test_a_multiclass_label_lands_as_its_place_in_the_cards_classes(tmp_path) -> None:
    from mlops.contracts.tabular import LabelMapping, _labels

    label, task = LabelMapping(column="species"), Multiclass(SPECIES)
    landed = _labels(pd.Series(["Stork", "heron", None, "ibis"]), label, task)
    assert landed.tolist() == [2, 0, pd.NA, 1]
    with pytest.raises(UserError, match=r"none of the card's classes.*'crane'"):
        _labels(pd.Series(["heron", "crane"]), label, task)


@pytest.mark.parametrize("task", [Binary(), Regression(), Multiclass(SPECIES)])
def test_predictions_round_trip_through_the_reference_frame(task) -> None:
    from mlops.stores.reference import SCORE, prediction_columns, predictions_of

    predictions = RNG.dirichlet(np.ones(len(task.classes)), 5) if task.classes else RNG.random(5)
    frame = pd.DataFrame(prediction_columns(task, predictions))
    np.testing.assert_array_equal(predictions_of(task, frame), predictions)
    if task.classes:  # the predicted class, a category Evidently drifts on
        assert list(frame[SCORE]) == [SPECIES[i] for i in predictions.argmax(axis=1)]
