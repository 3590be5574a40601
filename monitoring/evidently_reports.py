"""Evidently reports of one window against the champion's reference, and the workspace whose
dashboard shows them over time (`evidently ui --workspace MLOPS_HOME/monitoring/workspace`).

    drift report         every model input and the score: drift (each input's distribution
                         against the reference's), missing values; the score's summary
    performance report   the labelled rows, in the task kind's terms (`PERFORMANCE`): ROC AUC
                         and log loss; RMSE, MAE, errors, target drift; accuracy, F1, log
                         loss, recall per class, target drift (when enough labels arrived)
    gate report          the gate's measures on every row of the window, next to its limits:
                         NCE or NRMSE, quarantined events, requests without their context, drift
    live evidence        a @challenger against the champion on the same labelled live requests
                         (the champion as the reference: every chart side by side), and both
                         models' primary metric, which the dashboard draws as bars

Each is named for what it judged, "drift — 2026-01-11 — v3 — retrain" (kind, day judged, model
version, verdict), and opens on that name, the verdict and its reason. The dashboard draws the
gate's measures with their limits as a second line: Evidently 0.7 panels cannot draw a constant,
so the gate report carries each limit as a value of its own. NCE and NRMSE are not Evidently
metrics (a custom metric class would have to be importable by the `evidently ui` process to load
a snapshot), so they reach the dashboard the same way, from the gate report.

Drift is measured with fixed methods, whatever the sample size (Evidently would otherwise switch
from distances to p-values below 1,000 reference rows, and a threshold's meaning with them):
normed Wasserstein distance for numbers, Jensen-Shannon distance for categories; an input drifts
when its distance reaches the card's `column_drift_threshold`, the score at
`score_drift_threshold`.
"""

from __future__ import annotations

import html
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.contracts.card import MonitoringGate
from mlops.contracts.tasks import Task, TaskKind
from mlops.stores.reference import LABEL, SCORE, is_prediction, predictions_of
from monitoring.gate import performance_judged
from monitoring.signals import DriftResult, Signals

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

NUMERIC_METHOD = "wasserstein"
CATEGORY_METHOD = "jensenshannon"
PROJECT_DESCRIPTION = "Champion vs recent traffic: drift, data quality, performance, decisions."
GATE_TAG = "gate"  # the gate report's tag: the dashboard's gate series come from it
LIVE_TAG = "live-evidence"  # the live evidence's values: the dashboard's champion/challenger bars
# Beside a project's snapshots: window end -> the ids of its runs (`add_to_workspace`).
WINDOWS_INDEX = "mlops-windows.json"
WORKSPACE_KEY = "workspace_key"  # a snapshot's metadata: the index's key it was stored under


def input_columns(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """Model inputs both frames carry (a window served by an older model may lack some)."""
    return [
        c for c in reference.columns if c != LABEL and not is_prediction(c) and c in current.columns
    ]


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
    from evidently.metrics import MissingValueCount, ValueDrift
    from evidently.presets import DataDriftPreset, DatasetStats, ValueStats

    inputs = input_columns(reference, current)
    columns = [*inputs, SCORE]  # a multiclass score is the predicted class: a category
    definition = DataDefinition(
        numerical_columns=[c for c in columns if c not in categorical],
        categorical_columns=[c for c in columns if c in categorical],
    )
    score_method = CATEGORY_METHOD if SCORE in categorical else NUMERIC_METHOD
    report = Report(
        [
            DataDriftPreset(
                columns=inputs,
                num_method=NUMERIC_METHOD,
                cat_method=CATEGORY_METHOD,
                threshold=threshold,
            ),
            ValueDrift(column=SCORE, method=score_method, threshold=score_threshold),
            DatasetStats(),
            ValueStats(column=SCORE),
            # Not every input's value summary (DataSummaryPreset): each of its statistics draws
            # the column's histogram again, which the drift table already draws against the
            # reference; it doubled the report's cost (4.2 s -> 2.3 s, 15 columns, 3k vs 5k rows).
            *(MissingValueCount(column=c) for c in inputs),
        ]
    )
    snapshot = report.run(
        Dataset.from_pandas(_typed(current[columns], categorical), definition),
        Dataset.from_pandas(_typed(reference[columns], categorical), definition),
        timestamp=timestamp,
        tags=tags,
        metadata=metadata,
    )
    return snapshot, _drift_result(snapshot.dict(), inputs)


def performance_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    task: Task,
    *,
    timestamp: datetime,
    tags: list[str],
    metadata: dict[str, Any],
) -> Snapshot:
    """The labelled current rows against the reference's, in the task kind's own terms
    (`PERFORMANCE`)."""
    from evidently import Dataset, Report
    from sklearn.exceptions import UndefinedMetricWarning

    view = PERFORMANCE[task.kind]
    definition = view.definition(task)

    rows = [view.rows(frame.loc[frame[LABEL].notna()], task) for frame in (current, reference)]

    # Evidently computes threshold metrics underneath; at a rare label (a positive rate of ~1.5%)
    # no score crosses 0.5, and sklearn warns about precision nobody asked for (regression: R²
    # of a one-row group in a plot).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return Report(view.metrics(*rows)).run(
            Dataset.from_pandas(rows[0], definition),
            Dataset.from_pandas(rows[1], definition),
            timestamp=timestamp,
            tags=tags,
            metadata=metadata,
        )


@dataclass(frozen=True)
class PerformanceView:
    """How one task kind's labelled performance is reported: the Evidently metrics the
    performance report runs, and the dashboard lines drawn from them (legend, metric)."""

    description: str
    rows: Callable[[pd.DataFrame, Task], pd.DataFrame]  # the labelled rows, as Evidently reads
    definition: Callable[[Task], Any]
    metrics: Callable[[pd.DataFrame, pd.DataFrame], list[Any]]  # of the current, reference rows
    lines: tuple[tuple[str, str], ...]


def _score_and_label(frame: pd.DataFrame, task: Task) -> pd.DataFrame:
    return frame[[SCORE, LABEL]].astype({LABEL: task.label_dtype})


def _class_names(frame: pd.DataFrame, task: Task) -> pd.DataFrame:
    """The predicted class, the label's class and each class's probability, by class name
    (Evidently matches probability columns to the label's values by name)."""
    classes = list(task.classes)
    probabilities = predictions_of(task, frame)
    # Logged as float32, a row sums to 1 only within ~1e-7: sklearn's log loss (inside
    # Evidently) warns "y_prob values do not sum to one" above 1.5e-8.
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    rows = pd.DataFrame(probabilities, columns=classes, index=frame.index)
    rows.insert(0, SCORE, frame[SCORE])
    rows[LABEL] = np.asarray(classes, dtype=object)[frame[LABEL].to_numpy(np.int64)]
    return rows


def _binary_definition(task: Task) -> Any:
    from evidently import BinaryClassification, DataDefinition

    return DataDefinition(
        numerical_columns=[SCORE],
        classification=[BinaryClassification(target=LABEL, prediction_probas=SCORE)],
    )


def _binary_metrics(current: pd.DataFrame, reference: pd.DataFrame) -> list[Any]:
    from evidently.metrics import LogLoss, RocAuc

    return [RocAuc(), LogLoss()]


def _regression_definition(task: Task) -> Any:
    from evidently import DataDefinition, Regression

    return DataDefinition(
        numerical_columns=[SCORE, LABEL],
        regression=[Regression(target=LABEL, prediction=SCORE)],
    )


def _regression_metrics(current: pd.DataFrame, reference: pd.DataFrame) -> list[Any]:
    from evidently.metrics import MAE, RMSE, MeanError, R2Score, ValueDrift

    # Not Evidently's preset: its MAPE is infinite on any label of 0 (a count, a refund).
    return [
        RMSE(error_distr=True),
        MAE(error_distr=False),
        R2Score(),
        MeanError(error_plot=True),
        ValueDrift(column=LABEL, method=NUMERIC_METHOD),  # target drift
    ]


def _multiclass_definition(task: Task) -> Any:
    from evidently import DataDefinition, MulticlassClassification

    classes = list(task.classes)
    return DataDefinition(
        numerical_columns=classes,
        categorical_columns=[SCORE, LABEL],
        classification=[
            MulticlassClassification(
                target=LABEL, prediction_labels=SCORE, prediction_probas=classes
            )
        ],
    )


def _multiclass_metrics(current: pd.DataFrame, reference: pd.DataFrame) -> list[Any]:
    from evidently.metrics import Accuracy, F1Score, LogLoss, RecallByLabel, ValueDrift

    # Evidently 0.7's recall per class raises KeyError for a class either side's labels lack (a
    # rare class, absent from a day): it runs when both hold every class.
    classes = {c for c in current.columns if c not in (SCORE, LABEL)}
    both = classes <= set(current[LABEL]) and classes <= set(reference[LABEL])
    return [
        Accuracy(),
        F1Score(),  # with its confusion matrix
        LogLoss(),
        *([RecallByLabel()] if both else []),
        ValueDrift(column=LABEL, method=CATEGORY_METHOD),  # target drift
    ]


PERFORMANCE: dict[TaskKind, PerformanceView] = {
    "binary": PerformanceView(
        "ROC AUC and log loss",
        _score_and_label,
        _binary_definition,
        _binary_metrics,
        (("ROC AUC", "RocAuc"), ("log loss", "LogLoss")),
    ),
    "multiclass": PerformanceView(
        "accuracy, F1 and its confusion matrix, log loss, recall per class and the label's drift",
        _class_names,
        _multiclass_definition,
        _multiclass_metrics,
        (("accuracy", "Accuracy"), ("log loss", "LogLoss")),
    ),
    "regression": PerformanceView(
        "RMSE, MAE, R², the errors and the label's drift",
        _score_and_label,
        _regression_definition,
        _regression_metrics,
        (("RMSE", "RMSE"), ("MAE", "MAE")),
    ),
}


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


def report_name(kind: str, day: str, model_version: str, decision: str) -> str:
    """What a report is about, first: `drift — 2026-01-11 — v3 — retrain`."""
    return f"{kind} — {day} — v{model_version} — {decision}"


def gate_series(signals: Signals, gate: MonitoringGate) -> dict[str, float]:
    """The gate's measures on every row of the window and its limits, by series name (one panel
    draws series of one snapshot: from two, at the same time, the UI draws unjoined dots). The
    primary metric (`nce`, `nrmse`) only when the gate judged it (enough labelled rows), drift
    when the window had rows."""
    metric, judged = signals.metric, performance_judged(signals, gate)
    return {
        **({metric: judged} if judged is not None else {}),
        f"reference_{metric}": signals.reference_performance,
        f"{metric}_limit": signals.reference_performance + gate.max_degradation,
        "quarantined_share": signals.quarantined_fraction,
        "quarantined_limit": gate.max_quarantined_fraction,
        **{f"null_share_{c}": f for c, f in signals.null_fraction.items()},
        "null_limit": gate.max_null_fraction,
        **(
            {"drift_share": signals.drift_share, "score_drift": signals.score_drift}
            if signals.rows
            else {}
        ),
        "drift_share_limit": gate.drift_share,
        "score_drift_limit": gate.score_drift_threshold,
        **(
            {"attribution_shift": signals.attribution_shift}
            if signals.attribution_shift is not None
            else {}
        ),
    }


def gate_report(
    signals: Signals,
    gate: MonitoringGate,
    *,
    timestamp: datetime,
    tags: list[str],
    metadata: dict[str, Any],
) -> Snapshot:
    """The gate's measures and limits as one snapshot: each a `MeanValue` of a one-row column,
    which the dashboard plots; the report itself shows them as one table."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue

    values = gate_series(signals, gate)
    frame = pd.DataFrame([values])
    snapshot = Report([MeanValue(column=c) for c in values]).run(
        Dataset.from_pandas(frame, DataDefinition(numerical_columns=list(values))),
        None,
        timestamp=timestamp,
        tags=[*tags, GATE_TAG],
        metadata=metadata,
    )
    # One-value histograms say nothing: the page is the table (the values stay for the dashboard).
    snapshot._widgets[:] = [_gate_table(signals, gate)]
    return snapshot


def live_evidence_report(
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    task: Task,
    values: Mapping[str, float],
    *,
    timestamp: datetime,
    tags: list[str],
    metadata: dict[str, Any],
) -> Snapshot:
    """`values` (each model's primary metric on the same labelled live requests) as a snapshot
    the dashboard reads, whose page is a table of them and the challenger's answers against the
    champion's (Evidently's reference) in the task kind's terms. One snapshot: a performance
    report in the workspace would join the window's own on the dashboard's performance panel."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.renderers.html_widgets import table_data
    from evidently.metrics import MeanValue

    comparison = performance_report(
        champion, challenger, task, timestamp=timestamp, tags=tags, metadata=metadata
    )
    frame = pd.DataFrame([dict(values)])
    measured = Report([MeanValue(column=c) for c in values]).run(
        Dataset.from_pandas(frame, DataDefinition(numerical_columns=list(values))),
        None,
        timestamp=timestamp,
        tags=[*tags, LIVE_TAG],
        metadata=metadata,
    )
    table = table_data(
        title="Champion and challenger on the same labelled live requests",
        column_names=["measure", "value"],
        data=[[name, f"{value:.4f}"] for name, value in values.items()],
    )
    measured._widgets[:] = [table, *comparison._widgets]
    return measured


def _gate_table(signals: Signals, gate: MonitoringGate) -> Any:
    from evidently.legacy.renderers.html_widgets import table_data

    def judged(over: bool) -> str:
        return "OVER THE LIMIT" if over else "within"

    metric, value = signals.metric.upper(), performance_judged(signals, gate)
    limit = signals.reference_performance + gate.max_degradation
    if value is not None:
        performance = [f"{value:.4f}", judged(value > limit)]
    else:
        performance = ["n/a", f"not judged: fewer than {gate.min_labelled_rows} labelled rows"]
    rows = [
        ["rows / labelled", f"{signals.rows} / {signals.labelled}",
         f"a verdict from {gate.min_rows} rows, {metric} from {gate.min_labelled_rows} labelled",
         "too few: no verdict" if signals.rows < gate.min_rows else "enough"],
        [f"{metric} on every labelled row ({signals.labelled})", performance[0],
         f"retrain above {limit:.4f} (reference {signals.reference_performance:.4f} "
         f"+ {gate.max_degradation})", performance[1]],
        ["events quarantined by the data path", f"{signals.quarantined_fraction:.2%}",
         f"alert above {gate.max_quarantined_fraction:.2%}",
         judged(signals.quarantined_fraction > gate.max_quarantined_fraction)],
        *[
            [f"requests without '{c}'", f"{f:.2%}", f"alert above {gate.max_null_fraction:.2%}",
             judged(f > gate.max_null_fraction)]
            for c, f in signals.null_fraction.items()
        ],
        ["model inputs drifted", f"{signals.drift_share:.0%} "
         f"({', '.join(signals.drifted_inputs) or 'none'})",
         f"a drifted window from {gate.drift_share:.0%}",
         judged(signals.drift_share >= gate.drift_share)],
        ["score drift (normed Wasserstein)", f"{signals.score_drift:.3f}",
         f"a drifted window from {gate.score_drift_threshold}",
         judged(signals.score_drifted)],
        *(
            [["attribution shift (TreeSHAP shares, total variation)",
              f"{signals.attribution_shift:.3f} ({', '.join(signals.attribution_moved)})",
              "no limit", "informational"]]
            if signals.attribution_shift is not None
            else []
        ),
    ]  # fmt: skip
    return table_data(
        title="The monitoring gate: every row of the window against the card's limits",
        column_names=["measure", "this window", "limit", "judged"],
        data=rows,
    )


def annotate(
    snapshot: Snapshot,
    *,
    name: str,
    summary: str,
    counters: Mapping[str, str],
    metadata: dict[str, Any],
    tags: Sequence[str],
) -> None:
    """Name a snapshot and open it on what it judged: a title with `counters` (day, model,
    verdict...) and `summary` (the reason), in the saved HTML and in the workspace alike. The
    verdict is decided from the reports, after they ran; Evidently 0.7 has no public setter
    for metadata, tags or widgets."""
    from evidently.legacy.renderers.html_widgets import CounterData, counter, text_widget

    snapshot.set_name(name)
    snapshot._metadata.update(metadata)
    snapshot._tags.extend(t for t in tags if t not in snapshot._tags)
    header = [
        counter(title=name, counters=[CounterData(k, v) for k, v in counters.items()]),
        text_widget(text=summary),
    ]
    snapshot._widgets[:0] = header


def save_html(snapshot: Snapshot, path: Path) -> Path:
    """The report as one HTML file, titled with the snapshot's name (a browser tab says which
    window, model and verdict it is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page = snapshot.get_html_str(as_iframe=False)
    title = f"<title>{html.escape(snapshot.get_name() or path.stem)}</title>"
    path.write_text(page.replace("<head>", f"<head>\n{title}", 1), encoding="utf-8")
    return path


def add_to_workspace(
    workspace_dir: Path,
    project_name: str,
    window_end: str,
    snapshots: list[Snapshot],
    task: Task,
    request_columns: Sequence[str] = (),
) -> None:
    """Add a window's snapshots to the local workspace, replacing those of an earlier run of
    the same window; the project is made once, its dashboard given the panels it lacks.
    `window_end` names what the snapshots stand for: the window's end, or another key of the
    same window (`live-evidence <end>`), which replaces only its own.

    Which runs belong to which window is kept in an index beside the project's snapshots
    (`WINDOWS_INDEX`): finding them by reading every stored snapshot would cost a read of the
    project's whole history each day. A window whose replacement stopped half-way (marked
    `pending`), or a workspace without an index, is found by that read, once."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(workspace_dir))
    found = workspace.search_project(project_name)
    if found:
        project = found[0]
    else:
        project = workspace.create_project(project_name, description=PROJECT_DESCRIPTION)
    _add_missing_panels(project, dashboard_panels(project_name, task, request_columns))
    index_path = workspace_dir / str(project.id) / WINDOWS_INDEX
    index = _read_index(index_path)
    if index is None:
        index = _windows_by_reading_every_run(workspace, project.id)
    entry = index.get(window_end, {"runs": []})
    if entry.get("pending"):
        entry = _windows_by_reading_every_run(workspace, project.id).get(window_end, entry)
    # Recorded before adding: a rerun after a stop in between reads the project once instead
    # of leaving duplicates of this window.
    index[window_end] = {"runs": entry["runs"], "pending": True}
    _write_index(index_path, index)
    for snapshot in snapshots:  # found again by it if the index is lost
        snapshot._metadata[WORKSPACE_KEY] = window_end
    added = [str(workspace.add_run(project.id, s, include_data=False).id) for s in snapshots]
    stored = {str(run) for run in workspace.list_runs(project.id)}
    for run_id in entry["runs"]:
        if run_id in stored:
            workspace.delete_run(project.id, run_id)
    index[window_end] = {"runs": added}
    _write_index(index_path, index)


def _windows_by_reading_every_run(workspace: Any, project_id: Any) -> dict[str, dict[str, Any]]:
    """Window end -> the runs stored for it, from each stored snapshot's metadata."""
    index: dict[str, dict[str, Any]] = {}
    for run_id in workspace.list_runs(project_id):
        run = workspace.get_run(project_id, run_id)
        if run is None:
            continue
        if key := run.metadata.get(WORKSPACE_KEY) or run.metadata.get("window_end"):
            index.setdefault(key, {"runs": []})["runs"].append(str(run_id))
    return index


def _read_index(path: Path) -> dict[str, dict[str, Any]] | None:
    """The index, or None when there is none (or a torn one): rebuilt from the snapshots."""
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return None


def _write_index(path: Path, index: Mapping[str, Any]) -> None:
    """Whole or not at all: written beside, then moved over the old one."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(index, indent=1, sort_keys=True))
    partial.replace(path)


def dashboard_panels(project_name: str, task: Task, request_columns: Sequence[str]) -> list[Any]:
    """The gate's measures with their limits first (each limit a second line), then drift,
    scores and labelled performance."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel, text_panel

    def metric(legend: str, name: str, **labels: str) -> PanelMetric:
        return PanelMetric(legend=legend, metric=name, metric_labels=labels)

    primary = task.primary
    name = primary.upper()

    def gate_line(legend: str, series: str) -> PanelMetric:
        return PanelMetric(
            legend=legend, metric="MeanValue", metric_labels={"column": series}, tags=[GATE_TAG]
        )

    return [
        text_panel(title=f"{project_name}: monitoring", description=PROJECT_DESCRIPTION),
        line_plot_panel(
            title=f"{name} on every labelled row (retrain above the limit)",
            values=[
                gate_line(name, primary),
                gate_line(f"reference {name}", f"reference_{primary}"),
                gate_line("limit", f"{primary}_limit"),
            ],
            size="half",
        ),
        line_plot_panel(
            title="Events quarantined by the data path (alert above the limit)",
            values=[
                gate_line("share", "quarantined_share"),
                gate_line("limit", "quarantined_limit"),
            ],
            size="half",
        ),
        line_plot_panel(
            title="Requests without their own context (alert above the limit)",
            values=[
                *(gate_line(c, f"null_share_{c}") for c in request_columns),
                gate_line("limit", "null_limit"),
            ],
            size="half",
        ),
        line_plot_panel(
            title="Drifted model inputs (a drifted window from the limit)",
            values=[gate_line("share", "drift_share"), gate_line("limit", "drift_share_limit")],
            size="half",
        ),
        line_plot_panel(
            title="Score drift (a drifted window from the limit)",
            values=[gate_line("score", "score_drift"), gate_line("limit", "score_drift_limit")],
            size="half",
        ),
        line_plot_panel(
            title="Attribution shift: how the model's reasons moved (informational)",
            values=[gate_line("total variation of TreeSHAP shares", "attribution_shift")],
            size="half",
        ),
        # A multiclass score is the predicted class: its classes' shares instead of a mean.
        line_plot_panel(
            title="Predicted classes (share of the sample)",
            values=[
                metric(name, "UniqueValueCount", column=SCORE, label=name, value_type="share")
                for name in task.classes
            ],
            size="half",
        )
        if task.classes
        else line_plot_panel(
            title="Mean score",
            values=[metric("score", "MeanValue", column=SCORE)],
            size="half",
        ),
        line_plot_panel(
            title="Labelled performance (sample)",
            values=[metric(legend, measure) for legend, measure in PERFORMANCE[task.kind].lines],
            size="half",
        ),
        bar_plot_panel(
            title=f"{name} of @champion and @challenger on the same live requests (live evidence)",
            values=[
                PanelMetric(
                    legend=role,
                    metric="MeanValue",
                    metric_labels={"column": f"{role}_{primary}"},
                    tags=[LIVE_TAG],
                )
                for role in ("champion", "challenger")
            ],
            size="half",
        ),
        line_plot_panel(
            title="Rows with a missing value",
            values=[metric("share", "DatasetMissingValueCount", value_type="share")],
            size="half",
        ),
    ]


def _add_missing_panels(project: Any, panels: list[Any]) -> None:
    """Panels are matched by title: a workspace made by an earlier version gains the new ones."""
    present = {panel.title for panel in project.dashboard.model().panels}
    for panel in panels:
        if panel.title not in present:
            project.dashboard.add_panel(panel)
