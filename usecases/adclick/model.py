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

REQUEST_COLUMNS = ("device", "ad_position")
SCORE_NAME = "click_probability"
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
    inputs = {name: category_codes(columns[name], values) for name, values in CATEGORIES.items()}
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
