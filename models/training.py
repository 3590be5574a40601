"""Model fitting: two baselines, then XGBoost with a small time-bounded search.

Baselines come first because a model is only worth serving if it beats them: `prior` predicts
the best constant for everyone (the training base rate, class frequencies or mean), `linear` is
a regularized linear model on the same inputs (logistic, multinomial logistic, ridge: the task
kind's). XGBoost uses `hist`, native categoricals (the categories are saved inside the model) and
early stopping on the validation window. The search is seeded and runs the card's number of
trials, every one of them, so the same data gives the same model on a quiet machine and a busy
one; the card's time budget is a guard against a runaway search: spent before the last trial,
it stops the run with a message instead of choosing among fewer trials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.config.errors import UserError
from mlops.contracts.card import MonitoringGate, PromotionGate, TrainingBudget
from mlops.contracts.model_inputs import BaseMargin, contributions, predict
from mlops.contracts.tasks import Task, repeated
from mlops.contracts.usecase import UseCase
from mlops.stores.reference import build_reference
from models.dataset import TrainingSet
from models.evaluation import Evaluation, evaluate
from models.noise import Bootstrap, floor_intervals

if TYPE_CHECKING:
    import xgboost as xgb
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

MAX_ROUNDS = 2000
# The objective and the metric early stopping watches come from the task (`xgboost_params`).
BASE_PARAMS: dict[str, Any] = {
    "tree_method": "hist",
    "max_cat_to_onehot": 8,
}
# The first trial: sensible defaults, so even a one-trial budget trains a reasonable model.
DEFAULT_PARAMS: dict[str, Any] = {
    "eta": 0.1,
    "max_depth": 6,
    "min_child_weight": 5,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "lambda": 1.0,
}
SEARCH_SPACE: dict[str, tuple[Any, ...]] = {
    "eta": (0.05, 0.1, 0.2),
    "max_depth": (3, 4, 6, 8),
    "min_child_weight": (1, 5, 20, 50),
    "subsample": (0.7, 0.85, 1.0),
    "colsample_bytree": (0.6, 0.8, 1.0),
    "lambda": (0.5, 1.0, 5.0),
}


@dataclass(frozen=True)
class Splits:
    """Model inputs and labels per window; `test` keeps the full rows for slices and oracle."""

    train_x: pd.DataFrame
    train_y: pd.Series
    validation_x: pd.DataFrame
    validation_y: pd.Series
    test_x: pd.DataFrame
    test_y: pd.Series
    test: pd.DataFrame


def prepare_splits(
    training_set: TrainingSet, use_case: UseCase, exclude_features: tuple[str, ...] = ()
) -> Splits:
    """The use case's model inputs for each window, minus `exclude_features`."""
    inputs = use_case.input_frame(training_set.frame)
    if unknown := sorted(set(exclude_features) - set(inputs.columns)):
        raise UserError(
            f"cannot exclude unknown feature(s) {unknown}; the model's inputs are "
            f"{list(inputs.columns)}"
        )
    inputs = inputs.drop(columns=list(exclude_features))
    labels = training_set.frame[use_case.label].astype(use_case.task.label_dtype)
    # Windows are contiguous row ranges of the time-sorted frame: positional slices, no copies.
    ranges = {}
    for name in ("train", "validation", "test"):
        window = training_set.window(name)
        start = training_set.frame.index.get_loc(window.index[0])
        ranges[name] = slice(start, start + len(window))
    return Splits(
        train_x=inputs.iloc[ranges["train"]],
        train_y=labels.iloc[ranges["train"]],
        validation_x=inputs.iloc[ranges["validation"]],
        validation_y=labels.iloc[ranges["validation"]],
        test_x=inputs.iloc[ranges["test"]],
        test_y=labels.iloc[ranges["test"]],
        test=training_set.window("test"),
    )


@dataclass(frozen=True)
class Trial:
    params: dict[str, Any]
    validation_loss: float
    rounds: int
    seconds: float


@dataclass
class FittedXGBoost:
    booster: xgb.Booster
    params: dict[str, Any]
    rounds: int
    trials: list[Trial] = field(default_factory=list)

    @property
    def feature_names(self) -> list[str]:
        return list(self.booster.feature_names or [])


def candidate_params(
    trials: int, seed: int, first: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """The defaults (with the card's `first` trial over them), then seeded random draws from
    the search space (no repeats)."""
    if unknown := sorted(set(first or {}) - set(DEFAULT_PARAMS)):
        raise UserError(
            f"training.first_trial: unknown parameter(s) {unknown}; it may set "
            f"{', '.join(DEFAULT_PARAMS)}"
        )
    rng = np.random.default_rng(seed)
    integers = {name for name, value in DEFAULT_PARAMS.items() if isinstance(value, int)}
    chosen = {name: int(v) if name in integers else v for name, v in (first or {}).items()}
    candidates = [{**DEFAULT_PARAMS, **chosen}]
    attempts = 0
    while len(candidates) < trials and attempts < 100 * trials:
        attempts += 1
        draw = {name: values[rng.integers(len(values))] for name, values in SEARCH_SPACE.items()}
        draw = {k: v.item() if hasattr(v, "item") else v for k, v in draw.items()}
        if draw not in candidates:
            candidates.append(draw)
    return candidates


def base_margin(
    use_case: UseCase, feature_names: list[str], base_rate: Callable[[], float]
) -> BaseMargin | None:
    """The use case's base margin over the inputs the model keeps (`base_rate()`: the training
    labels' mean), or None if it has none."""
    inputs = [name for name in use_case.base_margin if name in feature_names]
    if not inputs:
        return None
    if use_case.task.kind != "binary":
        raise UserError(
            f"{use_case.name}: a base margin (log-odds effects {inputs}) needs a binary task, "
            f"not {use_case.task.kind}"
        )
    return BaseMargin.for_training(inputs, base_rate())


def training_matrix(
    inputs: pd.DataFrame, labels: pd.Series, margin: BaseMargin | None = None
) -> xgb.DMatrix:
    """What XGBoost trains on: the inputs (categoricals as such), the labels and, if the model
    has one, each row's base margin."""
    import xgboost as xgb

    start = margin.frame_margin(inputs) if margin else None
    return xgb.DMatrix(inputs, labels, enable_categorical=True, base_margin=start)


def fit_xgboost(
    train_x: pd.DataFrame,
    train_y: pd.Series,
    validation_x: pd.DataFrame,
    validation_y: pd.Series,
    budget: TrainingBudget,
    task: Task,
    seed: int = 0,
    threads: int | None = None,
    margin: BaseMargin | None = None,
) -> FittedXGBoost:
    """Try every candidate in order; keep the one with the lowest validation loss (the task's
    evaluation metric). With a `margin`, the trees start from it, and the booster keeps it."""
    train = training_matrix(train_x, train_y, margin)
    validation = training_matrix(validation_x, validation_y, margin)

    def fit(params: dict[str, Any]) -> xgb.Booster:
        threaded = {**params, **({"nthread": threads} if threads else {})}
        return boost(threaded, train, validation, budget.early_stopping_rounds)

    fitted = search(fit, budget, task, seed)
    if margin:
        margin.save_in(fitted.booster)
    return fitted


def boost(
    params: dict[str, Any],
    train: xgb.DMatrix,
    validation: xgb.DMatrix,
    early_stopping_rounds: int,
) -> xgb.Booster:
    """One trial: boost until the validation loss (the task's `eval_metric`) stops improving
    (both engines)."""
    import xgboost as xgb

    return xgb.train(
        params,
        train,
        num_boost_round=MAX_ROUNDS,
        evals=[(validation, "validation")],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )


class SearchOutOfTime(UserError):
    """The card's time budget was spent before the search's last trial."""


def search(
    fit: Callable[[dict[str, Any]], xgb.Booster],
    budget: TrainingBudget,
    task: Task,
    seed: int = 0,
    out_of_time: Callable[[bool], bool] = bool,
) -> FittedXGBoost:
    """The search itself, whatever fits each trial (here, or on Ray Train's workers:
    `models.distributed`): `fit(params)` returns a booster early-stopped on the validation
    window. `out_of_time(this process's verdict)` is the verdict the search obeys (Ray's
    workers all obey their first's, so they stop together): `SearchOutOfTime`, never a model
    chosen among fewer trials, which would depend on the machine's load."""
    started = time.perf_counter()
    best: tuple[Trial, xgb.Booster, dict[str, Any]] | None = None
    trials: list[Trial] = []
    for params in candidate_params(budget.search_trials, seed, budget.first_trial):
        spent = time.perf_counter() - started
        if trials and out_of_time(spent > budget.time_budget_seconds):
            raise SearchOutOfTime(
                f"the model search spent {spent:.0f} s, over the card's time budget of "
                f"{budget.time_budget_seconds:g} s, after {len(trials)} of its "
                f"{budget.search_trials} trials; a model is chosen among all of them or none "
                "(fewer would make the model depend on the machine's load): raise "
                "training.time_budget_seconds or lower search_trials in the card"
            )
        trial_started = time.perf_counter()
        full_params = {**BASE_PARAMS, **task.xgboost_params(), **params, "seed": seed}
        booster = fit(full_params)
        rounds = booster.best_iteration + 1
        trial = Trial(
            params=params,
            validation_loss=float(booster.best_score),
            rounds=rounds,
            seconds=time.perf_counter() - trial_started,
        )
        trials.append(trial)
        log.info(
            "trial %d: %s -> validation loss %.5f in %d rounds",
            len(trials),
            params,
            trial.validation_loss,
            rounds,
        )
        if best is None or trial.validation_loss < best[0].validation_loss:
            # Not `booster[:rounds]`: a sliced Booster silently loses the categories saved
            # inside it. The saved `best_iteration` tells `predict` where to stop instead.
            best = (trial, booster, full_params)
    assert best is not None
    best_trial, booster, params = best
    return FittedXGBoost(booster, params, best_trial.rounds, trials)


def fit_linear(
    train_x: pd.DataFrame, train_y: pd.Series, max_rows: int, task: Task, seed: int = 0
) -> Pipeline:
    """One-hot categoricals, zero-imputed and scaled numbers, then the task's L2-regularized
    linear model (logistic, multinomial logistic, ridge), on at most `max_rows` rows drawn at
    random (it converges long before a million)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if len(train_x) > max_rows:
        sample = np.random.default_rng(seed).choice(len(train_x), max_rows, replace=False)
        train_x, train_y = train_x.iloc[np.sort(sample)], train_y.iloc[np.sort(sample)]
    categorical = [c for c in train_x.columns if isinstance(train_x[c].dtype, pd.CategoricalDtype)]
    numeric = [c for c in train_x.columns if c not in categorical]
    encode = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="constant", fill_value=0), StandardScaler()),
                numeric,
            ),
        ]
    )
    model = Pipeline([("encode", encode), ("linear", task.linear_baseline())])
    model.fit(_object_categoricals(train_x), train_y)
    return model


def predict_linear(model: Pipeline, inputs: pd.DataFrame, task: Task) -> np.ndarray:
    return task.linear_predictions(model, _object_categoricals(inputs))


def _object_categoricals(frame: pd.DataFrame) -> pd.DataFrame:
    """scikit-learn's encoder wants plain objects with a visible missing value."""
    return frame.apply(
        lambda c: (
            c.astype(object).where(c.notna(), "<missing>")
            if isinstance(c.dtype, pd.CategoricalDtype)
            else c
        )
    )


@dataclass
class Baselines:
    """What the challenger must beat: the best constant (the base rate, the class frequencies,
    the mean) and a linear model on the same inputs: logistic, multinomial logistic, ridge."""

    prior: np.ndarray
    linear: Pipeline


def fit_baselines(splits: Splits, budget: TrainingBudget, task: Task, seed: int = 0) -> Baselines:
    return Baselines(
        prior=task.constant(splits.train_y.to_numpy()),
        linear=fit_linear(splits.train_x, splits.train_y, budget.baseline_max_rows, task, seed),
    )


@dataclass(frozen=True)
class Scores:
    """Every model's predictions and evaluation on the same test window; `noise`: the
    challenger's bootstrap intervals of the gate's floor metrics on it."""

    predictions: dict[str, np.ndarray]
    evaluations: dict[str, Evaluation]
    noise: Bootstrap | None = None
    importance: dict[str, float] = field(default_factory=dict)  # see `importance`


def score_on_test(
    splits: Splits,
    use_case: UseCase,
    model: xgb.Booster,
    baselines: Baselines,
    champion: xgb.Booster | None = None,
    gate: PromotionGate | None = None,
    seed: int = 0,
) -> Scores:
    """Score the challenger, the baselines, the oracle, the ceiling and the champion on the test
    window, and the challenger's importance; with the promotion `gate`, bootstrap the
    challenger's floor metrics too (seeded)."""
    predictions = {
        "model": predict(model, splits.test_x),
        "linear": predict_linear(baselines.linear, splits.test_x, use_case.task),
        "prior": repeated(baselines.prior, len(splits.test_y)),
    }
    for name, column in (("oracle", use_case.oracle_column), ("ceiling", use_case.ceiling_column)):
        if column:
            predictions[name] = splits.test[column].to_numpy(np.float64)
    if champion is not None:
        # The champion may use other features; it gets the same rows, its own columns.
        champion_inputs = use_case.input_frame(splits.test)
        predictions["champion"] = predict(champion, champion_inputs)
    slices = use_case.slices(splits.test)
    evaluations = {
        name: evaluate(
            splits.test_y, p, use_case.task, slices if name in ("model", "champion") else None
        )
        for name, p in predictions.items()
    }
    noise = None
    if gate is not None:
        noise = floor_intervals(
            splits.test_y.to_numpy(), predictions["model"], gate, use_case.task, seed
        )
    return Scores(predictions, evaluations, noise, importance(model, splits.test_x, seed=seed))


IMPORTANCE_ROWS = 20_000  # a seeded sample: mean contributions settle long before a million


def importance(
    booster: xgb.Booster, inputs: pd.DataFrame, rows: int = IMPORTANCE_ROWS, seed: int = 0
) -> dict[str, float]:
    """Each input's mean absolute contribution to the margin (TreeSHAP, base margin included)
    on `inputs` (at most `rows` of them), largest first: what the model's scores rest on."""
    if len(inputs) > rows:
        sample = np.random.default_rng(seed).choice(len(inputs), rows, replace=False)
        inputs = inputs.iloc[np.sort(sample)]
    explained = np.abs(contributions(booster, inputs))
    per_input = explained.reshape(-1, explained.shape[-1]).sum(axis=0) / len(inputs)
    names = list(booster.feature_names or [])
    return dict(sorted(zip(names, map(float, per_input[:-1]), strict=True), key=lambda x: -x[1]))


def holdout_reference(
    splits: Splits,
    booster: xgb.Booster,
    test_scores: np.ndarray,
    gate: MonitoringGate,
    task: Task,
    seed: int = 0,
) -> pd.DataFrame:
    """The reference of a freshly trained model: its validation and test rows (after the
    training window, and a day or more, so every hour of the day is represented)."""
    return build_reference(
        pd.concat([splits.validation_x, splits.test_x]),
        np.concatenate([predict(booster, splits.validation_x), test_scores]),
        np.concatenate([splits.validation_y.to_numpy(), splits.test_y.to_numpy()]),
        gate.reference_rows,
        task,
        seed,
    )


def run_params(
    model: FittedXGBoost,
    exclude_features: tuple[str, ...],
    champion_version: str | None,
    recent: bool,
    engine: str = "local",
) -> dict[str, Any]:
    """What the MLflow run records as the training run's parameters."""
    return {
        **model.params,
        "rounds": model.rounds,
        "features": model.feature_names,
        "excluded_features": sorted(exclude_features),
        "search_trials_run": len(model.trials),
        "champion_version": champion_version or "none",
        "windows": "recent" if recent else "full",
        "engine": engine,
    }
