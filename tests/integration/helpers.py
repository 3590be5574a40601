"""Test data: small landed batches, some with rows broken on purpose."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd

from mlops.landing import read_manifest, write_parquet
from tests.conftest import START
from usecases.adclick.generator import generate

# Row position in the day's impressions -> the rule it must be quarantined for.
INJECTED = {
    0: "user_id:not_null",
    1: "clicked:in_set",
    2: "event_timestamp:between",
    3: "ad_id:between",
    4: "device:in_set",
    5: "impression_id:unique",
    6: "impression_id:unique",
}


def land_days(landing: Path, days: int = 3, events_per_day: int = 1_500, **kwargs) -> list[Path]:
    return generate(
        landing, start=START, days=days, events_per_day=events_per_day, seed=11, **kwargs
    )


def inject_bad_rows(batch_dir: Path) -> dict[int, str]:
    """Break rows 0-6 of a landed batch as INJECTED says; return impression id -> reason."""
    path = batch_dir / "impressions.parquet"
    frame = pd.read_parquet(path)
    closed_at = pd.Timestamp(read_manifest(batch_dir)["closed_at"])
    frame["user_id"] = frame["user_id"].astype("Int64")
    frame.loc[0, "user_id"] = pd.NA
    frame.loc[1, "clicked"] = 3
    frame.loc[2, "event_timestamp"] = closed_at + timedelta(hours=1)
    frame.loc[3, "ad_id"] = -5
    frame.loc[4, "device"] = "fax"
    frame.loc[6, "impression_id"] = frame.loc[5, "impression_id"]
    write_parquet(frame, path)
    ids = frame["impression_id"]
    # Rows 5 and 6 share an id now: both are quarantined, keyed by that one id.
    return {int(ids[i]): reason for i, reason in INJECTED.items()}


def offline_impressions(offline_dir: Path) -> pd.DataFrame:
    files = sorted((offline_dir / "tables" / "impressions").glob("batch_id=*/part.parquet"))
    return pd.concat(pd.read_parquet(f) for f in files) if files else pd.DataFrame()
