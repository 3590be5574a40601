"""Limits on requests: on bodies, checked before BentoML reads them (413 over the size limit,
415 for a body that is not JSON; health, metrics and docs routes pass through), and on the
event time a request may carry (a 400 from validation, naming the field and the item).
"""

from __future__ import annotations

import json
from copy import copy
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, create_model, field_validator

if TYPE_CHECKING:
    from mlops.contracts.usecase import UseCase

Scope = dict[str, Any]
Receive = Any
Send = Any

JSON = "application/json"
# Event times a request may carry: from the data contract's earliest (see `earliest_event`) to
# now plus this much clock skew between the client and the service.
CLOCK_SKEW = timedelta(days=1)
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)  # when the use case's contract says nothing


class RequestLimits:
    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # Media types are case-insensitive (RFC 9110); parameters such as charset are ignored:
        # JSON is UTF-8.
        media_type = headers.get("content-type", JSON).split(";")[0].strip()
        if media_type.lower() != JSON:
            shown = repr(media_type[:100]) if media_type else "an empty Content-Type"
            await json_error(send, 415, f"send JSON (Content-Type: {JSON}), not {shown}")
            return
        declared = headers.get("content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                await json_error(
                    send, 413, f"body of {declared} bytes is over {self.max_body_bytes}"
                )
                return
            await self.app(scope, receive, send)
            return
        # A chunked body has no length up front: read it within the limit, then replay it.
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await json_error(send, 413, f"body is over {self.max_body_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def json_error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer `{"error": message}`, as the service's other errors are shaped."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def earliest_event(use_case: UseCase) -> datetime:
    """The earliest event time the use case's data contract accepts: the lower bound of its
    event table's `between` expectation on the timestamp column (expectations/<use case>/),
    else EARLIEST_EVENT. Serving refuses what ingestion would quarantine."""
    column = use_case.events.timestamp_column
    try:
        suite = json.loads((use_case.suites_dir / f"{use_case.event_table}.json").read_text())
        for expectation in suite["expectations"]:
            kwargs = expectation.get("kwargs", {})
            lower = kwargs.get("min_value")
            if (
                expectation.get("type") == "expect_column_values_to_be_between"
                and kwargs.get("column") == column
                and isinstance(lower, str)
            ):
                parsed = datetime.fromisoformat(lower)
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return EARLIEST_EVENT


def with_time_bounds(model: type[BaseModel], column: str, earliest: datetime) -> type[BaseModel]:
    """`model` whose `column` (an aware datetime, if the model has it) must lie between
    `earliest` and now + CLOCK_SKEW: a 400 naming the field (and, in a batch, the item), where
    an absurd time (year 1, year 9999 with an offset) would otherwise fail deep in scoring."""
    if column not in model.model_fields:
        return model

    def bounded(cls: type[BaseModel], value: datetime | None) -> datetime | None:
        if value is None:
            return value
        if not earliest <= value <= datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError(
                f"must be between {earliest.isoformat()} and now + {CLOCK_SKEW.days} day (UTC)"
            )
        return value

    field = copy(model.model_fields[column])
    bounds = f"Between {earliest.date().isoformat()} and now + {CLOCK_SKEW.days} day (UTC)."
    field.description = f"{field.description or ''} {bounds}".strip()
    # Same name: the OpenAPI document and error messages keep the use case's model name.
    bounded_model: type[BaseModel] = create_model(
        model.__name__,
        __base__=model,
        __doc__=model.__doc__,
        __validators__={f"{column}_bounds": field_validator(column)(bounded)},
        **{column: (field.annotation, field)},  # type: ignore[call-overload]
    )
    return bounded_model
