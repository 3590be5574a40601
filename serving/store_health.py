"""`StoreHealth`: the online store probed in a background thread, for the service's readiness
(/readyz, and the 503s that name the cause)."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from serving.throttled_log import describe_error

if TYPE_CHECKING:
    from serving.online_store_reader import OnlineFeatures

log = logging.getLogger(__name__)


class StoreHealth:
    """The online store's health, probed in a background thread every `interval` seconds:
    `problem()` is the last probe's answer, at once (None: the store answers lookups). A probe
    that has not answered within `deadline` seconds is a problem too. Changes are logged, once."""

    def __init__(self, features: OnlineFeatures, interval: float, deadline: float) -> None:
        self.features = features
        self.interval = interval
        self.deadline = deadline
        self._problem: str | None = "not probed yet"
        self._probing_since: float | None = None
        self._probed = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="online-store-probe", daemon=True)

    def start(self) -> StoreHealth:
        """Start probing; wait for the first answer, at most `deadline` seconds."""
        self._thread.start()
        self._probed.wait(self.deadline)
        return self

    def problem(self) -> str | None:
        since = self._probing_since
        if since is not None and time.monotonic() - since > self.deadline:
            return f"the online store did not answer within {self.deadline:g} s"
        return self._problem

    def recheck(self) -> None:
        """Probe now rather than at the next interval (a request just failed to read)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(self.deadline)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._probing_since = time.monotonic()
            try:
                problem = self.features.probe()
            except Exception as err:  # a bug in the probe must not stop probing
                problem = f"the probe failed: {describe_error(err)}"
            self._probing_since = None
            if problem != self._problem:
                if problem is not None:
                    log.error("not ready: %s", problem)
                elif self._probed.is_set():  # a recovery, not the first probe
                    log.warning("the online store answers lookups again")
            self._problem = problem
            self._probed.set()
            self._wake.wait(self.interval)
            self._wake.clear()
