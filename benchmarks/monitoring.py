"""Monitoring on a large window: a 1M-row prediction log against a 20k-row reference.

ours:      DuckDB reads the log, joins labels, counts on every row, and Evidently compares
           a fixed-size seeded sample (the card's `sample_rows`)
baseline:  the plain way: pandas reads the whole log, and Evidently compares every row

python -m benchmarks monitoring [--rows 1000000] [--skip-baseline] [--json] [--smoke]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.harness import Stopwatch, parse_options, run_in_fresh_home, stage_table, target

START = datetime(2026, 1, 1, tzinfo=UTC)
TARGET_SECONDS = 3.0  # for a 1,000,000-row window on a quiet 2-core machine (issue 32)


def main(argv: list[str], base_import_seconds: float = 0.0) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks monitoring")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parse_options(parser, argv, smoke={"rows": 5_000})
    run_in_fresh_home("monitoring", lambda: measure(args), render, args)
    return 0


def synthetic_inputs(use_case: Any, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Readable model inputs: categories drawn from the use case's, numbers lognormal."""
    from usecases.adclick.model import FEATURES  # the worked use case's input names

    columns = {}
    for name in FEATURES:
        if name in use_case.categories:
            columns[name] = rng.choice(np.asarray(use_case.categories[name], dtype=object), rows)
        else:
            columns[name] = np.round(rng.lognormal(1.0, 1.0, rows), 2)
    return pd.DataFrame(columns)


def write_log(settings: Any, use_case: Any, rows: int, rng: np.random.Generator) -> None:
    import orjson

    from mlops.stores.offline_store import OfflineStore

    events = use_case.events
    inputs = synthetic_inputs(use_case, rows, rng)
    scores = rng.beta(1, 60, rows)
    ids = np.arange(1, rows + 1)
    times = START + pd.to_timedelta(np.sort(rng.uniform(0, 86_399, rows)), unit="s")
    folder = settings.predictions_dir / "date=2026-11-23"
    folder.mkdir(parents=True, exist_ok=True)
    feature_rows = inputs.to_dict("records")
    with (folder / "bench.jsonl").open("wb") as log:
        for i in range(rows):
            record = {
                "request_id": f"r{i}",
                "served_at": times[i].isoformat(),
                "model_version": "1",
                events.id_column: int(ids[i]),
                events.timestamp_column: times[i].isoformat(),
                **{c: feature_rows[i].get(c) for c in use_case.request_columns},
                "features": feature_rows[i],
                "missing_features": [],
                "score": float(scores[i]),
            }
            log.write(orjson.dumps(record) + b"\n")
    labels = pd.DataFrame(
        {
            events.id_column: ids,
            events.timestamp_column: times,
            use_case.label: (rng.random(rows) < scores).astype(np.int64),
        }
    )
    store = OfflineStore(settings.offline_dir)
    store.write(store.table_dir(events.name), "2026-01-01", labels)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from mlops.config.settings import get_settings
    from mlops.contracts.usecase import active_use_case
    from mlops.stores.reference import LABEL, SCORE
    from monitoring import evidently_reports as report
    from monitoring.window import read_window

    settings = get_settings().apply()
    use_case = active_use_case(settings)
    gate = use_case.card.gates.monitoring
    rng = np.random.default_rng(0)
    setup = Stopwatch()
    with setup.stage(f"write a {args.rows:,}-row prediction log"):
        write_log(settings, use_case, args.rows, rng)
    reference = synthetic_inputs(use_case, gate.reference_rows, rng)
    reference[SCORE] = rng.beta(1, 60, len(reference))
    reference[LABEL] = (rng.random(len(reference)) < reference[SCORE]).astype(float)
    with setup.stage("import Evidently"):
        import evidently.presets  # noqa: F401

    categorical = set(use_case.categories)
    context: dict[str, Any] = {"timestamp": START, "tags": [], "metadata": {}}
    end = START + timedelta(days=1)
    ours = Stopwatch()
    with ours.stage("read window (DuckDB, every row)"):
        window = read_window(settings, use_case, START, end, gate.sample_rows)
    with ours.stage(f"drift report ({len(window.sample):,}-row sample)"):
        report.drift_report(reference, window.sample, categorical, 0.3, 0.12, **context)
    with ours.stage("performance report (sample)"):
        report.performance_report(reference, window.sample, use_case.task, **context)
    result: dict[str, Any] = {
        "rows": args.rows,
        "window_rows": window.rows,
        "sample_rows": len(window.sample),
        "setup": [m.__dict__ for m in setup.measurements],
        "ours": [m.__dict__ for m in ours.measurements],
        "ours_seconds": sum(m.seconds for m in ours.measurements),
    }
    seconds = result["ours_seconds"]
    name = f"monitoring job, {window.rows:,}-row window, seconds"
    result["targets"] = [target(name, seconds, "<=", TARGET_SECONDS)]
    if not args.skip_baseline:
        plain = Stopwatch()
        with plain.stage("pandas read_json (every row)"):
            frame = pd.read_json(next(settings.predictions_dir.glob("*/*.jsonl")), lines=True)
            full = pd.json_normalize(frame["features"].tolist())
            full[SCORE] = frame["score"]
            full[LABEL] = np.nan
        with plain.stage("drift report (every row)"):
            report.drift_report(reference, full, categorical, 0.3, 0.12, **context)
        result["baseline"] = [m.__dict__ for m in plain.measurements]
        result["baseline_seconds"] = sum(m.seconds for m in plain.measurements)
        result["speedup"] = result["baseline_seconds"] / result["ours_seconds"]
    return result


def render(report: dict[str, Any]) -> str:
    lines = [
        f"monitoring a {report['window_rows']:,}-row window "
        f"(Evidently on a {report['sample_rows']:,}-row sample)",
        *stage_table(report["setup"] + report["ours"]),
        f"ours: {report['ours_seconds']:.2f} s",
    ]
    if "baseline" in report:
        lines += [
            *stage_table(report["baseline"]),
            f"baseline (pandas + Evidently on every row): {report['baseline_seconds']:.2f} s; "
            f"ours is {report['speedup']:.1f}x faster",
        ]
    return "\n".join(lines)
