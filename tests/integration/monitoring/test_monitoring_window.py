"""The monitoring window read from a real prediction log and offline store (DuckDB): replays
count once, labels join late, quarantined events and missing request values are counted."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pandas as pd
import pytest

from mlops.config.settings import Settings
from mlops.stores.offline_store import OfflineStore
from mlops.stores.reference import LABEL, SCORE
from monitoring.window import read_window
from tests.support.session import PINNED_USE_CASE

START = datetime(2026, 1, 8, tzinfo=UTC)


def _record(impression_id: int, at: datetime, score: float, device: str | None) -> dict:
    return {
        "request_id": f"r{impression_id}-{at.timestamp()}",
        "served_at": datetime.now(UTC).isoformat(),
        "model_version": "1",
        "impression_id": impression_id,
        "event_timestamp": at.isoformat(),
        "user_id": 1,
        "ad_id": 2,
        "device": device,
        "ad_position": 1,
        "features": {"device": device or "mobile", "ad_position": 1.0, "user_ctr_7d": None},
        "missing_features": [] if device else ["device"],
        "score": score,
    }


@pytest.mark.parametrize("request_context", [True, False], ids=[PINNED_USE_CASE, "no-context"])
def test_window_counts_each_event_once_and_joins_the_labels_that_arrived(
    settings: Settings, use_case, request_context: bool
) -> None:
    if not request_context:
        # A use case whose requests carry no context of their own reads the same window.
        use_case = replace(use_case, request_columns=())
    at = [START + timedelta(hours=h) for h in range(4)]
    records = [
        _record(1, at[0], 0.1, "mobile"),
        _record(2, at[1], 0.2, None),
        _record(3, at[2], 0.3, "desktop"),
        _record(3, at[2], 0.3, "desktop"),  # a rerun replayed event 3
        _record(4, at[3], 0.4, "tablet"),  # its click has not arrived yet
        _record(5, START - timedelta(hours=1), 0.5, "mobile"),  # before the window
    ]
    folder = settings.predictions_dir / "date=2026-11-23"
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))

    events = use_case.events
    offline = OfflineStore(settings.offline_dir)
    labels = pd.DataFrame(
        {
            events.id_column: [1, 2, 3],
            events.timestamp_column: pd.to_datetime(at[:3]),
            use_case.label: [0, 1, 0],
        }
    )
    offline.write(offline.table_dir(events.name), "2026-01-08", labels)
    quarantined = labels.head(1).assign(**{events.id_column: 99})
    folder = settings.quarantine_dir / "2026-01-08"
    folder.mkdir(parents=True)
    quarantined.to_parquet(folder / events.file_name)

    window = read_window(settings, use_case, START, START + timedelta(days=1), sample_rows=1000)

    assert window.rows == 4 and window.labelled == 3
    assert window.label_coverage == 0.75
    assert window.events == 3 and window.quarantined == 1
    expected_nulls = {"device": 0.25, "ad_position": 0.0} if use_case.request_columns else {}
    assert window.null_fraction == expected_nulls
    assert window.model_versions == {"1": 4}
    assert window.performance is not None and window.performance["log_loss"] > 0
    assert sorted(window.sample[SCORE]) == [0.1, 0.2, 0.3, 0.4]
    assert window.sample[LABEL].isna().sum() == 1
    assert {"device", "ad_position", "user_ctr_7d"} <= set(window.sample.columns)


def test_window_without_a_log_is_empty(settings: Settings, use_case) -> None:
    window = read_window(settings, use_case, START, START + timedelta(days=1), sample_rows=1000)
    assert window.rows == 0 and window.performance is None and window.sample.empty


def test_a_window_is_named_by_the_day_it_judges(settings: Settings, use_case) -> None:
    # The window that closes at midnight judges the day before: the day the traffic happened.
    window = read_window(settings, use_case, START, START + timedelta(days=1), sample_rows=1000)
    assert window.day == "2026-01-08"
    assert window.day_start == START
    assert window.summary()["day"] == "2026-01-08"
    assert window.summary()["end"] == "2026-01-09T00:00:00+00:00"  # the bounds stay
