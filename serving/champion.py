"""Which model the service scores with: by default the registry's `@champion`, followed by
polling. A registry that does not answer changes nothing: the model serving keeps serving, and
the next poll asks again. The same follows the `@challenger` a shadowing service scores beside
it (serving/shadow.py), which, unlike the champion, is released when the alias is gone.

A new model is loaded and warmed up beside the one serving, then swapped in with a single
reference assignment. A request reads `current` once and scores with that model from start to
end, so no request ever sees half a swap or fails because of one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from serving.model_loading import ServedModel
from serving.scoring import Scorer, prepare
from serving.throttled_log import ErrorLog

log = logging.getLogger(__name__)
# A registry that stays unreachable fails every poll: its traceback once, then a count.
LOAD_ERRORS_LOG_SECONDS = 600


class Champion:
    def __init__(
        self,
        wanted_version: Callable[[], str | None],
        load: Callable[[str], ServedModel],
        scorer: Scorer,
        on_swap: Callable[[ServedModel | None], None] = lambda model: None,
        role: str = "champion",
        release_when_unwanted: bool = False,
    ) -> None:
        self.role = role
        self.release_when_unwanted = release_when_unwanted
        self.wanted_version = wanted_version
        self.load = load
        self.scorer = scorer
        self.on_swap = on_swap
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self._errors = ErrorLog(log, every=LOAD_ERRORS_LOG_SECONDS)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load the wanted version if it is not the one serving; True if it swapped."""
        try:
            version = self.wanted_version()
        except Exception as err:  # could not ask (MLflow down): what serves keeps serving
            self.last_error = f"cannot ask which version is @{self.role}: {err}"
            self._errors.error(f"cannot ask which version is @{self.role}", err)
            return False
        if version is None and self.current is not None and self.release_when_unwanted:
            log.info(
                "no @%s any more: %s v%s released",
                self.role,
                self.current.name,
                self.current.version,
            )
            self.current = None
            self.on_swap(None)
            return True
        try:
            if version is None or (self.current is not None and self.current.version == version):
                return False
            model = prepare(self.load(version), self.scorer)
        except Exception as err:  # keep serving the current model; try again next poll
            self.last_error = f"cannot load version {version}: {err}"
            self._errors.error(f"cannot load version {version}", err)
            return False
        previous, self.current = self.current, model
        self.last_error = None
        self.on_swap(model)
        was = f"v{previous.version}" if previous else "nothing"
        log.info("@%s: %s v%s (was %s)", self.role, model.name, model.version, was)
        return True

    def follow(self, poll_seconds: float) -> None:
        """Poll for a new wanted version in a background thread."""

        def poll() -> None:
            while not self._stop.wait(poll_seconds):
                self.refresh()

        self._thread = threading.Thread(target=poll, name=f"{self.role}-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
