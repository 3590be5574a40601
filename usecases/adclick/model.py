"""What the click model sees: its input matrix, and the slices its evaluation reports.

`model_inputs` is the one place raw values become model inputs, for training and for serving
(the contract is in mlops/contracts/model_inputs.py). Categoricals get the contract's fixed
categories, so a value outside them reads as missing rather than as a new code; XGBoost also
stores the categories inside the saved model.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mlops.contracts.model_inputs import Columns, as_float, category_codes, hour_of_day
from mlops.contracts.usecase import MAX_INT_KEY
from usecases.adclick.contract import (
    AD_CATEGORIES,
    AD_POSITIONS,
    AGE_BUCKETS,
    COUNTRIES,
    DEVICES,
    IMPRESSIONS,
)
from usecases.adclick.features import ENTITIES, HISTORY_DAYS, RECENT_DAYS

REQUEST_COLUMNS = ("device", "ad_position")
SCORE_NAME = "click_probability"
RAW_CATEGORIES = {
    "device": DEVICES,
    "user_age_bucket": AGE_BUCKETS,
    "user_country": COUNTRIES,
    "ad_category": AD_CATEGORIES,
}
# The context's effects interact (taste: age bucket x category; slot: device x position): given
# as one input each, a single split can tell their cells apart.
CROSSES = {
    "age_x_category": ("user_age_bucket", AGE_BUCKETS, "ad_category", AD_CATEGORIES),
    "device_x_position": ("device", DEVICES, "ad_position", AD_POSITIONS),
}
CATEGORIES = {
    **RAW_CATEGORIES,
    **{
        name: tuple(f"{a}|{b}" for a in first for b in second)
        for name, (_, first, _, second) in CROSSES.items()
    },
}
ACTIVITY = tuple(
    f"{entity}_{name}"
    for entity in ENTITIES
    for name in (
        *(f"{kind}_{RECENT_DAYS}d" for kind in ("impressions", "clicks", "ctr")),
        *(f"{kind}_{HISTORY_DAYS}d" for kind in ("impressions", "expected_clicks", "click_effect")),
    )
)
FEATURES = (*CATEGORIES, "ad_position", "hour_of_day", *ACTIVITY)


MAX_ID = MAX_INT_KEY  # ids stay exact in every JSON client (ingestion checks the same)


class ClickRequest(BaseModel):
    """One impression to score. The ids pick the online features; the rest is the request's own
    context. Strict: no coercion ("3" is not 3), no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    user_id: int = Field(ge=1, le=MAX_ID)
    ad_id: int = Field(ge=1, le=MAX_ID)
    device: Literal[DEVICES] | None = None  # type: ignore[valid-type]
    ad_position: int | None = Field(default=None, ge=min(AD_POSITIONS), le=max(AD_POSITIONS))
    event_timestamp: AwareDatetime | None = Field(
        default=None, description="When the impression is shown (default: now)."
    )
    impression_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Lets clicks join the prediction log."
    )


def model_inputs(columns: Columns) -> dict[str, np.ndarray]:
    """The model's inputs from event rows joined with the `click_model` feature service.

    Missing activity stays NaN (no impressions in the window): XGBoost learns where missing
    values go, and the logistic baseline imputes zero.
    """
    inputs = {
        name: category_codes(columns[name], values) for name, values in RAW_CATEGORIES.items()
    }
    for name, (first, first_values, second, second_values) in CROSSES.items():
        first_codes = inputs.get(first, category_codes(columns[first], first_values))
        second_codes = category_codes(columns[second], second_values)
        inputs[name] = first_codes * len(second_values) + second_codes  # NaN if either is
    inputs["ad_position"] = as_float(columns["ad_position"])
    inputs["hour_of_day"] = hour_of_day(columns[IMPRESSIONS.timestamp_column])
    for name in ACTIVITY:
        inputs[name] = as_float(columns[name])
    return inputs


def slices(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Device, ad category, and new (no impressions in the last 7 days) vs returning users."""
    returning = pd.to_numeric(frame["user_impressions_7d"]).fillna(0) > 0
    return {
        "device": frame["device"].astype("string"),
        "ad_category": frame["ad_category"].astype("string"),
        "user": pd.Series(np.where(returning, "returning", "new"), index=frame.index),
    }
