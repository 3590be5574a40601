"""What every benchmark needs: timed stages with their peak memory, and a clean stdout."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.memory import PeakRss

log = logging.getLogger("benchmarks")


@dataclass(frozen=True)
class Measurement:
    stage: str
    seconds: float
    peak_rss_mib: float
    delta_rss_mib: float  # stage peak minus RSS at the stage's start


class Stopwatch:
    """Times named stages and records each one's peak memory."""

    def __init__(self) -> None:
        self.measurements: list[Measurement] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        log.info("%s ...", name)
        with PeakRss() as rss:
            started = time.perf_counter()
            yield
            seconds = time.perf_counter() - started
        measurement = Measurement(name, seconds, rss.peak_mib, rss.delta_mib)
        self.measurements.append(measurement)
        log.info("%s: %.2f s, peak %.0f MiB", name, seconds, rss.peak_mib)

    def seconds(self, name: str) -> float:
        return next(m.seconds for m in self.measurements if m.stage == name)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything printed meanwhile to stderr, Python or native (Feast prints progress):
    stdout carries the report alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def process_peak_rss_mib() -> float:
    """The kernel's own high-water mark for the whole run, to check the sampled peaks by."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def stage_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'stage':<44} {'seconds':>8} {'peak RSS MiB':>13} {'delta MiB':>10}"]
    lines += [
        f"{r['stage']:<44} {r['seconds']:>8.2f} {r['peak_rss_mib']:>13.0f} "
        f"{r['delta_rss_mib']:>10.0f}"
        for r in rows
    ]
    return lines
