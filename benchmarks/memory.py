"""Peak resident memory of a stretch of code, sampled from /proc/self/status."""

from __future__ import annotations

import threading
from types import TracebackType

STATUS = "/proc/self/status"
KIB_PER_MIB = 1024


def rss_mib() -> float:
    """This process's resident set size now (VmRSS), in MiB."""
    with open(STATUS, encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / KIB_PER_MIB
    raise RuntimeError(f"no VmRSS line in {STATUS}")


class PeakRss:
    """Samples RSS in a background thread while the `with` block runs.

    VmHWM would give the exact peak but only for the whole process; sampling every few
    milliseconds gives a per-stage peak, which is what tells a stage's cost apart. Spikes
    shorter than the interval can be missed.
    """

    def __init__(self, interval_seconds: float = 0.005) -> None:
        self.interval_seconds = interval_seconds
        self.start_mib = 0.0
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    @property
    def delta_mib(self) -> float:
        """How far the stage's peak rose above the RSS it started from."""
        return self.peak_mib - self.start_mib

    def __enter__(self) -> PeakRss:
        self.start_mib = self.peak_mib = rss_mib()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._record()  # the end state counts too, however short the stage was

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self._record()

    def _record(self) -> None:
        self.peak_mib = max(self.peak_mib, rss_mib())
