"""MLflow tracking: one experiment per use case, one run per training, everything to reproduce it.

A run holds the parameters, every metric (model, baselines, oracle, champion, slices, the floor
metrics' bootstrap intervals), the task's plots (curves and calibration; a confusion matrix;
predicted vs actual and residuals) and feature gain, the data lineage, the train, validation and
test sets as inputs (schema, rows, digest), the git commit, the requirements card, monitoring's
reference sample, and the model: XGBoost's native UBJ format, as a pyfunc that scores raw model
inputs as the service does (`models/booster_pyfunc.py`), with its signature and an input
example; the gate's noise warnings are its tag `promotion.warnings`. It is named by the last
day of data it saw (`train-2026-01-07`: trained on data through the end of 2026-01-07); its
description, written when the registry records the gate's decision, says what became of its
model and why.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.config.settings import PROJECT_ROOT, Settings
from mlops.contracts.tasks import Task
from mlops.contracts.usecase import UseCase
from mlops.stores.mlflow_runs import (
    LOGGED_BY,
    LoggedRun,
    dataset,
    day_name,
    experiment_id,
    fail_unfinished_runs,
)
from mlops.stores.reference import ARTIFACT_DIR, ARTIFACT_FILE
from models import booster_pyfunc
from models.evaluation import Evaluation

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from models.noise import Bootstrap
    from models.training import FittedXGBoost, Splits

MODEL_ARTIFACT = "model"
CURVE_POINTS = 500


def log_training_run(
    settings: Settings,
    use_case: UseCase,
    *,
    run_name: str,
    params: Mapping[str, Any],
    lineage: Mapping[str, Any],
    evaluations: Mapping[str, Evaluation],
    predictions: Mapping[str, np.ndarray],
    labels: np.ndarray,
    model: FittedXGBoost,
    input_example: pd.DataFrame,
    serving_defaults: Mapping[str, Any],
    monitoring_reference: pd.DataFrame,
    importance: Mapping[str, float],
    splits: Splits | None = None,
    noise: Bootstrap | None = None,
    logged_by: str | None = None,
) -> LoggedRun:
    """Log one training run; `evaluations` and `predictions` are keyed `model`, `linear`,
    `prior`, `oracle` and, when there is one, `champion`, all on the same test window.
    `importance`: each input's mean absolute contribution on the test window (`importance.json`
    and the feature importance plot).
    `splits`: the model inputs and labels of each window, logged as the run's input datasets.
    `noise`: the challenger's bootstrap intervals of the floor metrics, logged as
    `floor.<metric>.low` and `.high`.
    `logged_by`: the flow run logging it; a run an earlier attempt of it left unfinished is
    marked FAILED first (a retry after the tracking server went away), then logged anew."""
    import mlflow
    import xgboost as xgb

    experiment = experiment_id(settings, use_case)
    if logged_by:
        fail_unfinished_runs(settings, experiment, logged_by)
    # Created with its tag, in one request: an attempt that dies right after is still found.
    tags = {LOGGED_BY: logged_by} if logged_by else None
    with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags) as run:
        mlflow.set_tags(
            {
                **git_tags(),
                "use_case": use_case.name,
                "feature_service": lineage["feature_service"],
                "frame_sha256": lineage["frame_sha256"],
            }
        )
        mlflow.log_params({k: _param(v) for k, v in params.items()})
        mlflow.log_params({f"window.{k}": v for k, v in lineage["windows"].items()})
        metrics: dict[str, float] = {}
        for name, evaluation in evaluations.items():
            metrics |= evaluation.flat("" if name == "model" else f"{name}.")
        for metric, interval in (noise.intervals if noise else {}).items():
            metrics |= {f"floor.{metric}.low": interval.low, f"floor.{metric}.high": interval.high}
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_dict(dict(lineage), "lineage.json")
        if splits is not None:
            log_datasets(settings, use_case, splits, lineage["windows"])
        trials = [t.__dict__ for t in model.trials]
        mlflow.log_dict(trials, "search_trials.json")  # type: ignore[arg-type]  # any JSON value
        mlflow.log_artifact(str(use_case.package_dir / "card.yaml"))
        mlflow.log_dict(dict(importance), "importance.json")
        for name, figure in plots(use_case.task, labels, predictions, importance).items():
            mlflow.log_figure(figure, f"plots/{name}.png")

        _log_frame(monitoring_reference, f"{ARTIFACT_DIR}/{ARTIFACT_FILE}")

        # Native XGBoost (what the service, the gate and monitoring load) plus a pyfunc that
        # scores raw model inputs like the service (models/booster_pyfunc.py). MLflow scores the
        # input example through that pyfunc as it logs; it warns that pip is missing from the
        # venv (uv does not install it): harmless.
        with _quiet("mlflow.utils.environment"):
            info = booster_pyfunc.log_model(
                model.booster,
                MODEL_ARTIFACT,
                categories=use_case.categories,
                score_name=use_case.score_name,
                classes=use_case.task.classes,
                input_example=_raw(input_example),
                # Travels with the model (registry, BentoML store, bento): serving needs it.
                metadata={"serving_defaults": dict(serving_defaults)},
                # Listing them saves ~8 s of dependency inference per run.
                pip_requirements=[f"xgboost=={xgb.__version__}", f"pandas=={pd.__version__}"],
            )
        return LoggedRun(run.info.run_id, info.model_uri, run.info.experiment_id)


SPLIT_CONTEXTS = {"train": "training", "validation": "validation", "test": "test"}


def log_datasets(
    settings: Settings, use_case: UseCase, splits: Splits, windows: Mapping[str, str]
) -> None:
    """Each window's model inputs and label as an input of the run (the UI's "Datasets used"),
    named by the days it covers: `train 2026-01-01..2026-01-05`."""
    import mlflow

    frames = {
        "train": (splits.train_x, splits.train_y),
        "validation": (splits.validation_x, splits.validation_y),
        "test": (splits.test_x, splits.test_y),
    }
    bounds = {
        "train": ("train_start", "validation_start"),
        "validation": ("validation_start", "test_start"),
        "test": ("test_start", "end"),
    }
    source = str(settings.offline_dir / use_case.events.name)
    for split, (inputs, labels) in frames.items():
        start, end = (datetime.fromisoformat(windows[b]) for b in bounds[split])
        first, last = f"{start:%Y-%m-%d}", day_name(end)
        days = first if first == last else f"{first}..{last}"
        frame = inputs.assign(**{use_case.label: labels.to_numpy()})
        mlflow.log_input(
            dataset(frame, name=f"{split} {days}", source=source, targets=use_case.label),
            context=SPLIT_CONTEXTS[split],
        )


def _log_frame(frame: pd.DataFrame, artifact_path: str) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(artifact_path).name
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), str(Path(artifact_path).parent))


def git_tags() -> dict[str, str]:
    """The commit the code came from, and whether the working tree had changes on top."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    return {
        "mlflow.source.git.commit": commit or "unknown",
        "git.dirty": str(bool(git("status", "--porcelain"))).lower() if commit else "unknown",
    }


def plots(
    task: Task,
    labels: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    importance: Mapping[str, float],
) -> dict[str, Figure]:
    """The task's plots of every scored model, and the challenger's feature importance (mean
    absolute contribution: unlike the trees' gain, it counts a base margin's effects)."""
    from matplotlib.figure import Figure

    by_kind = {"binary": _curves, "multiclass": _confusion, "regression": _residuals}
    figures = by_kind[task.kind](task, labels, predictions)
    figures["feature_importance"] = Figure(figsize=(6, 5))
    bars = figures["feature_importance"].subplots()
    names = sorted(importance, key=lambda name: importance[name])
    bars.barh(names, [importance[n] for n in names])
    margin = "log-odds" if task.kind == "binary" else "margin"
    bars.set(xlabel=f"mean |contribution| to the {margin}, test window", title="Feature importance")
    for figure in figures.values():
        figure.tight_layout()
    return figures


def _curves(
    task: Task, labels: np.ndarray, predictions: Mapping[str, np.ndarray]
) -> dict[str, Figure]:
    """ROC, precision-recall and calibration curves."""
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve, roc_curve

    figures = {name: Figure(figsize=(6, 5)) for name in ("roc", "precision_recall", "calibration")}
    roc, pr, calibration = (figures[n].subplots() for n in figures)
    for name, p in predictions.items():
        fpr, tpr, _ = roc_curve(labels, p)
        roc.plot(*_thin(fpr, tpr), label=name)
        precision, recall, _ = precision_recall_curve(labels, p)
        pr.plot(*_thin(recall, precision), label=name)
        predicted, observed = _reliability(labels, p)
        calibration.plot(predicted, observed, marker="o", label=name)
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    top = max(float(np.max(v)) for v in predictions.values())
    calibration.plot([0, top], [0, top], color="grey", linestyle=":")
    calibration.set(xlabel="mean predicted", ylabel="observed rate", title="Calibration")
    for axes in (roc, pr, calibration):
        axes.legend()
    return figures


def _confusion(
    task: Task, labels: np.ndarray, predictions: Mapping[str, np.ndarray]
) -> dict[str, Figure]:
    """The challenger's confusion matrix, each row (a true class) as shares of its rows."""
    from matplotlib.figure import Figure

    classes = task.classes
    truth, chosen = np.asarray(labels, dtype=np.int64), predictions["model"].argmax(axis=1)
    counts = np.zeros((len(classes), len(classes)))
    np.add.at(counts, (truth, chosen), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    image = axes.imshow(shares, vmin=0, vmax=1, cmap="Blues")
    for (row, column), share in np.ndenumerate(shares):
        axes.text(column, row, f"{share:.2f}", ha="center", va="center")
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set(xlabel="predicted", ylabel="true", title="Confusion matrix (share of each row)")
    figure.colorbar(image)
    return {"confusion_matrix": figure}


def _residuals(
    task: Task, labels: np.ndarray, predictions: Mapping[str, np.ndarray]
) -> dict[str, Figure]:
    """Predicted against actual for every scored model; the challenger's residuals."""
    from matplotlib.figure import Figure

    actual = np.asarray(labels, dtype=np.float64)
    figures = {name: Figure(figsize=(6, 5)) for name in ("predicted_vs_actual", "residuals")}
    scatter, residuals = (figures[n].subplots() for n in figures)
    thinned = slice(None, None, max(1, len(actual) // (CURVE_POINTS * 4)))
    for name, p in predictions.items():
        scatter.scatter(actual[thinned], p[thinned], s=4, alpha=0.5, label=name)
    low, high = float(actual.min()), float(actual.max())
    scatter.plot([low, high], [low, high], color="grey", linestyle=":")
    scatter.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
    scatter.legend()
    model = predictions["model"]
    residuals.scatter(model[thinned], (actual - model)[thinned], s=4, alpha=0.5)
    residuals.axhline(0, color="grey", linestyle=":")
    residuals.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals")
    return figures


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Curves have a point per distinct score; drawing them all costs more than the fit."""
    step = max(1, len(x) // CURVE_POINTS)
    return x[::step], y[::step]


def _reliability(labels: np.ndarray, p: np.ndarray, bins: int = 20) -> tuple[list, list]:
    chunks = np.array_split(np.argsort(p, kind="stable"), bins)
    return [float(p[c].mean()) for c in chunks], [float(labels[c].mean()) for c in chunks]


@contextmanager
def _quiet(*logger_names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _raw(inputs: pd.DataFrame) -> pd.DataFrame:
    """Inputs as a client sends them: categories as plain strings."""
    return inputs.apply(
        lambda c: c.astype(object) if isinstance(c.dtype, pd.CategoricalDtype) else c
    )


def _param(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | dict | tuple) else str(value)
