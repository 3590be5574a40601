"""Monitor flow: a window of traffic against the champion's reference, Evidently reports, the
monitoring gate, and retraining when the gate says so; and a @challenger shadowing the
champion promoted or rejected on live evidence, when the card says so.

The work lives in `monitoring/`; this file says in which order it runs and what is recorded:
the verdict and its reason go to the history, the MLflow run, the Evidently workspace (shown on
its dashboard) and a Prefect artifact. The flow run, like everything else about the window, is
named by the day judged: `monitor-2026-01-11` for the window ending at 2026-01-12T00:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import prefect.runtime as prefect_runtime
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed

from flows.prefect_names import artifact_key, name_flow_run
from flows.results import RESULT_SERIALIZER
from mlops.config.errors import UserError
from mlops.config.runtime import setup
from mlops.config.settings import Settings
from mlops.contracts.usecase import active_use_case
from mlops.stores.mlflow_runs import day_name
from mlops.stores.offline_store import OfflineStore
from mlops.stores.reference import load_reference
from mlops.stores.registry import ModelRegistry
from models.train_report import TrainReport
from monitoring.attribution import attribution_shift
from monitoring.gate import decide
from monitoring.history import History
from monitoring.live_evidence import LiveVerdict, live_verdict
from monitoring.record import (
    MonitorReport,
    evidently_reports,
    record_verdict,
    reference_performance,
    report_context,
)
from monitoring.signals import Signals
from monitoring.window import read_window, window_bounds

# Frames flow between these tasks: hashing them for a cache key would cost more than the work.
read = task(cache_policy=NO_CACHE, task_run_name="read-window")(read_window)
reference_of = task(cache_policy=NO_CACHE, task_run_name="load-reference")(load_reference)
reports_of = task(cache_policy=NO_CACHE, task_run_name="evidently-reports")(evidently_reports)
attribution_of = task(cache_policy=NO_CACHE, task_run_name="attribution-shift")(attribution_shift)
record = task(cache_policy=NO_CACHE, task_run_name="record-verdict")(record_verdict)


@dataclass
class MonitorResult:
    """The judged window, and the retraining it started (a local run's report, or a note)."""

    judged: MonitorReport
    flow_run_id: str | None = None  # where the Prefect UI shows this run
    retraining: TrainReport | None = None
    retraining_note: str | None = None
    challenger: LiveVerdict | None = None  # the @challenger judged on live evidence

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.judged.to_dict(),
            "flow_run_id": self.flow_run_id,
            "retraining": self.retraining.to_dict() if self.retraining else None,
            "retraining_note": self.retraining_note,
            "challenger": self.challenger.to_dict() if self.challenger else None,
        }


@flow(name="monitor", persist_result=True, result_serializer=RESULT_SERIALIZER)
def monitor(as_of: datetime | None = None, retrain: bool = True, seed: int = 0) -> MonitorResult:
    """Judge the window ending at `as_of` (default: the newest ingested batch's close) against
    the champion; retrain on a recent window when the gate says so and `retrain` is on."""
    settings = setup()
    use_case = active_use_case(settings)
    gate = use_case.card.gates.monitoring
    registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
    # A promotion or rejection of the @challenger cut short is finished first; a training
    # under way is not taken for dead.
    registry.reconcile(abandon_pending=False)
    champion = registry.champion()
    start, end = window_bounds(OfflineStore(settings.offline_dir), gate, as_of)
    name_flow_run(f"monitor-{day_name(end)}")

    window = read(settings, use_case, start, end, gate.sample_rows, seed)
    reference = reference_of(registry, champion)
    context = report_context(window, use_case, champion)
    snapshots, drift = reports_of(reference, window, use_case, gate, context)
    attribution = (
        attribution_of(
            registry.load_booster(champion), use_case.categories, reference, window.sample
        )
        if window.rows
        else None
    )
    task = use_case.task
    performance = reference_performance(reference, task)
    signals = Signals.measured(window, task.primary, performance, drift, attribution)
    history = History(settings.monitoring_dir / "history.json")
    verdict = decide(signals, history.drifted_before(end.isoformat(), champion), gate)
    judged = record(settings, use_case, window, signals, verdict, champion, snapshots)
    create_markdown_artifact(
        key=artifact_key("monitor", use_case.model_name),
        markdown=judged.markdown(),
        description=f"{judged.day} v{champion} {verdict.decision}: {verdict.reason}"[:500],
    )
    announce(use_case.model_name, judged)
    result = MonitorResult(judged, flow_run_id=prefect_runtime.flow_run.id)
    result.challenger = judge_challenger(settings, use_case, registry, champion, end, context, seed)
    if result.challenger is not None:
        apply_live_verdict(registry, use_case.model_name, result.challenger)
    if verdict.decision == "retrain" and retrain:
        result.retraining_note = stands_in_for_retraining(result.challenger)
        if result.retraining_note is None:
            _retrain(settings, end, result)
    # The verdict is the run's state message in the Prefect UI; callers get `result` itself.
    return cast(
        MonitorResult, Completed(message=f"{judged.decision}: {judged.reason}", data=result)
    )


def stands_in_for_retraining(trial: LiveVerdict | None) -> str | None:
    """Why a retraining the verdict asks for is not started (a note), or None to start it:
    a challenger promoted on live evidence was trained on more recent data; one still waiting
    for its labels would be replaced by one as recent, its trial started over."""
    if trial is None or trial.decision == "reject":
        return None
    if trial.decision == "promote":
        return (
            f"not retrained: v{trial.challenger_version}, trained on more recent data, was "
            "promoted on live evidence"
        )
    return f"not retrained: v{trial.challenger_version} is on live trial ({trial.reason})"


judge_challenger = task(cache_policy=NO_CACHE, task_run_name="judge-challenger")(live_verdict)
LIVE_EVIDENCE = "live evidence"  # who decides, in the registry's records
LIVE_EVENT = "mlops.challenger.{decision}"  # mlops.challenger.promote | .reject | .wait


@task(cache_policy=NO_CACHE, task_run_name="apply-live-verdict")
def apply_live_verdict(registry: ModelRegistry, model_name: str, live: LiveVerdict) -> None:
    """The verdict in the registry (the challenger promoted or rejected, or a note that it
    waits), a Prefect artifact and an event. A rerun after it was applied finds no challenger."""
    from prefect.events import emit_event

    version = live.challenger_version
    if live.decision == "promote":
        registry.promote(version, live.reason, by=LIVE_EVIDENCE)
    elif live.decision == "reject":
        registry.reject(version, live.reason, by=LIVE_EVIDENCE)
    else:
        registry.note(version, {"live_evidence": live.reason})
    create_markdown_artifact(
        key=artifact_key("live-evidence", model_name),
        markdown=live.markdown(),
        description=live.reason[:500],
    )
    emit_event(
        event=LIVE_EVENT.format(decision=live.decision),
        resource={
            "prefect.resource.id": f"mlops.model.{model_name}",
            "prefect.resource.name": model_name,
        },
        payload=live.to_dict(),
    )


VERDICT_EVENT = "mlops.monitor.{decision}"  # mlops.monitor.none | .retrain | .alert


def announce(model_name: str, judged: MonitorReport) -> None:
    """The verdict where people and automations see it: the run's log (a warning for an
    alert), the run's tags, and a Prefect event that `mlops deploy`'s automation reacts to."""
    from prefect import get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.events import emit_event
    from prefect.runtime import flow_run

    logger = get_run_logger()
    say = logger.warning if judged.decision == "alert" else logger.info
    say("%s: %s", judged.decision, judged.reason)
    with get_client(sync_client=True) as client:
        client.update_flow_run(
            flow_run.id,
            tags=[*flow_run.tags, f"decision:{judged.decision}", f"v{judged.champion_version}"],
        )
    emit_event(
        event=VERDICT_EVENT.format(decision=judged.decision),
        resource={
            "prefect.resource.id": f"mlops.model.{model_name}",
            "prefect.resource.name": model_name,
        },
        payload={
            "reason": judged.reason,
            "model_version": judged.champion_version,
            "day": judged.day,
            "window_start": judged.window["start"],
            "window_end": judged.window["end"],
            "mlflow_run": judged.run_url,
        },
    )


def _retrain(settings: Settings, end: datetime, result: MonitorResult) -> None:
    """Locally a subflow; on a Prefect server, a run of the train deployment (a worker runs
    it; `run_deployment` links it to this run)."""
    from flows.dispatch import run_flow
    from flows.train import train

    try:
        result.retraining = run_flow(settings, train, as_of=end, recent=True)
    except UserError as not_trained:  # e.g. too few labelled rows yet: a note, not a failure
        result.retraining_note = f"not trained: {not_trained}"
