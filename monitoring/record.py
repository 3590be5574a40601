"""What one monitoring window leaves behind, and what `mlops monitor` reports: the Evidently
reports, the verdict history, the Evidently workspace, an MLflow run and a summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.card import MonitoringGate
from mlops.metrics import nce
from mlops.reference import LABEL, SCORE
from mlops.settings import Settings
from mlops.tracking import LoggedRun, experiment_id, run_url
from mlops.usecase import UseCase
from monitoring import report
from monitoring.gate import Signals, Verdict
from monitoring.history import History
from monitoring.window import Window


@dataclass
class MonitorReport:
    """One judged window: what `mlops monitor --json` prints and the Prefect artifact shows."""

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
        performance = window["performance"] or {}
        lines = [
            f"# Monitoring {window['start']} .. {window['end']}: **{self.decision}**",
            "",
            self.reason,
            "",
            "| measure | value |",
            "|---|---|",
            f"| champion | v{self.champion_version} |",
            f"| rows / labelled | {window['rows']} / {window['labelled']} |",
            f"| label coverage | {window['label_coverage']:.1%} |",
            f"| quarantined events | {window['quarantined_fraction']:.2%} |",
            f"| inputs drifted | {signals['drift_share']:.0%} {signals['drifted_inputs']} |",
            f"| score drifted | {signals['score_drifted']} |",
            f"| NCE / reference | {performance.get('nce', float('nan')):.4f} / "
            f"{signals['reference_nce']:.4f} |",
            "",
            f"Reports: {', '.join(self.reports) or 'none'}; MLflow: {self.run_url}",
        ]
        return "\n".join(lines)


def reference_nce(reference: pd.DataFrame) -> float:
    return nce(reference[LABEL].to_numpy(), reference[SCORE].to_numpy())


def evidently_reports(
    reference: pd.DataFrame,
    window: Window,
    use_case: UseCase,
    gate: MonitoringGate,
    context: dict[str, Any],
) -> tuple[list[Any], report.DriftResult | None]:
    """The drift report when the window has rows; the performance report once enough clicks
    have arrived."""
    if not window.rows:
        return [], None
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


def record_verdict(
    settings: Settings,
    use_case: UseCase,
    window: Window,
    signals: Signals,
    verdict: Verdict,
    champion: str,
    snapshots: list[Any],
) -> MonitorReport:
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
    logged = log_monitoring_run(
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
    return MonitorReport(
        window=window.summary(),
        champion_version=champion,
        signals=asdict(signals),
        decision=verdict.decision,
        reason=verdict.reason,
        drifted=verdict.drifted,
        reports=[str(p) for p in reports],
        run_url=run_url(settings, logged),
    )


def log_monitoring_run(
    settings: Settings,
    use_case: UseCase,
    *,
    run_name: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    artifacts: list[Path],
) -> LoggedRun:
    """One monitoring window: its measurements, the gate's verdict as tags, its reports. A
    rerun of the same window (same `window.end` tag) replaces the earlier run."""
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
        for path in artifacts:
            mlflow.log_artifact(str(path), "reports")
        return LoggedRun(run.info.run_id, "", run.info.experiment_id)
