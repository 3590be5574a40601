"""Evidently reports of one window against the champion's reference, and the workspace whose
dashboard shows them over time (`evidently ui --workspace MLOPS_HOME/monitoring/workspace`).

    drift report         every model input and the score: drift, nulls, value summaries
    performance report   ROC AUC and log loss on the labelled rows (when there are enough)

Drift is measured with fixed methods, whatever the sample size (Evidently would otherwise switch
from distances to p-values below 1,000 reference rows, and a threshold's meaning with them):
normed Wasserstein distance for numbers, Jensen-Shannon distance for categories; an input drifts
when its distance reaches the card's `column_drift_threshold`, the score at
`score_drift_threshold`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.reference import LABEL, SCORE

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

NUMERIC_METHOD = "wasserstein"
CATEGORY_METHOD = "jensenshannon"
PROJECT_DESCRIPTION = "Champion vs recent traffic: drift, data quality, performance, decisions."


@dataclass(frozen=True)
class DriftResult:
    drift_share: float  # share of model inputs that drifted
    drifted_inputs: list[str]
    score_drift: float  # the score's normed Wasserstein distance
    score_drifted: bool
    column_drift: dict[str, float]  # every input's distance


def input_columns(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """Model inputs both frames carry (a window served by an older model may lack some)."""
    return [c for c in reference.columns if c not in (SCORE, LABEL) and c in current.columns]


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    categorical: set[str],
    threshold: float,
    score_threshold: float,
    *,
    timestamp: datetime,
    tags: list[str],
    metadata: dict[str, Any],
) -> tuple[Snapshot, DriftResult]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    inputs = input_columns(reference, current)
    definition = DataDefinition(
        numerical_columns=[c for c in inputs if c not in categorical] + [SCORE],
        categorical_columns=[c for c in inputs if c in categorical],
    )
    report = Report(
        [
            DataDriftPreset(
                columns=inputs,
                num_method=NUMERIC_METHOD,
                cat_method=CATEGORY_METHOD,
                threshold=threshold,
            ),
            ValueDrift(column=SCORE, method=NUMERIC_METHOD, threshold=score_threshold),
            DataSummaryPreset(columns=[*inputs, SCORE]),
        ]
    )
    snapshot = report.run(
        Dataset.from_pandas(_typed(current[[*inputs, SCORE]], categorical), definition),
        Dataset.from_pandas(_typed(reference[[*inputs, SCORE]], categorical), definition),
        timestamp=timestamp,
        tags=tags,
        metadata=metadata,
    )
    return snapshot, _drift_result(snapshot.dict(), inputs)


def performance_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    timestamp: datetime,
    tags: list[str],
    metadata: dict[str, Any],
) -> Snapshot:
    """ROC AUC and log loss of the labelled current rows against the reference's."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import LogLoss, RocAuc
    from sklearn.exceptions import UndefinedMetricWarning

    definition = DataDefinition(
        numerical_columns=[SCORE],
        classification=[BinaryClassification(target=LABEL, prediction_probas=SCORE)],
    )

    def labelled(frame: pd.DataFrame) -> Any:
        rows = frame.loc[frame[LABEL].notna(), [SCORE, LABEL]].astype({LABEL: "int64"})
        return Dataset.from_pandas(rows, definition)

    # Evidently computes threshold metrics underneath; at a click rate of ~1.5% no score
    # crosses 0.5, and sklearn warns about precision nobody asked for.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return Report([RocAuc(), LogLoss()]).run(
            labelled(current),
            labelled(reference),
            timestamp=timestamp,
            tags=tags,
            metadata=metadata,
        )


def _typed(frame: pd.DataFrame, categorical: set[str]) -> pd.DataFrame:
    """Categories as strings, numbers as floats (None -> NaN): what Evidently expects."""
    return frame.apply(
        lambda c: c.astype("string") if c.name in categorical else pd.to_numeric(c).astype(float)
    )


def _drift_result(snapshot: dict[str, Any], inputs: list[str]) -> DriftResult:
    distances, drifted = {}, set()
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            distances[config["column"]] = float(metric["value"])
            if metric["value"] >= config["threshold"]:
                drifted.add(config["column"])
    if SCORE not in distances:
        raise RuntimeError("Evidently returned no drift result for the score")
    moved = sorted(drifted & set(inputs))
    return DriftResult(
        drift_share=len(moved) / len(inputs) if inputs else 0.0,
        drifted_inputs=moved,
        score_drift=distances[SCORE],
        score_drifted=SCORE in drifted,
        column_drift={c: round(d, 4) for c, d in distances.items() if c in inputs},
    )


def annotate(snapshot: Snapshot, metadata: dict[str, Any], tags: list[str]) -> None:
    """Add the gate's verdict to a snapshot, so the workspace shows it with the report. The
    verdict is decided from the report, after it ran; Evidently 0.7 has no public setter."""
    snapshot._metadata.update(metadata)
    snapshot._tags.extend(t for t in tags if t not in snapshot._tags)


def save_html(snapshot: Snapshot, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def add_to_workspace(
    workspace_dir: Path, project_name: str, window_end: str, snapshots: list[Snapshot]
) -> None:
    """Add a window's snapshots to the local workspace, replacing those of an earlier run of
    the same window; the project and its dashboard are made once."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(workspace_dir))
    found = workspace.search_project(project_name)
    project = found[0] if found else _create_project(workspace, project_name)
    for run_id in workspace.list_runs(project.id):
        earlier = workspace.get_run(project.id, run_id)
        if earlier is not None and earlier.metadata.get("window_end") == window_end:
            workspace.delete_run(project.id, run_id)
    for snapshot in snapshots:
        workspace.add_run(project.id, snapshot, include_data=False)


def _create_project(workspace: Any, name: str) -> Any:
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel, text_panel

    project = workspace.create_project(name, description=PROJECT_DESCRIPTION)

    def metric(legend: str, name: str, **labels: str) -> PanelMetric:
        return PanelMetric(legend=legend, metric=name, metric_labels=labels)

    panels = [
        text_panel(title=f"{name}: monitoring", description=PROJECT_DESCRIPTION),
        line_plot_panel(
            title="Share of drifted model inputs",
            values=[metric("share", "DriftedColumnsCount", value_type="share")],
            size="half",
        ),
        line_plot_panel(
            title="Score drift",
            values=[metric("score", "ValueDrift", column=SCORE)],
            size="half",
        ),
        line_plot_panel(
            title="Mean score",
            values=[metric("score", "MeanValue", column=SCORE)],
            size="half",
        ),
        line_plot_panel(
            title="Labelled performance", values=[metric("ROC AUC", "RocAuc")], size="half"
        ),
        line_plot_panel(
            title="Rows with a missing value",
            values=[metric("share", "DatasetMissingValueCount", value_type="share")],
            size="half",
        ),
    ]
    for panel in panels:
        project.dashboard.add_panel(panel)
    return project
