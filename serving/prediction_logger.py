"""The prediction log: every answer the service gave, for monitoring and for joining labels.

One JSON object per line, in `<log dir>/date=YYYY-MM-DD/<process>.jsonl`: request id, time
served, model version, the request as sent (entity ids, context, event id), the exact model
inputs, which raw values were missing, and the score. A request only pays for a queue put; a
background thread turns batches into lines and fsyncs them every `flush_seconds`, and `close()`
drains the queue, so a clean stop loses nothing. A crash loses at most the last interval.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from mlops.stores.prediction_log import PARTITION

log = logging.getLogger(__name__)

# Timestamps as ISO 8601, numpy scalars as numbers: a record is plain JSON for any reader.
ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC


@dataclass(frozen=True)
class Served:
    """One scored request or batch, as the request path hands it over."""

    served_at: datetime
    model_version: str
    feature_names: list[str]  # the model's inputs, in the order of the matrix's columns
    request_ids: list[str]
    requests: list[dict[str, Any]]
    matrix: np.ndarray
    scores: np.ndarray
    missing: list[list[str]]


# Served -> JSON-ready records (`records` with the use case's categories).
ToRecords = Callable[[Served], list[dict[str, Any]]]


class PredictionLog:
    def __init__(self, directory: Path, to_records: ToRecords, flush_seconds: float) -> None:
        self.directory = directory
        self.to_records = to_records
        self.flush_seconds = flush_seconds
        self.name = f"{socket.gethostname()}-{os.getpid()}-{datetime.now():%Y%m%dT%H%M%S%f}"
        self._queue: queue.SimpleQueue[Served | None] = queue.SimpleQueue()
        self._files: dict[str, IO[bytes]] = {}
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.written = 0

    def start(self) -> PredictionLog:
        self._thread.start()
        return self

    def append(self, served: Served) -> None:
        self._queue.put(served)

    def close(self) -> None:
        """Write everything queued so far, then stop."""
        self._queue.put(None)
        self._thread.join()
        log.info("prediction log closed: %d records in %s", self.written, self.directory)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[Served] = []
            try:
                item = self._queue.get(timeout=self.flush_seconds)
                while True:
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                    item = self._queue.get_nowait()
            except queue.Empty:
                pass
            try:
                self._write(batch)
            except Exception:  # keep serving; the error says which records were lost
                log.exception("prediction log: failed to write %d batch(es)", len(batch))
        for handle in self._files.values():
            handle.close()

    def _write(self, batch: list[Served]) -> None:
        if not batch:
            return
        touched: set[str] = set()
        for served in batch:
            day = served.served_at.date().isoformat()
            handle = self._file(day)
            for record in self.to_records(served):
                handle.write(orjson.dumps(record, option=ORJSON_OPTIONS) + b"\n")
                self.written += 1
            touched.add(day)
        for day in touched:
            self._files[day].flush()
            os.fsync(self._files[day].fileno())

    def _file(self, day: str) -> IO[bytes]:
        if day not in self._files:
            folder = self.directory / f"{PARTITION}={day}"
            folder.mkdir(parents=True, exist_ok=True)
            self._files[day] = (folder / f"{self.name}.jsonl").open("ab")
        return self._files[day]


def records(served: Served, categories: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """One log record per request: ids, request as used, readable model inputs, score (a
    number, or each class's probability in the task's class order)."""
    from serving.scoring import decode

    return [
        {
            "request_id": request_id,
            "served_at": served.served_at,
            "model_version": served.model_version,
            **request,
            "features": decode(served.feature_names, categories, row),
            "missing_features": missing,
            "score": score.tolist(),
        }
        for request_id, request, row, score, missing in zip(
            served.request_ids,
            served.requests,
            served.matrix,
            served.scores,
            served.missing,
            strict=True,
        )
    ]


def shadow_records(served: Served) -> list[dict[str, Any]]:
    """One shadow log record per request the challenger scored: the champion's record under the
    same request id holds the request and its inputs; this one, what the challenger made of
    them (its version, its score, the values it filled in)."""
    return [
        {
            "request_id": request_id,
            "served_at": served.served_at,
            "model_version": served.model_version,
            "missing_features": missing,
            "score": score.tolist(),
        }
        for request_id, score, missing in zip(
            served.request_ids, served.scores, served.missing, strict=True
        )
    ]
