"""Flow results that cross processes (the server profile: a worker runs the flow, the CLI reads
its result) as plain JSON that executes nothing when read.

Prefect's own reading (`State.result()`) takes the serializer from the stored record itself: a
file planted in a shared MLOPS_HOME could name pickle and run code in the reader. So the flows
write their results with `RESULT_SERIALIZER` (JSON, `encode`), and `read_result` reads the
file itself: plain `json.loads`, then pydantic builds the flow's declared return type from it.
A failed run's exception comes back as its platform type (message, and for the types that
carry data, that data), or as a `RuntimeError` naming a type it does not rebuild.
"""

from __future__ import annotations

import builtins
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect.serializers import JSONSerializer
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

# What a flow whose result crosses processes stores it with (`@flow(persist_result=True,
# result_serializer=RESULT_SERIALIZER)`): its result (or exception)
# stored as JSON under PREFECT_HOME/storage. Only these flows persist anything there (no
# pickled task results a shared home could plant for a later run to read).
RESULT_SERIALIZER = JSONSerializer(object_encoder="flows.results.encode")
# Exceptions rebuilt by type: the platform's own, and Python's built-in ones.
PLATFORM_PACKAGES = ("mlops.", "flows.", "ingestion.", "models.", "monitoring.", "serving.")
# Attributes an exception carries beyond its message, kept when they are JSON.
EXCEPTION_FIELDS = ("service", "url", "cause")
EXCEPTION_KEY = "__exc_type__"


class UnreadableResult(RuntimeError):
    """A stored flow result that is not what the flow returns (not JSON, or another shape)."""


def encode(value: Any) -> Any:
    """`json.dumps`'s `default` for a flow's result: dataclasses, dates and paths as JSON
    values; an exception as its type, message and data; anything else refused."""
    if isinstance(value, BaseException):
        encoded: dict[str, Any] = {
            EXCEPTION_KEY: f"{type(value).__module__}.{type(value).__qualname__}",
            "message": str(value),
        }
        for name in EXCEPTION_FIELDS:
            if isinstance(getattr(value, name, None), str):
                encoded[name] = getattr(value, name)
        carried = getattr(value, "result", None)
        if carried is not None:
            encoded["result"] = to_jsonable_python(carried, fallback=_scalar)
        return encoded
    return to_jsonable_python(value, fallback=_scalar)


def _scalar(value: Any) -> Any:
    """numpy scalars as Python numbers; anything else as its text (a result that cannot be
    stored must not fail a run that did its work; reading it back then says it is not one)."""
    import numpy as np

    return value.item() if isinstance(value, np.generic) else str(value)


def read_result(stored: bytes, flow_fn: Callable[..., Any]) -> Any:
    """The stored result of a completed run of `flow_fn`, as the type it declares."""
    data = _json(stored)
    try:
        return TypeAdapter(_return_type(flow_fn)).validate_python(data)
    except ValueError as err:
        raise UnreadableResult(f"the stored result is not a {flow_fn.__name__} result") from err


def read_exception(stored: bytes, flow_fn: Callable[..., Any]) -> BaseException:
    """The exception a failed run of `flow_fn` stored, rebuilt without calling its code."""
    data = _json(stored)
    if not isinstance(data, dict) or not isinstance(data.get(EXCEPTION_KEY), str):
        raise UnreadableResult("the stored failure is not an exception")
    name, message = data[EXCEPTION_KEY], str(data.get("message", ""))
    kind = _exception_type(name)
    if kind is None:
        return RuntimeError(f"{name}: {message}")
    # Built without its __init__ (its arguments are not stored): the message, then the data.
    err = kind.__new__(kind, message)
    BaseException.__init__(err, message)
    for field in EXCEPTION_FIELDS:
        if isinstance(data.get(field), str):
            setattr(err, field, data[field])
    if "result" in data:
        carried = TypeAdapter(_carried_type(kind)).validate_python(data["result"])
        setattr(err, "result", carried)  # noqa: B010 (an attribute of that type only)
    return err


def _json(stored: bytes) -> Any:
    try:
        return json.loads(stored)
    except ValueError as err:
        raise UnreadableResult("the stored result is not JSON") from err


def _return_type(flow_fn: Callable[..., Any]) -> Any:
    return typing.get_type_hints(flow_fn).get("return", Any)


def _carried_type(kind: type[BaseException]) -> Any:
    """The type of the result an exception carries (`BatchesRejected.result`), from its
    constructor's annotation."""
    return typing.get_type_hints(kind.__init__).get("result", Any)


def _exception_type(name: str) -> type[BaseException] | None:
    """A platform or built-in exception type by its qualified name; None for any other (a
    module outside the platform is never imported on a stored file's say)."""
    module, _, qualname = name.rpartition(".")
    if module == "builtins":
        found = getattr(builtins, qualname, None)
    elif f"{module}.".startswith(PLATFORM_PACKAGES):
        import importlib

        try:
            found = getattr(importlib.import_module(module), qualname, None)
        except ImportError:
            return None
    else:
        return None
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def stored_bytes(storage_key: str, storage_root: Path) -> bytes:
    """A result file, from its storage key (absolute, or under the default storage)."""
    path = Path(storage_key)
    return (path if path.is_absolute() else storage_root / path).read_bytes()
