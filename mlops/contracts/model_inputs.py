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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def predict(booster: xgb.Booster, inputs: pd.DataFrame) -> np.ndarray:
    """Probabilities from the columns the booster was trained on, in its order, with the trees
    up to its best (early-stopping) round. Training, gate and serving all predict through here."""
    columns = inputs[list(booster.feature_names or [])]
    if booster.attr("best_iteration") is None:
        return booster.inplace_predict(columns)
    return booster.inplace_predict(columns, iteration_range=(0, booster.best_iteration + 1))
