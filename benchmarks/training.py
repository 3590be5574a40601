"""Training at scale: the point-in-time join and the fit, and what the platform costs around it.

    setup        imports; a week of traffic (the card's train/validation/test windows) generated
                 and ingested; the Prefect server started and the MLflow store created
    stages       the train flow's steps as plain functions, each timed with its peak memory
    bare         `xgboost.train` on the same matrix, same parameters, same early stopping
    flow         the train flow twice: the first model, then a challenger the gate scores
                 against it, with its task times read back from the Prefect API

Two ratios against the bare fit, from the challenger's run:
    around the fit   (flow - join - baselines - scoring) / bare: the fit plus what the platform
                     wraps around it (flow and tasks, MLflow logging, plots, registry, gate)
    all but the join (flow - join) / bare: also the evaluation work (baselines, scoring the
                     challenger, the champion, the baselines and the oracle with their slices)

The search runs one trial everywhere, so every side fits the same model once. Target (2 cores):
"around the fit" at most 1.15x.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from typing import Any
from uuid import UUID

from benchmarks.harness import (
    Stopwatch,
    parse_options,
    process_peak_rss_mib,
    run_in_fresh_home,
    stage_table,
    target,
)
from benchmarks.memory import PeakRss
from mlops.config.settings import get_settings

log = logging.getLogger("benchmarks.training")

DEFAULT_EVENTS = 1_000_000
SMOKE_EVENTS = 21_000  # 3,000 a day: every window has both classes
START = date(2026, 1, 1)
SEED = 7
TARGET_OVERHEAD = 1.15
LIBRARIES = ("prefect", "feast", "duckdb", "mlflow", "xgboost", "sklearn", "matplotlib.figure")


def main(argv: Sequence[str] | None = None, base_import_seconds: float | None = None) -> int:
    args = parse_args(argv)

    def measured() -> dict[str, Any]:
        return {**run(args.events), "base_imports_seconds": base_import_seconds}

    run_in_fresh_home("training", measured, render, args)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks training", description=__doc__)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="impressions in all")
    return parse_options(parser, argv, smoke={"events": SMOKE_EVENTS})


def run(events: int) -> dict[str, Any]:
    settings = get_settings().apply()
    setup = Stopwatch()
    for library in LIBRARIES:
        with setup.stage(f"import {library}"):
            importlib.import_module(library)

    from flows.ingest import ingest
    from flows.train import train
    from mlops.contracts.usecase import active_use_case
    from mlops.stores.feature_store import open_store
    from mlops.stores.offline_store import OfflineStore
    from mlops.stores.registry import ModelRegistry
    from models import dataset, mlflow_logging, promotion, training

    use_case = active_use_case(settings)
    card = use_case.card
    days = card.training.span_days
    budget = card.training.model_copy(update={"search_trials": 1})
    assert use_case.generator is not None, f"{use_case.name} has no traffic generator"
    with setup.stage(f"generate {days} days"):
        batches = use_case.generator.generate(
            settings.landing_dir, start=START, days=days, events_per_day=events // days, seed=SEED
        )
    with setup.stage("ingest (starts the Prefect server)"):
        ingest(batches)  # a rejected batch raises
    with setup.stage("create the MLflow store"):
        mlflow_logging.experiment_id(settings, use_case)

    stages = Stopwatch()
    offline = OfflineStore(settings.offline_dir)
    windows = dataset.TimeWindows.ending_at(dataset.training_end(offline, None), card.training)
    store = open_store(settings, use_case)
    with stages.stage("point-in-time join"):
        events = dataset.labelled_events(offline, use_case, windows)
        training_set = dataset.build_training_set(store, events, use_case, windows)
    with stages.stage("model inputs and split"):
        splits = training.prepare_splits(training_set, use_case)
    # The flow's trees start from the use case's base margin: both sides fit the same model.
    margin = training.base_margin(
        use_case, list(splits.train_x.columns), lambda: float(splits.train_y.mean())
    )
    with stages.stage("fit xgboost (1 trial)"):
        fitted = training.fit_xgboost(
            splits.train_x,
            splits.train_y,
            splits.validation_x,
            splits.validation_y,
            budget,
            use_case.task,
            margin=margin,
        )
    with stages.stage("fit baselines"):
        baselines = training.fit_baselines(splits, budget, use_case.task)
    with stages.stage("score on test"):
        scores = training.score_on_test(splits, use_case, fitted.booster, baselines)
    with stages.stage("log MLflow run (plots, model)"):
        logged = mlflow_logging.log_training_run(
            settings,
            use_case,
            run_name="benchmark",
            params=fitted.params,
            lineage=training_set.lineage(use_case),
            evaluations=scores.evaluations,
            predictions=scores.predictions,
            labels=splits.test_y.to_numpy(),
            model=fitted,
            input_example=splits.test_x.head(5),
            serving_defaults=dataset.serving_defaults(training_set, use_case),
            monitoring_reference=training.holdout_reference(
                splits,
                fitted.booster,
                scores.predictions["model"],
                card.gates.monitoring,
                use_case.task,
            ),
            importance=scores.importance,
        )
    with stages.stage("register and gate"):
        registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
        version = registry.register(logged.model_uri, logged.run_id)
        decision = promotion.decide(
            scores.evaluations["model"], None, card.gates.promotion, card.offline_metrics.primary
        )
        registry.reject(version, "benchmark stage run, not a candidate")

    bare_runs = [bare_fit(splits, fitted.params, budget.early_stopping_rounds, margin)]
    flows = [run_flow(train, f"train flow, {label}") for label in ("first model", "challenger")]
    bare_runs.append(bare_fit(splits, fitted.params, budget.early_stopping_rounds, margin))
    bare = statistics.mean(b["seconds"] for b in bare_runs)
    for flow_run in flows:
        flow_run["around_fit_ratio"] = flow_run["around_fit_seconds"] / bare
        flow_run["all_but_join_ratio"] = flow_run["seconds_without_join"] / bare
    steady = flows[-1]["around_fit_ratio"]
    return {
        "events": len(training_set.frame),
        "cpu_count": os.cpu_count(),
        "rows": training_set.lineage(use_case)["rows"],
        "rounds": fitted.rounds,
        "stages": [asdict(m) for m in stages.measurements],
        "stage_decision": decision.reason,
        "bare_fit_runs": bare_runs,
        "bare_fit_seconds": bare,
        "flows": flows,
        "targets": [
            target(
                "train flow / bare fit (challenger run)", steady, "<=", TARGET_OVERHEAD, unit="x"
            )
        ],
        "one_time_setup": {
            "seconds": sum(m.seconds for m in setup.measurements),
            "steps": [asdict(m) for m in setup.measurements],
        },
        "process_peak_rss_mib": process_peak_rss_mib(),
    }


def bare_fit(
    splits: Any, params: dict[str, Any], early_stopping_rounds: int, margin: Any = None
) -> dict[str, Any]:
    """The plain baseline: build the matrices (with the same base margin) and train, nothing
    else."""
    import xgboost as xgb

    from models.training import MAX_ROUNDS

    def start(inputs: Any) -> Any:
        return margin.frame_margin(inputs) if margin else None

    with PeakRss() as rss:
        started = time.perf_counter()
        train = xgb.DMatrix(
            splits.train_x,
            splits.train_y,
            enable_categorical=True,
            base_margin=start(splits.train_x),
        )
        validation = xgb.DMatrix(
            splits.validation_x,
            splits.validation_y,
            enable_categorical=True,
            base_margin=start(splits.validation_x),
        )
        booster = xgb.train(
            params,
            train,
            num_boost_round=MAX_ROUNDS,
            evals=[(validation, "validation")],
            early_stopping_rounds=early_stopping_rounds,
            verbose_eval=False,
        )
        seconds = time.perf_counter() - started
    log.info("bare xgboost.train: %.2f s, %d rounds", seconds, booster.best_iteration + 1)
    return {"seconds": seconds, "rounds": booster.best_iteration + 1, "peak_rss_mib": rss.peak_mib}


def run_flow(train: Any, label: str) -> dict[str, Any]:
    """One train flow run, its wall time and its task runs' times from the Prefect API."""
    with PeakRss() as rss:
        started = time.perf_counter()
        state = train(search_trials=1, return_state=True)
        seconds = time.perf_counter() - started
    report = state.result()  # the flow's TrainReport; the state gives the run id
    tasks = asyncio.run(task_seconds(state.state_details.flow_run_id))
    join = tasks["point-in-time-join"]
    evaluation_work = tasks["fit-baselines"] + tasks["score-on-test"]
    log.info("%s: %.2f s (join %.2f s): %s", label, seconds, join, report.reason)
    return {
        "label": label,
        "seconds": seconds,
        "seconds_without_join": seconds - join,
        "around_fit_seconds": seconds - join - evaluation_work,
        "tasks": tasks,
        "decision": report.decision,
        "peak_rss_mib": rss.peak_mib,
    }


async def task_seconds(flow_run_id: UUID) -> dict[str, float]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {r.name: r.total_run_time.total_seconds() for r in runs}


def render(report: dict[str, Any]) -> str:
    lines = [
        f"Training, {report['events']:,} labelled impressions "
        f"(train {report['rows']['train']:,} / validation {report['rows']['validation']:,} / "
        f"test {report['rows']['test']:,}), {report['rounds']} rounds, "
        f"{report['cpu_count']} CPUs",
        "",
        *stage_table(report["stages"]),
        "",
        f"bare xgboost.train (DMatrix + fit), mean of {len(report['bare_fit_runs'])}: "
        f"{report['bare_fit_seconds']:.2f} s",
    ]
    for flow_run in report["flows"]:
        lines += [
            f"{flow_run['label']} ({flow_run['decision']}): {flow_run['seconds']:.2f} s, "
            f"peak {flow_run['peak_rss_mib']:.0f} MiB",
            f"    around the fit {flow_run['around_fit_seconds']:.2f} s = "
            f"{flow_run['around_fit_ratio']:.2f}x bare; all but the join "
            f"{flow_run['seconds_without_join']:.2f} s = {flow_run['all_but_join_ratio']:.2f}x",
            "    tasks: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(flow_run["tasks"].items())),
        ]
    lines += [
        f"process peak RSS (VmHWM): {report['process_peak_rss_mib']:.0f} MiB",
        "",
        f"one-time setup: {report['one_time_setup']['seconds']:.2f} s",
        *stage_table(report["one_time_setup"]["steps"]),
    ]
    return "\n".join(lines)
