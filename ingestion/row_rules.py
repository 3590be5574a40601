"""The platform's own rules, applied to every use case's tables beside its GX suite: what no
use case should have to remember to write.

    <column>:finite                ±inf in a numeric column (NaN is a null: the suite's rule)
    <column>:in_key_range          an integer id beyond what the service accepts (MAX_INT_KEY)
    <column>:unique                only the copies of a duplicated id; the first row is kept
    <timestamp>:within_max_event_age   an event older than the card allows before its close
    naive timestamps               a table-level problem that says how to write them

Reasons follow the suites' `<column>:<rule>` form, so a quarantined row reads the same
whichever rule it broke.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from mlops.contracts.usecase import MAX_INT_KEY

FINITE = "finite"
IN_KEY_RANGE = "in_key_range"
WITHIN_MAX_EVENT_AGE = "within_max_event_age"


def row_reasons(frame: pd.DataFrame, key_columns: Collection[str]) -> dict[int, list[str]]:
    """Row position -> the platform rules it breaks: ±inf in any float column, an integer id in
    `key_columns` outside ±MAX_INT_KEY. `frame` has a positional index."""
    reasons: dict[int, list[str]] = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_float_dtype(values):
            broken = np.isinf(values.to_numpy(dtype="float64", na_value=np.nan))
            rule = FINITE
        elif column in key_columns and pd.api.types.is_integer_dtype(values):
            # Two comparisons, not abs(): abs() of the smallest int64 overflows to negative.
            outside = (values > MAX_INT_KEY) | (values < -MAX_INT_KEY)
            broken = outside.fillna(False).to_numpy(dtype=bool)
            rule = IN_KEY_RANGE
        else:
            continue
        for row in np.flatnonzero(broken):
            reasons.setdefault(int(row), []).append(f"{column}:{rule}")
    return reasons


def copies_of_duplicates(frame: pd.DataFrame, column: str, flagged: list[int]) -> list[int]:
    """The rows GX's uniqueness rule flagged, less the first occurrence of each value (by the
    batch's row order): GX flags every row of a duplicate, the first is the one to keep."""
    copies = frame[column].duplicated(keep="first").to_numpy()
    return [row for row in flagged if copies[row]]


def naive_timestamp_columns(frame: pd.DataFrame) -> list[str]:
    """Timestamp columns without a time zone: they cannot be compared with a batch's close."""
    return [
        str(column)
        for column in frame.columns
        if pd.api.types.is_datetime64_dtype(frame[column])
        and not isinstance(frame[column].dtype, pd.DatetimeTZDtype)
    ]


def naive_timestamps_problem(column: str) -> str:
    return (
        f"column {column} has timestamps without a time zone: write them as UTC, "
        "e.g. 2026-01-01T00:00:00Z (parquet: a timestamp type with tz='UTC')."
    )


def older_than_allowed(times: pd.Series, closed_at: datetime, max_age: timedelta) -> pd.Series:
    """Which event times are older than `max_age` before the batch's close (a boolean mask;
    a missing or unreadable time is the suite's to judge, not this rule's)."""
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        return pd.Series(False, index=times.index)
    return (times < pd.Timestamp(closed_at - max_age)).fillna(False).astype(bool)
