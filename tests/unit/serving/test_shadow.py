"""Shadow scoring without a service: what the challenger scores, and that a full queue or a
failing challenger never reaches the caller. The real service: tests/integration/serving/
test_shadow.py."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from mlops.config.errors import ServiceUnreachable
from mlops.stores.prediction_log import read_prediction_log
from serving.champion import Champion
from serving.prediction_logger import PredictionLog, Served
from serving.scoring import Scored
from serving.shadow import Shadow

SERVED_AT = datetime(2026, 12, 7, tzinfo=UTC)


def following(version: str | None) -> Champion:
    model = SimpleNamespace(version=version, feature_names=["x"]) if version else None
    return cast(
        Champion,
        SimpleNamespace(
            current=model, refresh=lambda: False, follow=lambda seconds: None, stop=lambda: None
        ),
    )


def logged(served: Served) -> list[dict[str, Any]]:
    return [
        {"request_id": i, "model_version": served.model_version, "score": float(score)}
        for i, score in zip(served.request_ids, served.scores, strict=True)
    ]


def doubled(model: Any, requests: list[dict[str, Any]], features: dict[str, list[Any]]) -> Scored:
    scores = np.array([2.0 * x for x in features["x"]])
    return Scored(scores, scores.reshape(-1, 1), [[] for _ in requests])


def shadow(
    tmp_path: Path, score_rows: Any = doubled, share: float = 1.0, queue_batches: int = 4
) -> Shadow:
    log = PredictionLog(tmp_path, logged, flush_seconds=0.05)
    return Shadow(following("1"), following("2"), score_rows, log, share, queue_batches)


def offer(shadow: Shadow, ids: list[str]) -> None:
    shadow.offer(SERVED_AT, ids, [{} for _ in ids], {"x": [float(i) for i in range(len(ids))]})


def test_the_challenger_scores_the_offered_requests_on_the_champions_features(tmp_path):
    scoring = shadow(tmp_path).start()
    offer(scoring, ["a", "b", "c"])
    scoring.close()

    records = read_prediction_log(tmp_path)
    assert [(r["request_id"], r["model_version"], r["score"]) for r in records] == [
        ("a", "2", 0.0),
        ("b", "2", 2.0),
        ("c", "2", 4.0),
    ]
    assert scoring.counts == {"scored": 3}


def test_a_full_queue_skips_and_counts_without_waiting(tmp_path):
    scoring = shadow(tmp_path, queue_batches=1)  # not started: nothing takes from the queue
    counted: list[tuple[str, int]] = []
    scoring.on_counted = lambda outcome, count: counted.append((outcome, count))

    offer(scoring, ["a"])
    offer(scoring, ["b", "c"])  # a put that waited would hang here

    assert counted == [("skipped", 2)]


def test_a_failing_challenger_is_counted_and_the_next_batch_scored(tmp_path):
    calls = 0

    def fails_once(model: Any, requests: list[dict[str, Any]], features: Any) -> Scored:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ServiceUnreachable("the online store", "redis://127.0.0.1:6379", "refused")
        return doubled(model, requests, features)

    scoring = shadow(tmp_path, fails_once).start()
    offer(scoring, ["a"])
    deadline = time.monotonic() + 10
    while not scoring.counts and time.monotonic() < deadline:
        time.sleep(0.01)
    offer(scoring, ["b"])
    scoring.close()

    assert scoring.counts == {"failed": 1, "scored": 1}
    assert [r["request_id"] for r in read_prediction_log(tmp_path)] == ["b"]


def test_nothing_is_chosen_without_a_challenger_that_differs_from_the_champion(tmp_path):
    scoring = shadow(tmp_path)
    assert scoring.chosen(3) == [0, 1, 2]
    scoring.challenger = following(None)
    assert scoring.chosen(3) == []
    scoring.challenger = following("1")  # promoted: holds both aliases for a moment
    assert scoring.chosen(3) == []


def test_a_share_draws_about_that_share_of_requests(tmp_path):
    scoring = shadow(tmp_path, share=0.25)
    scoring._draw = random.Random(0)
    chosen = scoring.chosen(4000)
    assert 0.22 < len(chosen) / 4000 < 0.28
    assert chosen == sorted(set(chosen))


def test_what_queued_meanwhile_is_scored_in_one_call_and_logged_per_batch(tmp_path):
    calls: list[int] = []

    def counted(model: Any, requests: list[dict[str, Any]], features: Any) -> Scored:
        calls.append(len(requests))
        return doubled(model, requests, features)

    scoring = shadow(tmp_path, counted)  # not started: both offers wait in the queue
    offer(scoring, ["a", "b"])
    offer(scoring, ["c"])
    scoring.start().close()

    assert calls == [3]
    assert [(r["request_id"], r["score"]) for r in read_prediction_log(tmp_path)] == [
        ("a", 0.0),
        ("b", 2.0),
        ("c", 0.0),
    ]


def test_close_scores_what_was_queued_first(tmp_path):
    release = threading.Event()

    def waits(model: Any, requests: list[dict[str, Any]], features: Any) -> Scored:
        release.wait(10)
        return doubled(model, requests, features)

    scoring = shadow(tmp_path, waits).start()
    offer(scoring, ["a"])
    offer(scoring, ["b"])
    release.set()
    scoring.close()

    assert scoring.counts == {"scored": 2}
