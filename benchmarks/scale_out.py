"""`python -m benchmarks scale-out`: the same week through both engines as it grows.

For each size (default 1M, 2M and 4M impressions in a week), a week of baseline traffic is
generated and stored offline (the ingest flow's own steps, without the online store, which
training does not read); then the training set is joined and the model fitted
(one search trial) twice, each time in a fresh process: with the local engine (DuckDB through
Feast, XGBoost in the process), and with the Ray engine (the join on Ray Data, the fit on Ray
Train; a local Ray of the machine's cores). Each side reports its wall time, the driver
process's peak resident memory (VmHWM; Ray's workers are other processes) and the model's NCE
on the test window.

The point on one machine is not speed (Ray adds work and has no other machine to spread it
to): it is that the driver's memory stays flat while the local engine's grows with the rows,
and that both engines train the same model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks.harness import parse_options, process_peak_rss_mib, run_in_fresh_home, target
from benchmarks.memory import rss_mib
from mlops.config.settings import get_settings

log = logging.getLogger("benchmarks.scale_out")

DEFAULT_SIZES = (1_000_000, 2_000_000, 4_000_000)
MAX_DRIVER_GROWTH = 1.10  # the driver's peak stays flat as the rows grow (issue 32)
SMOKE_SIZES = [21_000]  # one week of 3,000 a day: every window has both classes
START = date(2026, 1, 1)
SEED = 7
ENGINES = ("local", "ray")


def main(argv: Sequence[str] | None = None, base_import_seconds: float | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scale-out", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    args = parse_options(parser, argv, smoke={"sizes": SMOKE_SIZES})
    run_in_fresh_home("scale-out", lambda: measure(args.sizes), render, args)
    return 0


def measure(sizes: Sequence[int]) -> dict[str, Any]:
    home = get_settings().home
    rows = []
    for size in sizes:
        size_home = home / f"week-{size}"
        log.info("%d impressions: storing the week", size)
        store_week(size_home, size)
        row: dict[str, Any] = {"impressions": size}
        for engine in ENGINES:
            log.info("%d impressions: joining and fitting with the %s engine", size, engine)
            row[engine] = run_side(size_home, engine)
        row["nce_difference"] = abs(row["ray"]["nce"] - row["local"]["nce"])
        rows.append(row)
    peaks = [row["ray"]["driver_peak_rss_mib"] for row in rows]
    growth = peaks[-1] / peaks[0]
    name = f"Ray driver peak, {sizes[-1]:,} / {sizes[0]:,} impressions"
    return {
        "cpu_count": os.cpu_count(),
        "sizes": rows,
        "targets": [target(name, growth, "<=", MAX_DRIVER_GROWTH, unit="x")],
    }


def store_week(home: Path, impressions: int) -> None:
    """A week in the offline store: generated, validated, written, its features built."""
    env = {**os.environ, "MLOPS_HOME": str(home)}
    code = f"from benchmarks.scale_out import _store_week; _store_week({impressions})"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def _store_week(impressions: int) -> None:
    from ingestion.gx_validation import validate_batch
    from ingestion.ingest_steps import ingest_validated_batch
    from mlops.config.runtime import setup
    from mlops.contracts.batches import read_batch
    from mlops.contracts.usecase import active_use_case
    from mlops.stores.offline_store import OfflineStore

    settings = setup()
    use_case = active_use_case(settings)
    assert use_case.generator is not None
    days = use_case.card.training.span_days
    offline = OfflineStore(settings.offline_dir)
    batches = use_case.generator.generate(
        settings.landing_dir, start=START, days=days, events_per_day=impressions // days, seed=SEED
    )
    for batch_dir in batches:
        batch = read_batch(batch_dir, use_case.tables)
        results = validate_batch(batch, use_case, settings)
        outcome = ingest_validated_batch(batch, results, use_case, settings, offline)
        assert outcome.decision.passed, batch_dir


def run_side(home: Path, engine: str) -> dict[str, Any]:
    """One engine's join and fit in a fresh process: its report, read from its stdout."""
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_ENGINE": engine}
    code = "from benchmarks.scale_out import _train_once; _train_once()"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _train_once() -> None:
    """The train flow's data and model steps, as `flows/train.py` runs them, timed."""
    from mlops.config.runtime import setup
    from mlops.contracts.usecase import active_use_case
    from mlops.stores.feature_store import open_store
    from mlops.stores.offline_store import OfflineStore
    from models import dataset, training, training_engine
    from models.evaluation import evaluate

    settings = setup()
    use_case = active_use_case(settings)
    budget = use_case.card.training.model_copy(update={"search_trials": 1})
    offline = OfflineStore(settings.offline_dir)
    windows = dataset.TimeWindows.ending_at(dataset.training_end(offline, None), budget)
    store = open_store(settings, use_case)
    training_engine.start_engine(settings)  # before the clock: a cluster is already running
    ready_mib = rss_mib()
    started = time.perf_counter()
    training_set = training_engine.join_training_set(
        settings, store, offline, use_case, windows, budget.baseline_max_rows
    )
    joined = time.perf_counter()
    splits = training.prepare_splits(training_set.held, use_case)
    model = training_engine.fit_model(settings, use_case, training_set, splits, budget)
    done = time.perf_counter()
    from mlops.contracts.model_inputs import predict

    scored = evaluate(splits.test_y, predict(model.booster, splits.test_x), use_case.task)
    nce = scored.metrics["nce"]
    report = {
        "join_seconds": joined - started,
        "fit_seconds": done - joined,
        "seconds": done - started,
        "driver_peak_rss_mib": process_peak_rss_mib(),
        "driver_rss_before_mib": ready_mib,
        "rounds": model.rounds,
        "nce": nce,
    }
    print(json.dumps(report))


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{report['cpu_count']} cores; join + fit (one trial) of a week; the driver's peak RSS",
        f"{'impressions':>12} {'engine':<6} {'join s':>7} {'fit s':>7} {'total s':>8} "
        f"{'driver peak MiB':>16} {'test NCE':>9}",
    ]
    for row in report["sizes"]:
        for engine in ENGINES:
            side = row[engine]
            lines.append(
                f"{row['impressions']:>12,} {engine:<6} {side['join_seconds']:>7.1f} "
                f"{side['fit_seconds']:>7.1f} {side['seconds']:>8.1f} "
                f"{side['driver_peak_rss_mib']:>16.0f} {side['nce']:>9.4f}"
            )
        ratio = row["ray"]["seconds"] / row["local"]["seconds"]
        memory = row["ray"]["driver_peak_rss_mib"] / row["local"]["driver_peak_rss_mib"]
        lines.append(
            f"{'':>12} ray/local: time {ratio:.2f}x, driver memory {memory:.2f}x, "
            f"NCE difference {row['nce_difference']:.4f}"
        )
    return "\n".join(lines)
