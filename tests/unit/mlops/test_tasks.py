"""The task kinds: each scores its predictions with a normalized primary metric that reads the
same way (1 is the best constant, 0 is perfect), and the card accepts only what its kind means."""

from __future__ import annotations

import shutil

import numpy as np
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


def test_a_use_case_of_a_kind_not_yet_served_is_refused_by_name(tmp_path) -> None:
    # diagnosis, declared in YAML, copied under another name with a regression card.
    source = load_use_case("diagnosis").package_dir
    target = tmp_path / "usecases" / "appraisal"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("data"))
    raw = yaml.safe_load((target / "card.yaml").read_text())
    raw["use_case"] = "appraisal"
    raw["task"] = {"kind": "regression"}
    raw["offline_metrics"] = {"primary": "nrmse", "secondary": ["rmse", "mae", "r2"]}
    raw["gates"]["promotion"]["floors"] = {"nrmse": {"max": 0.9}}
    (target / "card.yaml").write_text(yaml.safe_dump(raw))

    with pytest.raises(UserError, match=r"'appraisal' is a regression task.*binary use cases only"):
        load_use_case("appraisal", tmp_path)
