"""Batch prediction's rows: the service's validation, the refused kept with their reason, a run
named by what it scores."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops.config.errors import UserError
from serving.batch_prediction import REASON, ROW, read_rows, run_id, split_rows


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "ad_id": [10, 20, 30, 40],
            "device": ["mobile", "desktop", "mobile", "tablet"],
            "ad_position": [1, "top", 2, 3],
            "event_timestamp": pd.to_datetime(
                ["2026-01-05T10:00Z", "2026-01-05T11:00Z", None, "2026-01-05T12:00Z"], utc=True
            ),
        }
    )


def test_rows_the_service_would_refuse_are_kept_with_its_reason(use_case) -> None:
    valid, rejected = split_rows(rows(), use_case)
    assert list(valid[ROW]) == [0, 3]
    assert list(valid["user_id"]) == [1, 4] and str(valid["event_timestamp"].dt.tz) == "UTC"
    assert list(rejected[ROW]) == [1, 2]
    reasons = dict(zip(rejected[ROW], rejected[REASON], strict=True))
    assert reasons[1].startswith("ad_position:")  # the service's own message, by field
    assert reasons[2] == "event_timestamp: no time to score the row as of"
    assert list(rejected["user_id"]) == [2, 3]  # the row as it came, beside its reason


def test_rows_without_their_entities_are_a_user_error(use_case) -> None:
    with pytest.raises(UserError, match="no ad_id column"):
        split_rows(rows().drop(columns=["ad_id"]), use_case)


def test_a_run_is_named_by_its_rows_and_model_version(use_case) -> None:
    named = run_id(rows(), use_case, "3")
    assert run_id(rows(), use_case, "3") == named
    assert run_id(rows(), use_case, "4") != named
    assert run_id(rows().iloc[::-1], use_case, "3") != named
    assert run_id(rows().assign(device="mobile"), use_case, "3") != named


def test_rows_are_read_from_csv_parquet_or_a_batch_folder(use_case, tmp_path: Path) -> None:
    rows().to_csv(tmp_path / "rows.csv", index=False)
    valid, _ = split_rows(read_rows(tmp_path / "rows.csv", use_case), use_case)
    assert list(valid[ROW]) == [0, 3]  # CSV times are read as the service reads JSON's
    (tmp_path / "impressions.parquet").write_text("not parquet")
    with pytest.raises(UserError, match=r"impressions\.parquet: not a readable \.parquet file"):
        read_rows(tmp_path, use_case)  # a batch folder: its event table
    (tmp_path / "rows.json").write_text("[]")
    with pytest.raises(UserError, match=r"reads a \.parquet or \.csv file"):
        read_rows(tmp_path / "rows.json", use_case)
