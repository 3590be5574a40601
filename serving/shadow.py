"""Shadow scoring: the `@challenger` scored on a share of live requests, off the response path.

With the card's `rollout.mode: shadow`, a model that passes the gate becomes the `@challenger`
instead of the champion. A service that follows the registry follows it as it follows the
champion (serving/champion.py)
and, while it scores each batch with the champion, hands a share of the batch's requests
(`rollout.shadow_share`, drawn per request) to `Shadow` with the online features the champion
is scored on: both models see the same inputs. A bounded queue takes them; one background
thread scores them with the challenger and appends them to the shadow log (`<log dir>/shadow/`:
the same request ids, the challenger's version).

Nothing here touches an answer: when the queue is full the requests are skipped and counted,
never waited for; a challenger that fails is logged once per cause and counted. Outcomes per
request: `scored`, `skipped` (queue full, or the challenger gone before its turn), `failed`.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
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
    ) -> None:
        self.champion = champion
        self.challenger = challenger
        self.score_rows = score_rows
        self.log = shadow_log
        self.share = share
        self.on_counted = on_counted
        self.counts: Counter[str] = Counter()
        self._draw = random.Random()
        self._queue: queue.Queue[Offered | None] = queue.Queue(maxsize=queue_batches)
        self._errors = ErrorLog(log, every=FAILURES_LOG_SECONDS)
        self._thread = threading.Thread(target=self._run, name="shadow-scoring", daemon=True)

    def start(self, poll_seconds: float) -> Shadow:
        self.log.start()
        self.challenger.refresh()
        self.challenger.follow(poll_seconds)
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
        """Score what is queued, then stop (the challenger's follower and the shadow log too)."""
        self._queue.put(None)
        self._thread.join()
        self.challenger.stop()
        self.log.close()

    def _run(self) -> None:
        while (offered := self._queue.get()) is not None:
            count = len(offered.request_ids)
            model = self.challenger.current
            if model is None:
                self._count("skipped", count)
                continue
            try:
                scored = self.score_rows(model, offered.requests, offered.features)
            except Exception as err:
                self._errors.error(f"shadow scoring with v{model.version} failed", err)
                self._count("failed", count)
                continue
            self.log.append(
                Served(
                    offered.served_at,
                    model.version,
                    model.feature_names,
                    offered.request_ids,
                    offered.requests,
                    scored.matrix,
                    scored.scores,
                    scored.missing,
                )
            )
            self._count("scored", count)

    def _count(self, outcome: str, count: int) -> None:
        self.counts[outcome] += count
        self.on_counted(outcome, count)
