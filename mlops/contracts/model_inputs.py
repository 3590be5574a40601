"""The contract between a use case's `model_inputs` and the platform.

A use case turns raw columns (event columns, request context, feature values) into the model's
inputs in one function that training and serving both call, so a feature is computed one way
only. It is plain numpy, because serving calls it for every request:

    raw columns: numpy arrays; timestamps as UTC `datetime64`, anything else as it came, with
                 None (or NaN) for a missing value
    inputs:      float32 arrays, one per model input; a categorical input holds the index of its
                 value in the use case's fixed categories, NaN when missing or unknown

Training wraps the inputs in a DataFrame with pandas categoricals (XGBoost then saves the
categories in the model); serving stacks them into the matrix the booster scores.

A use case may name inputs that are log-odds effects (`UseCase.base_margin`): the trees then
start from their sum plus the training base rate's log-odds instead of from a constant, and
learn what the effects leave. The booster carries that recipe (`BaseMargin`), so every place
that scores it adds the same margin.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import xgboost as xgb

Columns = Mapping[str, np.ndarray]


def raw_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A DataFrame's columns in the contract's form."""
    columns: dict[str, np.ndarray] = {}
    for name, values in frame.items():
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            columns[str(name)] = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            columns[str(name)] = values.to_numpy(np.float64, na_value=np.nan)
        else:
            columns[str(name)] = values.to_numpy(object, na_value=None)
    return columns


def category_codes(values: np.ndarray, categories: Sequence[Any]) -> np.ndarray:
    """Each value's index in `categories`; NaN for a missing or unknown value."""
    index = {category: float(i) for i, category in enumerate(categories)}
    return np.fromiter((index.get(v, np.nan) for v in values), np.float32, len(values))


def as_float(values: np.ndarray) -> np.ndarray:
    """Numbers as float32, None as NaN."""
    return np.asarray(values).astype(np.float32)


def hour_of_day(timestamps: np.ndarray) -> np.ndarray:
    return (timestamps.astype("datetime64[h]").astype(np.int64) % 24).astype(np.float32)


def as_frame(
    inputs: Mapping[str, np.ndarray],
    categories: Mapping[str, Sequence[Any]],
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """Inputs as the DataFrame training fits on: categorical inputs as pandas categoricals."""
    columns: dict[str, Any] = {}
    for name, values in inputs.items():
        if name in categories:
            codes = np.where(np.isnan(values), -1, values).astype(np.int64)
            columns[name] = pd.Categorical.from_codes(codes, categories=list(categories[name]))
        else:
            columns[name] = values
    return pd.DataFrame(columns, index=index, copy=False)


@dataclass(frozen=True)
class BaseMargin:
    """Where a booster's trees start, per row: `intercept` plus the sum of the `inputs` (a
    missing one counts as 0, no effect known). Saved in the booster's attributes."""

    inputs: tuple[str, ...]
    intercept: float

    ATTRIBUTE = "base_margin"

    @classmethod
    def for_training(cls, inputs: Sequence[str], base_rate: float) -> BaseMargin:
        """The margin of a binary model whose training labels' mean is `base_rate`."""
        rate = min(max(base_rate, 1e-6), 1 - 1e-6)
        return cls(tuple(inputs), math.log(rate / (1 - rate)))

    @classmethod
    def of(cls, booster: xgb.Booster) -> BaseMargin | None:
        saved = booster.attr(cls.ATTRIBUTE)
        if saved is None:
            return None
        recipe = json.loads(saved)
        return cls(tuple(recipe["inputs"]), float(recipe["intercept"]))

    def save_in(self, booster: xgb.Booster) -> None:
        recipe = {"inputs": list(self.inputs), "intercept": self.intercept}
        booster.set_attr(**{self.ATTRIBUTE: json.dumps(recipe)})

    def frame_margin(self, inputs: pd.DataFrame) -> np.ndarray:
        return self._margin([inputs[name].to_numpy(np.float64) for name in self.inputs])

    def matrix_margin(self, matrix: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
        """The margin of rows stacked in the booster's feature order (`feature_names`)."""
        return self._margin([matrix[:, feature_names.index(name)] for name in self.inputs])

    def _margin(self, effects: list[np.ndarray]) -> np.ndarray:
        stacked = np.nan_to_num(np.vstack(effects).astype(np.float64), nan=0.0)
        return self.intercept + stacked.sum(axis=0)


def contributions(booster: xgb.Booster, inputs: pd.DataFrame) -> np.ndarray:
    """Each input's contribution to each row's margin (XGBoost's TreeSHAP, `pred_contribs`),
    in the booster's feature order, then the bias (the intercept and the trees' expected value):
    (rows, inputs + 1), multiclass (rows, classes, inputs + 1). A row's contributions sum to its
    margin (log-odds, or a regression's prediction): a base-margin input's own value counts as
    its contribution."""
    import xgboost as xgb

    names = list(booster.feature_names or [])
    margin = BaseMargin.of(booster)
    start = margin.frame_margin(inputs) if margin else None
    matrix = xgb.DMatrix(inputs[names], enable_categorical=True, base_margin=start)
    best = booster.attr("best_iteration")
    rounds = (0, int(best) + 1) if best is not None else (0, 0)
    explained = booster.predict(matrix, pred_contribs=True, iteration_range=rounds)
    # XGBoost puts the whole base margin in the bias; each effect goes back to its input.
    for name in margin.inputs if margin else ():
        effect = np.nan_to_num(inputs[name].to_numpy(np.float64), nan=0.0).astype(explained.dtype)
        explained[..., names.index(name)] += effect
        explained[..., -1] -= effect
    return explained


def predict(booster: xgb.Booster, inputs: pd.DataFrame) -> np.ndarray:
    """Probabilities from the columns the booster was trained on, in its order, with the trees
    up to its best (early-stopping) round, from its base margin if it has one. Training, gate
    and serving all predict through here."""
    columns = inputs[list(booster.feature_names or [])]
    margin = BaseMargin.of(booster)
    extra: dict[str, Any] = {"base_margin": margin.frame_margin(inputs)} if margin else {}
    if booster.attr("best_iteration") is not None:
        extra["iteration_range"] = (0, booster.best_iteration + 1)
    return booster.inplace_predict(columns, **extra)
