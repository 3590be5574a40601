"""The monitoring reference: what the champion's inputs and scores looked like on the days
after its training window (validation and test). Training stores it with the model (an MLflow
artifact of the run), so the reference always matches the model being served.

Frame contract, written by training and read by monitoring: one column per model input with
readable values (category names, not codes), then the prediction (`prediction_columns`) and
`label` (as landed: 1/0, a class's code, a number). The prediction is `score` (a probability, a
number); for a multiclass task `score` is the predicted class's name and `score.<class>` each
class's probability. A window of the prediction log is read into the same shape.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops.config.errors import ServiceUnreachable, UserError
from mlops.stores.mlflow_runs import ask_mlflow

if TYPE_CHECKING:
    from mlops.contracts.tasks import Task
    from mlops.stores.registry import ModelRegistry

SCORE = "score"
LABEL = "label"
ARTIFACT_DIR = "monitoring"
ARTIFACT_FILE = "reference.parquet"


def readable_inputs(inputs: pd.DataFrame) -> pd.DataFrame:
    """Model inputs as the prediction log records them: categoricals as plain values."""
    return inputs.apply(
        lambda c: (
            c.astype(object).where(c.notna(), None)
            if isinstance(c.dtype, pd.CategoricalDtype)
            else c.astype(np.float64)
        )
    )


def prediction_columns(task: Task, predictions: np.ndarray) -> dict[str, np.ndarray]:
    """A model's predictions as frame columns: `score`, and for classes `score.<class>`."""
    predictions = np.asarray(predictions, dtype=np.float64)
    classes = task.classes
    if not classes:
        return {SCORE: predictions}
    return {
        SCORE: np.asarray(classes, dtype=object)[predictions.argmax(axis=1)],
        **{f"{SCORE}.{name}": predictions[:, i] for i, name in enumerate(classes)},
    }


def predictions_of(task: Task, frame: pd.DataFrame) -> np.ndarray:
    """The predictions `prediction_columns` wrote into `frame`, as the task scores them."""
    classes = task.classes
    if not classes:
        return frame[SCORE].to_numpy(np.float64)
    return frame[[f"{SCORE}.{name}" for name in classes]].to_numpy(np.float64)


def is_prediction(column: str) -> bool:
    """Whether a frame column is the prediction (or a class's probability), not an input."""
    return column == SCORE or column.startswith(f"{SCORE}.")


def build_reference(
    inputs: pd.DataFrame,
    predictions: np.ndarray,
    labels: np.ndarray,
    rows: int,
    task: Task,
    seed: int = 0,
) -> pd.DataFrame:
    """A seeded sample of `rows` rows: inputs, the model's predictions, the labels."""
    frame = readable_inputs(inputs).reset_index(drop=True)
    for column, values in prediction_columns(task, predictions).items():
        frame[column] = values
    frame[LABEL] = np.asarray(labels, dtype=np.float64)
    if len(frame) > rows:
        frame = frame.sample(n=rows, random_state=seed).sort_index().reset_index(drop=True)
    return frame


def load_reference(registry: ModelRegistry, version: str) -> pd.DataFrame:
    """The reference stored with a model version's training run."""
    run_id = registry.version(version).run_id
    if run_id is None:
        raise UserError(f"model version {version} has no training run to read a reference from")
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = ask_mlflow(
                registry.tracking_uri,
                f"v{version}'s monitoring reference",
                lambda: _download(registry, run_id, folder),
                registry.retries,
            )
        except ServiceUnreachable:
            raise  # could not ask: not "no reference"
        except Exception as err:  # MLflow raises several types for a missing artifact
            raise UserError(
                f"model version {version} has no monitoring reference (run {run_id}); "
                "retrain it with this version of the platform"
            ) from err
        return pd.read_parquet(Path(path))


def _download(registry: ModelRegistry, run_id: str, folder: str) -> str:
    """The reference file of `run_id`, from the run's own artifact store. Not through
    `MlflowClient.download_artifacts`: its runs repository reads every failure, an outage
    included, as "no such artifact"."""
    import mlflow.artifacts

    run = registry.client.get_run(run_id)
    uri = f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_DIR}/{ARTIFACT_FILE}"
    return mlflow.artifacts.download_artifacts(
        artifact_uri=uri, dst_path=folder, tracking_uri=registry.tracking_uri
    )
