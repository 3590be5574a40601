"""What every benchmark needs: timed stages with their peak memory, and a clean stdout."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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


def target(
    name: str,
    value: float | None,
    bound: Literal["<=", ">="],
    limit: float,
    unit: str = "",
    note: str = "",
    holds: bool | None = None,
) -> dict[str, Any]:
    """One of a benchmark's targets, in the shape every `--json` report carries them
    (`"targets": [{"name", "value", "goal", "holds"}]`): what is measured, its value in this
    run (None: not measured, which never holds), and the goal `value <bound> limit`, written
    and judged from the same figures. `holds` overrides the judgement where a goal is met
    without a value (a peer that held no rate at all)."""
    if holds is None:
        holds = value is not None and (value <= limit if bound == "<=" else value >= limit)
    goal = f"{bound} {limit:.3g}{unit}" + (f" ({note})" if note else "")
    return {"name": name, "value": value, "goal": goal, "holds": holds}


def target_lines(targets: list[dict[str, Any]]) -> list[str]:
    """The targets as every benchmark prints them, one line each."""
    return [
        f"target: {t['name']}: {'-' if t['value'] is None else format(t['value'], '.3g')} "
        f"(goal {t['goal']}) {'holds' if t['holds'] else 'MISSED'}"
        for t in targets
    ]


def stage_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'stage':<44} {'seconds':>8} {'peak RSS MiB':>13} {'delta MiB':>10}"]
    lines += [
        f"{r['stage']:<44} {r['seconds']:>8.2f} {r['peak_rss_mib']:>13.0f} "
        f"{r['delta_rss_mib']:>10.0f}"
        for r in rows
    ]
    return lines


def parse_options(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, smoke: Mapping[str, Any]
) -> argparse.Namespace:
    """A benchmark's options, `--json` and `--smoke` added. With `--smoke`, the values in `smoke`
    replace the defaults (options given on the command line still win): the same code path at a
    tiny size, to check quickly that the benchmark still runs."""
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny size, the same code path: checks that it runs; its figures mean nothing "
        "and are not saved",
    )
    if parser.parse_known_args(argv)[0].smoke:
        parser.set_defaults(**smoke)
    return parser.parse_args(argv)


@contextlib.contextmanager
def own_home(root: Path, prefix: str) -> Iterator[Any]:
    """A fresh MLOPS_HOME under `root` for one run of a benchmark over many worlds, its
    settings applied, removed after. Prefect keeps its database under the first home it is
    given, for the whole process: `root`, the benchmark's home, outlives every run's own."""
    from mlops.config.settings import get_settings

    home = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    os.environ["MLOPS_HOME"] = str(home)
    get_settings.cache_clear()
    try:
        yield get_settings().apply()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_in_fresh_home(
    name: str,
    run: Callable[[], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    options: argparse.Namespace,
) -> dict[str, Any]:
    """Run a benchmark on a temporary MLOPS_HOME (it touches no one's state), save its report
    to `benchmarks/results/<name>.json` (not a smoke run's) and print it, as text or as one JSON
    object; the report's `targets` (`target`) are printed under the text."""
    from mlops.config.settings import get_settings

    # The benchmark's own progress on stderr; the libraries' INFO chatter (every HTTP call
    # httpx makes to Prefect) is not progress.
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    log.setLevel(logging.INFO)
    home = Path(tempfile.mkdtemp(prefix=f"mlops-bench-{name}-"))
    os.environ["MLOPS_HOME"] = str(home)  # before the settings are created
    get_settings.cache_clear()
    try:
        with stdout_to_stderr():
            report = run()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if not options.smoke:  # a smoke run's figures would overwrite a real run's
        results = Path(__file__).parent / "results" / f"{name.replace('-', '_')}.json"
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(report, indent=2) + "\n")
    # Every benchmark's targets, printed the same way under its own figures.
    told = "\n".join([render(report), "", *target_lines(report["targets"])])
    print(json.dumps(report) if options.json else told)
    return report
