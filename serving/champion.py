"""Which model the service scores with: the registry's `@champion`, followed by polling.

A new champion is loaded and warmed up beside the one serving, then swapped in with a single
reference assignment. A request reads `current` once and scores with that model from start to
end, so no request ever sees half a swap or fails because of one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from models.registry import CHAMPION, ModelRegistry
from serving.scoring import Scorer, ServedModel, load_registered, prepare

log = logging.getLogger(__name__)


class Champion:
    def __init__(
        self,
        registry: ModelRegistry,
        scorer: Scorer,
        pinned_version: str | None = None,
        on_swap: Callable[[ServedModel], None] = lambda model: None,
    ) -> None:
        self.registry = registry
        self.scorer = scorer
        self.pinned_version = pinned_version
        self.on_swap = on_swap
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wanted_version(self) -> str | None:
        return self.pinned_version or self.registry.alias(CHAMPION)

    def refresh(self) -> bool:
        """Load the wanted version if it is not the one serving; True if it swapped."""
        version = None
        try:
            version = self.wanted_version()
            if version is None or (self.current is not None and self.current.version == version):
                return False
            model = prepare(load_registered(self.registry, version), self.scorer)
        except Exception as err:  # keep serving the current model; try again next poll
            self.last_error = f"cannot load {self.registry.name} v{version}: {err}"
            log.exception(self.last_error)
            return False
        previous, self.current = self.current, model
        self.last_error = None
        self.on_swap(model)
        was = f"v{previous.version}" if previous else "nothing"
        log.info("serving %s v%s (was %s)", model.name, model.version, was)
        return True

    def follow(self, poll_seconds: float) -> None:
        """Poll for a new champion in a background thread (not when a version is pinned)."""
        if self.pinned_version is not None:
            return

        def poll() -> None:
            while not self._stop.wait(poll_seconds):
                self.refresh()

        self._thread = threading.Thread(target=poll, name="champion-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
