"""What one monitoring window leaves behind, and what `mlops monitor` reports: the Evidently
reports, the verdict history, the Evidently workspace, an MLflow run and a summary.

All of it is named by the day judged (`Window.day`: the window ending at 2026-01-12T00:00 judges
2026-01-11), the window's bounds kept alongside:

    MLflow run          monitor-2026-01-11 in <use case>-monitoring; its description is the
                        verdict and reason; it links to the model version it judged
    reports             MLOPS_HOME/monitoring/reports/2026-01-11/{drift,performance,gate}.html,
                        each opening on "drift — 2026-01-11 — v3 — retrain" and the reason
    Evidently           the same snapshots in the workspace, at 2026-01-11 on the dashboard
    history             MLOPS_HOME/monitoring/history.json, one entry per window
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.config.settings import Settings
from mlops.contracts.card import MonitoringGate
from mlops.contracts.tasks import Task
from mlops.contracts.usecase import UseCase
from mlops.stores.mlflow_runs import (
    LoggedRun,
    dataset,
    describe_run,
    experiment_id,
    naming_outage,
    run_url,
)
from mlops.stores.reference import LABEL, SCORE, predictions_of
from mlops.stores.registry import ModelRegistry
from monitoring import evidently_reports as evidently
from monitoring.history import History
from monitoring.signals import DriftResult, Signals, Verdict
from monitoring.window import Window


@dataclass
class MonitorReport:
    """One judged window: what `mlops monitor --json` prints and the Prefect artifact shows."""

    day: str  # the day judged: the name of everything this window left behind
    window: dict[str, Any]
    champion_version: str
    signals: dict[str, Any]
    decision: str
    reason: str
    drifted: bool
    reports: list[str]
    run_url: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        window, signals = self.window, self.signals
        performance, metric = window["performance"] or {}, signals["metric"]
        lines = [
            f"# Monitoring {self.day} — v{self.champion_version}: **{self.decision}**",
            "",
            self.reason,
            "",
            "| measure | value |",
            "|---|---|",
            f"| window | {window['start']} .. {window['end']} |",
            f"| champion | v{self.champion_version} |",
            f"| rows / labelled | {window['rows']} / {window['labelled']} |",
            f"| label coverage | {window['label_coverage']:.1%} |",
            f"| quarantined events | {window['quarantined_fraction']:.2%} |",
            f"| inputs drifted | {signals['drift_share']:.0%} {signals['drifted_inputs']} |",
            f"| score drifted | {signals['score_drifted']} |",
            f"| attribution shift | {_attribution(signals)} |",
            f"| {metric.upper()} / reference | {performance.get(metric, float('nan')):.4f} / "
            f"{signals['reference_performance']:.4f} |",
            "",
            f"Reports: {', '.join(self.reports) or 'none'}; MLflow: {self.run_url}",
        ]
        return "\n".join(lines)


def _attribution(signals: Mapping[str, Any]) -> str:
    shift = signals["attribution_shift"]
    return "n/a" if shift is None else f"{shift:.3f} ({', '.join(signals['attribution_moved'])})"


def reference_performance(reference: pd.DataFrame, task: Task) -> float:
    """The task's primary metric on the reference: what the window's is compared with."""
    return task.score(reference[LABEL].to_numpy(), predictions_of(task, reference))[task.primary]


def report_context(window: Window, use_case: UseCase, champion: str) -> dict[str, Any]:
    """What every Evidently snapshot of the window carries: the day judged as its timestamp
    (where the dashboard draws it), the bounds and model in its metadata and tags."""
    return {
        "timestamp": window.day_start,
        "tags": [use_case.name, f"model:v{champion}", f"day:{window.day}"],
        "metadata": {
            "day": window.day,
            "window_start": window.start.isoformat(),
            "window_end": window.end.isoformat(),
            "model_version": champion,
        },
    }


def evidently_reports(
    reference: pd.DataFrame,
    window: Window,
    use_case: UseCase,
    gate: MonitoringGate,
    context: dict[str, Any],
) -> tuple[dict[str, Any], DriftResult | None]:
    """The drift report when the window has rows; the performance report once enough labels
    have arrived. Keyed by kind: `drift`, `performance`."""
    if not window.rows:
        return {}, None
    snapshot, drift = evidently.drift_report(
        reference,
        window.sample,
        # A multiclass score is the predicted class: a category too.
        set(use_case.categories) | ({SCORE} if use_case.task.classes else set()),
        gate.column_drift_threshold,
        gate.score_drift_threshold,
        **context,
    )
    snapshots = {"drift": snapshot}
    if window.sample[LABEL].notna().sum() >= gate.min_labelled_rows:
        snapshots["performance"] = evidently.performance_report(
            reference, window.sample, use_case.task, **context
        )
    return snapshots, drift


def record_verdict(
    settings: Settings,
    use_case: UseCase,
    window: Window,
    signals: Signals,
    verdict: Verdict,
    champion: str,
    snapshots: Mapping[str, Any],
) -> MonitorReport:
    """History, HTML reports, Evidently workspace, MLflow run: each with the verdict, each
    named by the day judged."""
    day, gate = window.day, use_case.card.gates.monitoring
    context = report_context(window, use_case, champion)
    registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
    judged = registry.version(champion)
    model_uri = registry.uri(champion)
    metadata = {
        **context["metadata"],
        "decision": verdict.decision,
        "reason": verdict.reason,
        "model_uri": model_uri,
    }
    every = {
        **snapshots,
        "gate": evidently.gate_report(
            signals, gate, timestamp=context["timestamp"], tags=context["tags"], metadata={}
        ),
    }
    folder = settings.monitoring_dir / "reports" / day
    for stale in folder.glob("*.html"):  # a rerun of the day replaces its reports
        stale.unlink()
    reports = []
    for kind, snapshot in every.items():
        evidently.annotate(
            snapshot,
            name=evidently.report_name(kind, day, champion, verdict.decision),
            summary=_summary(kind, window, verdict, model_uri, use_case.task),
            counters=_counters(kind, day, champion, verdict, signals, gate),
            metadata=metadata,
            tags=[f"decision:{verdict.decision}"],
        )
        reports.append(evidently.save_html(snapshot, folder / f"{kind}.html"))
    evidently.add_to_workspace(
        settings.monitoring_dir / "workspace",
        use_case.name,
        window.end.isoformat(),
        list(every.values()),
        use_case.task,
        use_case.request_columns,
    )
    metrics = {
        "rows": window.rows,
        "labelled": window.labelled,
        "label_coverage": window.label_coverage,
        "quarantined_fraction": window.quarantined_fraction,
        "drift_share": signals.drift_share,
        "score_drifted": float(signals.score_drifted),
        **(
            {"attribution_shift": signals.attribution_shift}
            if signals.attribution_shift is not None
            else {}
        ),
        f"reference_{signals.metric}": signals.reference_performance,
        **({signals.metric: signals.performance} if signals.performance is not None else {}),
        **{f"null_fraction.{c}": f for c, f in signals.null_fraction.items()},
    }
    # MLflow before the history: a window MLflow could not record is not judged yet, and a
    # rerun of the day replaces whatever part of the run was logged.
    with naming_outage(settings.tracking_uri):
        logged = log_monitoring_run(
            settings,
            use_case,
            run_name=f"monitor-{day}",
            metrics=metrics,
            tags={
                "day": day,
                "decision": verdict.decision,
                "reason": verdict.reason,
                "model_version": champion,
                "model_uri": model_uri,
                "model_run_id": judged.run_id or "",
                "window.start": window.start.isoformat(),
                "window.end": window.end.isoformat(),
            },
            description=_run_description(day, window, verdict, champion, model_uri, judged.run_id),
            artifacts=reports,
            sample=window.sample if window.rows else None,
        )
    History(settings.monitoring_dir / "history.json").record(
        {
            "window_end": window.end.isoformat(),
            "day": day,
            "model_version": champion,
            **verdict.to_dict(),
            "run_id": logged.run_id,
        }
    )
    return MonitorReport(
        day=day,
        window=window.summary(),
        champion_version=champion,
        signals=asdict(signals),
        decision=verdict.decision,
        reason=verdict.reason,
        drifted=verdict.drifted,
        reports=[str(p) for p in reports],
        run_url=run_url(settings, logged),
    )


def _counters(
    kind: str,
    day: str,
    champion: str,
    verdict: Verdict,
    signals: Signals,
    gate: MonitoringGate,
) -> dict[str, str]:
    counters = {"day judged": day, "model": f"v{champion}", "verdict": verdict.decision}
    if kind == "performance":
        metric, value = signals.metric.upper(), signals.performance
        counters |= {
            f"{metric}, every labelled row": "n/a" if value is None else f"{value:.4f}",
            f"reference {metric}": f"{signals.reference_performance:.4f}",
            "retrain above": f"{signals.reference_performance + gate.max_degradation:.4f}",
        }
    return counters


def _summary(kind: str, window: Window, verdict: Verdict, model_uri: str, task: Task) -> str:
    what = {
        "drift": "The window's model inputs and score against the reference the model was "
        "trained with (a sample of the window).",
        "performance": f"{evidently.PERFORMANCE[task.kind].description} of the window's "
        f"labelled rows (a sample) against the reference; {task.primary.upper()} above is on "
        "every labelled row, as the gate judges it.",
        "gate": "What the monitoring gate decided from: every row of the window.",
    }[kind]
    return (
        f"**{verdict.decision}**: {verdict.reason}\n\n"
        f"Window {window.start.isoformat()} .. {window.end.isoformat()} "
        f"({window.rows} rows, {window.labelled} labelled), model `{model_uri}`. {what}"
    )


def _run_description(
    day: str,
    window: Window,
    verdict: Verdict,
    champion: str,
    model_uri: str,
    training_run: str | None,
) -> str:
    return "\n\n".join(
        [
            f"**{verdict.decision}** — {day} — v{champion}",
            verdict.reason,
            f"Window {window.start.isoformat()} .. {window.end.isoformat()}: {window.rows} "
            f"rows, {window.labelled} labelled, {window.quarantined} events quarantined.",
            f"Judged model: `{model_uri}` (training run `{training_run or 'unknown'}`). "
            "Reports: the `reports/` artifacts.",
        ]
    )


def log_monitoring_run(
    settings: Settings,
    use_case: UseCase,
    *,
    run_name: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    description: str,
    artifacts: list[Path],
    sample: pd.DataFrame | None = None,
) -> LoggedRun:
    """One monitoring window: its measurements, the gate's verdict as tags and description, its
    reports, and as input the sample the reports compared. The model it judged is in its tags
    (`model_uri`, `model_run_id`): a logged model as a run's input (`log_inputs(models=)`) is
    Databricks-only in open-source MLflow 3.17. A rerun of the same window (same `window.end`
    tag) replaces the earlier run."""
    import mlflow

    experiment = experiment_id(settings, use_case, "monitoring")
    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    if "window.end" in tags:
        earlier = client.search_runs(
            [experiment], filter_string=f"tags.`window.end` = '{tags['window.end']}'"
        )
        for run in earlier:
            client.delete_run(run.info.run_id)
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
        mlflow.set_tags({k: v[:5000] for k, v in tags.items()})
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        if sample is not None and len(sample):
            source = str(settings.predictions_dir)
            name = f"window {tags.get('day', run_name)}"
            mlflow.log_input(
                dataset(sample, name=name, source=source, targets=LABEL, predictions=SCORE),
                context="monitoring",
            )
        for path in artifacts:
            mlflow.log_artifact(str(path), "reports")
        logged = LoggedRun(run.info.run_id, "", run.info.experiment_id)
    describe_run(settings, logged.run_id, description)
    return logged
