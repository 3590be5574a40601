"""Failures logged without flooding the log (`ErrorLog`), and `describe_error`: an exception as
the one bounded line the service's logs and answers name a cause with."""

from __future__ import annotations

import logging
import threading
import time


def describe_error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:300]


class ErrorLog:
    """Failures as log records that cannot flood the log: each cause's first occurrence with
    its traceback, then one line per `every` seconds with how many more there were."""

    def __init__(self, logger: logging.Logger, every: float, max_causes: int = 100) -> None:
        self.logger = logger
        self.every = every
        self.max_causes = max_causes
        self._lock = threading.Lock()
        self._causes: dict[str, list[float]] = {}  # cause -> [last logged at, count since]

    def error(self, message: str, err: BaseException) -> None:
        cause = f"{message}: {describe_error(err)}"
        now = time.monotonic()
        with self._lock:
            if cause not in self._causes and len(self._causes) >= self.max_causes:
                cause = f"{message}: (more causes than {self.max_causes})"
            seen = self._causes.get(cause)
            if seen is None:
                self._causes[cause] = [now, 0]
                first = True
            else:
                seen[1] += 1
                if now - seen[0] < self.every:
                    return
                count, seconds = int(seen[1]), now - seen[0]
                seen[0], seen[1] = now, 0
                first = False
        if first:
            self.logger.error("%s", cause, exc_info=err)
        else:
            self.logger.error("%s: %d more in the last %.0f s", cause, count, seconds)
