"""The closed loop, day by day: what `mlops run` (and `make run`) shows.

    generate the world's days (seeded; the future waits in MLOPS_HOME/simulation/)
    bootstrap: land and ingest the first days, train the first champion, start the service
    each later day:
        the day's events are sent to the running service over HTTP    (traffic, prediction log)
        the day's batch lands and is ingested                          (clicks arrive, quarantine)
        the monitor flow judges the day against the champion           (none | retrain | alert)
        a retrained model that passed the gates is picked up by the service on its own

Traffic goes before ingestion on purpose: during a day the online store holds what was known
at the previous day's close, exactly what training's point-in-time join gives the same events.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.errors import UserError
from mlops.lifecycle_page import write_page
from mlops.settings import Settings
from mlops.usecase import UseCase

if TYPE_CHECKING:
    import pandas as pd

    from flows.monitor import MonitorResult
    from ingestion.steps import IngestResult

START = date(2026, 1, 1)


class LifecycleError(RuntimeError):
    """The run cannot go on (a flow failed where the story needs it to succeed): a platform
    failure, not the user's input."""


@dataclass(frozen=True)
class Scenario:
    days: int = 14
    events_per_day: int = 10_000
    scenario: str = "concept-drift"
    drift_day: int = 10
    incident_day: int | None = 8
    seed: int = 7


@dataclass
class Day:
    day: str
    rows: int  # events that happened that day
    quarantined: int
    champion_version: str | None  # the version that served the day's traffic
    metrics: dict[str, float | None]
    drift_share: float | None
    score_drift: float | None
    decision: str  # none | retrain | alert
    reason: str
    served: int = 0
    refused: int = 0
    retrained: dict[str, Any] | None = None
    links: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lifecycle:
    scenario: Scenario
    bootstrap: dict[str, Any]
    days: list[Day]
    summary_html: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": asdict(self.scenario),
            "bootstrap": self.bootstrap,
            "days": [asdict(d) for d in self.days],
            "summary_html": self.summary_html,
        }


def run_lifecycle(
    settings: Settings,
    use_case: UseCase,
    scenario: Scenario,
    on_day: Callable[[Day], None] = lambda day: None,
    on_progress: Callable[[str], None] = lambda step: None,
) -> Lifecycle:
    from flows.deployed import run_flow
    from flows.train import train
    from serving.process import free_port, start_service

    check_scenario(use_case, scenario)
    bootstrap_days = use_case.card.training.span_days
    future = settings.home / "simulation"
    on_progress(f"generating {scenario.days} days of {scenario.events_per_day:,} events")
    batches = use_case.generate(
        future,
        start=START,
        days=scenario.days,
        events_per_day=scenario.events_per_day,
        seed=scenario.seed,
        scenario=scenario.scenario,
        drift_day=scenario.drift_day,
        incident_day=scenario.incident_day,
    )

    where = (
        "on the worker, through the deployments"
        if settings.profile == "server"
        else "starts a local Prefect server"
    )
    on_progress(f"ingesting the first {bootstrap_days} days ({where})")
    ingested = _ingest(settings, [land(b, settings.landing_dir) for b in batches[:bootstrap_days]])
    on_progress("training the first model, then its infra check in a real service")
    trained = run_flow(settings, train, TRAIN, seed=scenario.seed)
    if trained.decision != "promoted":
        raise LifecycleError(f"the first model was not promoted: {trained.reason}")
    bootstrap = {
        "days": [r.batch_id for r in ingested.batches],
        "quarantined": sum(r.quarantined for r in ingested.batches),
        "model_version": trained.version,
        "metrics": trained.metrics,
        "run_url": trained.run_url,
    }
    on_progress(f"v{trained.version} is @champion; starting the prediction service")
    # The service polls for a new champion every second: the next day is served by it.
    service = start_service(
        settings, port=free_port(), overrides={"MLOPS_SERVING__POLL_SECONDS": "1"}
    )
    days: list[Day] = []
    try:
        for batch in batches[bootstrap_days:]:
            day = _live_day(settings, use_case, service, batch, scenario.seed)
            days.append(day)
            on_day(day)
    finally:
        service.stop()
    result = Lifecycle(scenario, bootstrap, days, "")
    result.summary_html = str(write_page(settings, use_case, result, START))
    return result


# The deployments (prefect.yaml) the server profile runs the flows through.
INGEST, TRAIN, MONITOR = "ingest/ingest", "train/train", "monitor/monitor"


def _ingest(settings: Settings, batch_dirs: list[Path]) -> IngestResult:
    """Every batch's report, whether or not a batch was rejected."""
    from flows.deployed import run_flow
    from flows.ingest import ingest
    from ingestion.steps import BatchesRejected

    try:
        return run_flow(settings, ingest, INGEST, batch_dirs=batch_dirs)
    except BatchesRejected as rejected:
        return rejected.result


def check_scenario(use_case: UseCase, scenario: Scenario) -> None:
    """Refuse, before anything runs, a scenario the story cannot tell."""
    bootstrap_days = use_case.card.training.span_days
    if scenario.days <= bootstrap_days:
        raise UserError(f"--days must exceed the {bootstrap_days} days the first model trains on")


def land(batch: Path, landing_dir: Path) -> Path:
    """A day's batch arrives in the landing zone whole (copied aside, then renamed)."""
    target = landing_dir / batch.name
    if not target.exists():
        partial = landing_dir / f".{batch.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(batch, partial)
        os.replace(partial, target)
    return target


def _live_day(settings: Settings, use_case: UseCase, service: Any, batch: Path, seed: int) -> Day:
    from flows.deployed import run_flow
    from flows.monitor import monitor
    from mlops.landing import read_batch
    from serving.traffic import replay, requests_for

    events = read_batch(batch, use_case.tables).tables[use_case.event_table]
    traffic = replay(service, requests_for(events, use_case))
    (report,) = _ingest(settings, [land(batch, settings.landing_dir)]).batches
    monitored = run_flow(settings, monitor, MONITOR, as_of=_closed_at(batch), seed=seed)
    judged, retrained = monitored.judged, monitored.retraining
    if retrained and retrained.decision == "promoted":
        _wait_for_version(service, retrained.version)
    performance = judged.window["performance"] or {}
    labelled = _labelled_rate(events, use_case)
    return Day(
        day=batch.name,
        rows=len(events),
        quarantined=report.quarantined,
        champion_version=traffic.model_versions.most_common(1)[0][0]
        if traffic.model_versions
        else None,
        metrics={
            "nce": performance.get("nce"),
            "roc_auc": performance.get("roc_auc"),
            "reference_nce": judged.signals["reference_nce"],
            "oracle_nce": _oracle_nce(events, use_case),
            "ctr": labelled,
            "label_coverage": judged.window["label_coverage"],
        },
        drift_share=judged.signals["drift_share"],
        score_drift=judged.signals["score_drift"],
        decision=judged.decision,
        reason=judged.reason,
        served=traffic.served,
        refused=traffic.refused,
        retrained=_retrain_summary(monitored),
        links={
            "monitoring_run": judged.run_url,
            "prefect_flow_run": monitored.flow_run_id,
            "evidently_reports": judged.reports,
            "data_docs": report.data_docs,
        },
    )


def _closed_at(batch: Path) -> datetime:
    from mlops.landing import read_manifest

    return datetime.fromisoformat(read_manifest(batch)["closed_at"])


def _oracle_nce(events: pd.DataFrame, use_case: UseCase) -> float | None:
    """The best NCE any model could reach on the day (a simulation knows the truth)."""
    if use_case.oracle_column is None:
        return None
    from mlops.metrics import nce

    known = events.dropna(subset=[use_case.label, use_case.oracle_column])
    if known.empty:
        return None
    return nce(known[use_case.label].to_numpy(float), known[use_case.oracle_column].to_numpy(float))


def _labelled_rate(events: pd.DataFrame, use_case: UseCase) -> float | None:
    labels = events[use_case.label].dropna()
    return float(labels.mean()) if len(labels) else None


def _retrain_summary(monitored: MonitorResult) -> dict[str, Any] | None:
    trained = monitored.retraining
    if trained is None:
        return {"note": monitored.retraining_note} if monitored.retraining_note else None
    return {
        "version": trained.version,
        "decision": trained.decision,
        "reason": trained.reason,
        "run_url": trained.run_url,
        "champion_version": trained.champion_version,
    }


def _wait_for_version(service: Any, version: str) -> None:
    """The service swaps by itself; the story waits for it so the next day is served by it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service.model_version() == version:
            return
        time.sleep(0.25)
    raise LifecycleError(f"the service did not pick up v{version} within 60 s")


def reset_home(settings: Settings) -> None:
    """Forget every state a run leaves (the whole MLOPS_HOME), so the story replays as told."""
    if settings.profile == "server":
        # The state also lives in PostgreSQL and Redis, and the running services use the home.
        raise UserError(
            "--reset replays from an empty local home; the server profile keeps its state in "
            "PostgreSQL and Redis too: for a fresh replay, `mlops down`, then use a new "
            "MLOPS_HOME and MLOPS_DATABASE_PREFIX (and an empty Redis database) and `mlops up`"
        )
    if settings.home.exists():
        shutil.rmtree(settings.home)


def closing_summary(settings: Settings, result: Lifecycle, log_files: list[str]) -> str:
    """What happened, what serves now, and where to look next."""
    alerts = [d for d in result.days if d.decision == "alert"]
    retrains = [
        (d.day, d.retrained) for d in result.days if d.retrained and "version" in d.retrained
    ]
    promoted = [r["version"] for _, r in retrains if r["decision"] == "promoted"]
    serving = promoted[-1] if promoted else result.bootstrap["model_version"]
    lines = ["", f"summary of {len(result.days)} monitored days:"]
    lines += [f"  alert     {d.day}: {d.reason}" for d in alerts] or ["  no alerts"]
    lines += [f"  retrained {day}: v{r['version']} {r['decision']}" for day, r in retrains] or [
        "  no retraining"
    ]
    lines += [
        f"  serving   v{serving} (first champion v{result.bootstrap['model_version']})",
        "",
        f"the story, day by day: {result.summary_html}",
        "the UIs: make mlflow-ui, make prefect-ui, make evidently-ui (README, 'Opening the UIs')",
        f"state under {settings.home}; logs: {', '.join(log_files)}",
    ]
    return "\n".join(lines)


def story_line(day: Day) -> str:
    """One readable line (two when a model was retrained) for a day."""
    nce = day.metrics["nce"]
    performance = f"NCE {nce:.4f}" if nce is not None else "no labels yet"
    line = (
        f"{day.day}  served {day.served} by v{day.champion_version}, refused {day.refused}, "
        f"quarantined {day.quarantined}; {performance} (ref {day.metrics['reference_nce']:.4f}), "
        f"drift {day.drift_share or 0:.0%} -> {day.decision.upper()}: {day.reason}"
    )
    if day.retrained and day.retrained.get("version"):
        line += (
            f"\n            retrained v{day.retrained['version']}: "
            f"{day.retrained['decision']} ({day.retrained['reason']})"
        )
    elif day.retrained:
        line += f"\n            retraining: {day.retrained.get('note')}"
    return line
