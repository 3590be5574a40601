"""Waiting for a state a test cannot make happen at once: a service started, a log flushed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")
# For a state to be reached: generous, since no verdict is about this machine's speed.
WAIT_SECONDS = 120


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout: float = WAIT_SECONDS,
    poll_seconds: float = 0.2,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `condition` until it returns something true, and return that; fail the test naming
    `what` after `timeout` s. Exceptions of the `ignoring` types count as "not yet" (e.g. a
    connection refused while a server starts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = condition()
        except ignoring:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(poll_seconds)
