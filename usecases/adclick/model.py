"""What the click model sees: its input matrix, and the slices its evaluation reports.

`model_inputs` is the one place raw values become model inputs, for training and for serving.
Categoricals get the contract's fixed categories, so a value outside them reads as missing
rather than as a new code; XGBoost also stores the categories inside the saved model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from usecases.adclick.contract import AD_CATEGORIES, AGE_BUCKETS, COUNTRIES, DEVICES, IMPRESSIONS

REQUEST_COLUMNS = ("device", "ad_position")
CATEGORIES = {
    "device": DEVICES,
    "user_age_bucket": AGE_BUCKETS,
    "user_country": COUNTRIES,
    "ad_category": AD_CATEGORIES,
}
ACTIVITY = tuple(
    f"{entity}_{name}_7d" for entity in ("user", "ad") for name in ("impressions", "clicks", "ctr")
)
FEATURES = (*CATEGORIES, "ad_position", "hour_of_day", *ACTIVITY)


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input matrix from event rows joined with the `click_model` feature service.

    Missing activity stays NaN (no impressions in the window): XGBoost learns where missing
    values go, and the logistic baseline imputes zero.
    """
    columns: dict[str, object] = {
        name: pd.Categorical(frame[name], categories=list(categories))
        for name, categories in CATEGORIES.items()
    }
    columns["ad_position"] = _as_float(frame["ad_position"])
    columns["hour_of_day"] = frame[IMPRESSIONS.timestamp_column].dt.hour.astype("float32")
    for name in ACTIVITY:
        columns[name] = _as_float(frame[name])
    return pd.DataFrame(columns, index=frame.index)


def slices(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Device, ad category, and new (no impressions in the last 7 days) vs returning users."""
    returning = pd.to_numeric(frame["user_impressions_7d"]).fillna(0) > 0
    return {
        "device": frame["device"].astype("string"),
        "ad_category": frame["ad_category"].astype("string"),
        "user": pd.Series(np.where(returning, "returning", "new"), index=frame.index),
    }


def _as_float(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values).astype("float32")
