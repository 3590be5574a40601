"""Shadow scoring: the `@challenger` scored on a share of live requests, off the response path.

With the card's `rollout.mode: shadow`, a model that passes the gate becomes the `@challenger`
instead of the champion. A service that follows the registry follows it as it follows the
champion (serving/champion.py)
and, while it scores each batch with the champion, hands a share of the batch's requests
(`rollout.shadow_share`, drawn per request) to `Shadow` with the online features the champion
is scored on: both models see the same inputs. A bounded queue takes them; one background
thread collects what queues for `collect_seconds`, scores it in one call with the challenger and
appends it to the shadow log (`<log dir>/shadow/`: the same request ids, the challenger's
version). Collecting makes the shadow wake up, take the GIL and call the model once per
collection instead of once per request: what it takes from the answers' threads is less.

Nothing here touches an answer: when the queue is full the requests are skipped and counted,
never waited for; a challenger that fails is logged once per cause and counted. Outcomes per
request: `scored`, `skipped` (queue full, or the challenger gone before its turn), `failed`.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from serving.champion import Champion
from serving.model_loading import ServedModel
from serving.prediction_logger import PredictionLog, Served
from serving.scoring import Scored
from serving.throttled_log import ErrorLog

log = logging.getLogger(__name__)
FAILURES_LOG_SECONDS = 600

ScoreRows = Callable[[ServedModel, list[dict[str, Any]], dict[str, list[Any]]], Scored]


@dataclass(frozen=True)
class Offered:
    """Requests the champion was scored on, and the online features it was scored with."""

    served_at: datetime
    request_ids: list[str]
    requests: list[dict[str, Any]]
    features: dict[str, list[Any]]


class Shadow:
    def __init__(
        self,
        champion: Champion,
        challenger: Champion,
        score_rows: ScoreRows,
        shadow_log: PredictionLog,
        share: float,
        queue_batches: int,
        on_counted: Callable[[str, int], None] = lambda outcome, count: None,
        collect_seconds: float = 0.0,
    ) -> None:
        self.champion = champion
        self.challenger = challenger
        self.score_rows = score_rows
        self.log = shadow_log
        self.share = share
        self.on_counted = on_counted
        self.collect_seconds = collect_seconds
        self.counts: Counter[str] = Counter()
        self._draw = random.Random()
        self._queue: queue.Queue[Offered | None] = queue.Queue(maxsize=queue_batches)
        self._errors = ErrorLog(log, every=FAILURES_LOG_SECONDS)
        self._thread = threading.Thread(target=self._run, name="shadow-scoring", daemon=True)

    def start(self) -> Shadow:
        self.log.start()
        self._thread.start()
        return self

    def chosen(self, count: int) -> list[int]:
        """Which of `count` requests the challenger scores: none without a challenger that
        differs from the champion (a promoted challenger holds both aliases for a moment)."""
        challenger, champion = self.challenger.current, self.champion.current
        if challenger is None or champion is None or challenger.version == champion.version:
            return []
        if self.share >= 1:
            return list(range(count))
        return [i for i in range(count) if self._draw.random() < self.share]

    def offer(
        self,
        served_at: datetime,
        request_ids: list[str],
        requests: list[dict[str, Any]],
        features: dict[str, list[Any]],
    ) -> None:
        """Queue the requests for the challenger; never waits (full: skipped, counted)."""
        try:
            self._queue.put_nowait(Offered(served_at, request_ids, requests, features))
        except queue.Full:
            self._count("skipped", len(request_ids))

    def close(self) -> None:
        """Score what is queued, then stop (the shadow log too)."""
        self._queue.put(None)
        self._thread.join()
        self.log.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[Offered] = []
            item = self._queue.get()
            until = time.monotonic() + self.collect_seconds
            while item is not None:  # what queues meanwhile is scored in the same call
                batch.append(item)
                try:
                    item = self._queue.get(timeout=max(until - time.monotonic(), 0))
                except queue.Empty:
                    break
            stopping = item is None
            if batch:
                self._score(batch)

    def _score(self, batch: list[Offered]) -> None:
        count = sum(len(offered.request_ids) for offered in batch)
        model = self.challenger.current
        if model is None:
            self._count("skipped", count)
            return
        requests = [request for offered in batch for request in offered.requests]
        features = {
            name: [value for offered in batch for value in offered.features[name]]
            for name in batch[0].features
        }
        try:
            scored = self.score_rows(model, requests, features)
        except Exception as err:
            self._errors.error(f"shadow scoring with v{model.version} failed", err)
            self._count("failed", count)
            return
        start = 0
        for offered in batch:
            end = start + len(offered.request_ids)
            self.log.append(
                Served(
                    offered.served_at,
                    model.version,
                    model.feature_names,
                    offered.request_ids,
                    offered.requests,
                    scored.matrix[start:end],
                    scored.scores[start:end],
                    scored.missing[start:end],
                )
            )
            start = end
        self._count("scored", count)

    def _count(self, outcome: str, count: int) -> None:
        self.counts[outcome] += count
        self.on_counted(outcome, count)
