"""Replaying events as live traffic: each event becomes the request a client would have sent
(the use case's request fields only: no label, no oracle), in batches, over HTTP.

A batch with invalid requests is answered 400 with the failing items' positions; those are
counted as refused, with the service's message, and the rest of the batch is sent again, as a
real client would. Refusals are the service doing its job, not errors of the replay.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops.contracts.usecase import UseCase
from serving.process import ServiceProcess

BATCH_SIZE = 256
RETRIES = 5  # for 429/503/504: the service shedding load is worth a pause and a retry


@dataclass
class Traffic:
    served: int = 0
    refused: int = 0
    refusals: Counter[str] = field(default_factory=Counter)  # message -> requests
    model_versions: Counter[str] = field(default_factory=Counter)


def requests_for(events: pd.DataFrame, use_case: UseCase) -> list[dict[str, Any]]:
    """The request bodies of event rows: JSON-ready values, None where a value is missing."""
    fields = [f for f in use_case.request_model.model_fields if f in events.columns]
    frame = events[fields].astype(object).where(events[fields].notna(), None)
    bodies = frame.to_dict("records")
    for body in bodies:
        for name, value in body.items():
            if isinstance(value, pd.Timestamp):
                body[name] = value.isoformat()
            elif hasattr(value, "item"):  # numpy scalar
                body[name] = value.item()
    return bodies


def replay(service: ServiceProcess, bodies: list[dict[str, Any]]) -> Traffic:
    traffic = Traffic()
    for start in range(0, len(bodies), BATCH_SIZE):
        _send(service, bodies[start : start + BATCH_SIZE], traffic)
    return traffic


def _send(service: ServiceProcess, batch: list[dict[str, Any]], traffic: Traffic) -> None:
    for attempt in range(RETRIES):
        status, answer = service.post("/predict_batch", {"requests": batch}, timeout=30)
        if status == 200:
            traffic.served += len(answer["predictions"])
            traffic.model_versions.update(p["model_version"] for p in answer["predictions"])
            return
        if status == 400:
            invalid = _invalid_items(answer)
            if not invalid:  # the batch as a whole was refused
                _refuse(traffic, len(batch), answer)
                return
            traffic.refused += len(invalid)
            traffic.refusals.update(invalid.values())
            rest = [body for i, body in enumerate(batch) if i not in invalid]
            if rest:
                _send(service, rest, traffic)
            return
        if status not in (429, 503, 504):
            _refuse(traffic, len(batch), answer, status)
            return
        time.sleep(0.2 * 2**attempt)
    _refuse(traffic, len(batch), {"error": f"still {status} after {RETRIES} attempts"}, status)


def _invalid_items(answer: dict[str, Any]) -> dict[int, str]:
    """Position in the batch -> the first problem found with it."""
    invalid: dict[int, str] = {}
    for error in answer.get("detail", []):
        loc = error.get("loc", [])
        if len(loc) >= 2 and loc[0] == "requests" and isinstance(loc[1], int):
            field_name = ".".join(map(str, loc[2:])) or "body"
            invalid.setdefault(loc[1], f"{field_name}: {error.get('msg')}")
    return invalid


def _refuse(traffic: Traffic, count: int, answer: Any, status: int = 400) -> None:
    message = answer.get("error") if isinstance(answer, dict) else str(answer)
    traffic.refused += count
    traffic.refusals[f"{status}: {message}"] += count
