"""Monitor flow: a window of traffic against the champion's reference, Evidently reports, the
monitoring gate, and retraining when the gate says so.

The work lives in `monitoring/`; this file says in which order it runs and what is recorded:
the verdict and its reason go to the history, the MLflow run, the Evidently workspace (shown on
its dashboard) and a Prefect artifact.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from flows.artifacts import artifact_key
from mlops.card import MonitoringGate
from mlops.metrics import nce
from mlops.offline_store import OfflineStore
from mlops.reference import LABEL, SCORE, load_reference
from mlops.registry import CHAMPION, ModelRegistry
from mlops.settings import Settings, get_settings
from mlops.usecase import UseCase, load_use_case
from models import tracking
from monitoring import report
from monitoring.gate import Signals, Verdict, decide
from monitoring.history import History
from monitoring.window import Window, read_window

read = task(read_window, cache_policy=NO_CACHE, task_run_name="read-window")
reference_of = task(load_reference, cache_policy=NO_CACHE, task_run_name="load-reference")
# Deployment that runs training on a Prefect server (prefect.yaml).
TRAIN_DEPLOYMENT = "train/train"


@task(cache_policy=NO_CACHE, task_run_name="evidently-reports")
def evidently_reports(
    reference: Any, window: Window, use_case: UseCase, gate: MonitoringGate, context: dict
) -> tuple[list[Any], report.DriftResult]:
    """The drift report always; the performance report once enough clicks have arrived."""
    snapshot, drift = report.drift_report(
        reference,
        window.sample,
        set(use_case.categories),
        gate.column_drift_threshold,
        gate.score_drift_threshold,
        **context,
    )
    snapshots = [snapshot]
    if window.sample[LABEL].notna().sum() >= gate.min_labelled_rows:
        snapshots.append(report.performance_report(reference, window.sample, **context))
    return snapshots, drift


@task(cache_policy=NO_CACHE, task_run_name="record-verdict")
def record(
    settings: Settings,
    use_case: UseCase,
    window: Window,
    signals: Signals,
    verdict: Verdict,
    champion: str,
    snapshots: list[Any],
) -> dict[str, Any]:
    """History, HTML reports, Evidently workspace, MLflow run: each with the verdict."""
    label = f"{window.end:%Y-%m-%dT%H%M}"
    tags = {"decision": verdict.decision, "reason": verdict.reason, "model_version": champion}
    reports = []
    for snapshot, kind in zip(snapshots, ("drift", "performance"), strict=False):
        report.annotate(snapshot, tags, [f"decision:{verdict.decision}"])
        path = settings.monitoring_dir / "reports" / label / f"{kind}.html"
        reports.append(report.save_html(snapshot, path))
    if snapshots:
        report.add_to_workspace(
            settings.monitoring_dir / "workspace",
            use_case.name,
            window.end.isoformat(),
            snapshots,
        )
    metrics = {
        "rows": window.rows,
        "labelled": window.labelled,
        "label_coverage": window.label_coverage,
        "quarantined_fraction": window.quarantined_fraction,
        "drift_share": signals.drift_share,
        "score_drifted": float(signals.score_drifted),
        "reference_nce": signals.reference_nce,
        **({"nce": signals.nce} if signals.nce is not None else {}),
        **{f"null_fraction.{c}": f for c, f in signals.null_fraction.items()},
    }
    logged = tracking.log_monitoring_run(
        settings,
        use_case,
        run_name=f"monitor-{label}",
        metrics=metrics,
        tags={
            **tags,
            "window.start": window.start.isoformat(),
            "window.end": window.end.isoformat(),
        },
        artifacts=reports,
    )
    History(settings.monitoring_dir / "history.json").record(
        {
            "window_end": window.end.isoformat(),
            "model_version": champion,
            **verdict.to_dict(),
            "run_id": logged.run_id,
        }
    )
    return {"reports": [str(p) for p in reports], "run_url": tracking.run_url(settings, logged)}


@flow(name="monitor")
def monitor(as_of: datetime | None = None, retrain: bool = True, seed: int = 0) -> dict | State:
    """Judge the window ending at `as_of` (default: the newest ingested batch's close) against
    the champion; retrain on a recent window when the gate says so and `retrain` is on."""
    settings = get_settings()
    use_case = load_use_case(settings.use_case)
    gate = use_case.card.gates.monitoring
    registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
    champion = registry.alias(CHAMPION)
    if champion is None:
        return Failed(message=f"model '{use_case.model_name}' has no @{CHAMPION} to monitor")
    end = as_of or OfflineStore(settings.offline_dir).watermark() or datetime.now(UTC)
    start = end - timedelta(hours=gate.window_hours)

    window = read(settings, use_case, start, end, gate.sample_rows, seed)
    reference = reference_of(registry, champion)
    context = {
        "timestamp": end,
        "tags": [use_case.name, f"model:v{champion}"],
        "metadata": {"window_start": start.isoformat(), "window_end": end.isoformat()},
    }
    snapshots, drift = (
        evidently_reports(reference, window, use_case, gate, context) if window.rows else ([], None)
    )
    reference_nce = nce(reference[LABEL].to_numpy(), reference[SCORE].to_numpy())
    signals = Signals.measured(window, reference_nce, drift)
    history = History(settings.monitoring_dir / "history.json")
    verdict = decide(signals, history.drifted_before(end.isoformat(), champion), gate)
    recorded = record(settings, use_case, window, signals, verdict, champion, snapshots)

    result: dict[str, Any] = {
        "window": window.summary(),
        "champion_version": champion,
        "signals": asdict(signals),
        **verdict.to_dict(),
        **recorded,
        "retraining": None,
    }
    create_markdown_artifact(
        key=artifact_key("monitor", use_case.model_name),
        markdown=_markdown(result),
        description=f"{verdict.decision}: {verdict.reason}"[:500],
    )
    if verdict.decision == "retrain" and retrain:
        result["retraining"] = _retrain(settings, end)
    return result


def _retrain(settings: Settings, end: datetime) -> dict[str, Any]:
    """Locally a subflow; on a Prefect server, the train deployment (its worker runs it)."""
    parameters = {"as_of": end, "recent": True}
    if settings.profile == "server":
        from prefect.deployments import run_deployment

        run = run_deployment(TRAIN_DEPLOYMENT, parameters=parameters, timeout=1800)
        return {"flow_run_id": str(run.id), "state": run.state.name if run.state else None}
    from flows.train import train

    state = train(**parameters, return_state=True)
    if state.is_failed():
        return {"decision": "not trained", "reason": state.message}
    return state.result()


def _markdown(result: dict[str, Any]) -> str:
    window, signals = result["window"], result["signals"]
    performance = window["performance"] or {}
    lines = [
        f"# Monitoring {window['start']} .. {window['end']}: **{result['decision']}**",
        "",
        result["reason"],
        "",
        "| measure | value |",
        "|---|---|",
        f"| champion | v{result['champion_version']} |",
        f"| rows / labelled | {window['rows']} / {window['labelled']} |",
        f"| label coverage | {window['label_coverage']:.1%} |",
        f"| quarantined events | {window['quarantined_fraction']:.2%} |",
        f"| inputs drifted | {signals['drift_share']:.0%} {signals['drifted_inputs']} |",
        f"| score drifted | {signals['score_drifted']} |",
        f"| NCE / reference | {performance.get('nce', float('nan')):.4f} / "
        f"{signals['reference_nce']:.4f} |",
        "",
        f"Reports: {', '.join(result['reports']) or 'none'}; MLflow: {result['run_url']}",
    ]
    return "\n".join(lines)
