"""The pairs live evidence is judged on, read from a real prediction log, shadow log and
offline store (DuckDB): joined by request, labels joined by event, only the champion's own
answers, a replayed event once, nothing at or after the end, oldest event first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pandas as pd

from mlops.config.settings import Settings
from mlops.stores.offline_store import OfflineStore
from mlops.stores.prediction_log import shadow_log_dir
from monitoring.live_evidence import read_paired

START = datetime(2026, 1, 8, tzinfo=UTC)


def log(folder: Path, records: list[dict]) -> None:
    day = folder / "date=2026-12-07"
    day.mkdir(parents=True, exist_ok=True)
    with (day / "a.jsonl").open("ab") as lines:
        lines.write(b"".join(orjson.dumps(r) + b"\n" for r in records))


def record(request_id: str, version: str, impression_id: int, hour: int, score: float) -> dict:
    return {
        "request_id": request_id,
        "served_at": datetime.now(UTC).isoformat(),
        "model_version": version,
        "impression_id": impression_id,
        "event_timestamp": (START + timedelta(hours=hour)).isoformat(),
        "user_id": 1,
        "ad_id": 2,
        "features": {},
        "missing_features": [],
        "score": score,
    }


def test_pairs_join_both_logs_and_the_labels_that_arrived(settings: Settings, use_case) -> None:
    log(
        settings.predictions_dir,
        [
            record("b", "1", 2, hour=2, score=0.2),
            record("a", "1", 1, hour=1, score=0.1),
            record("a2", "1", 1, hour=1, score=0.1),  # event 1 replayed
            record("c", "1", 3, hour=3, score=0.3),  # its click has not arrived
            record("d", "0", 4, hour=4, score=0.4),  # answered by another champion
            record("e", "1", 5, hour=30, score=0.5),  # after the end
            record("f", "1", 6, hour=6, score=0.6),  # not shadowed
        ],
    )
    log(
        shadow_log_dir(settings.predictions_dir),
        [
            record(request_id, version, 0, hour=0, score=score)
            for request_id, version, score in [
                ("a", "2", 0.15),
                ("a2", "2", 0.15),
                ("b", "2", 0.25),
                ("c", "2", 0.35),
                ("d", "2", 0.45),
                ("e", "2", 0.55),
                ("b", "3", 0.9),  # another challenger's
            ]
        ],
    )
    events = use_case.events
    offline = OfflineStore(settings.offline_dir)
    labels = pd.DataFrame(
        {
            events.id_column: [1, 2, 4, 5, 6],
            events.timestamp_column: pd.to_datetime(
                [START + timedelta(hours=h) for h in (1, 2, 4, 30, 6)]
            ),
            use_case.label: [1, 0, 1, 0, 1],
        }
    )
    offline.write(offline.table_dir(events.name), "2026-01-08", labels)

    paired = read_paired(settings, use_case, "2", "1", START + timedelta(days=1))

    assert paired.labels.tolist() == [1.0, 0.0]
    assert paired.champion.tolist() == [0.1, 0.2]
    assert paired.challenger.tolist() == [0.15, 0.25]


def test_no_shadow_log_yet_is_no_pairs(settings: Settings, use_case) -> None:
    log(settings.predictions_dir, [record("a", "1", 1, hour=1, score=0.1)])
    assert len(read_paired(settings, use_case, "2", "1", START + timedelta(days=1))) == 0
