"""Predict flow: batch prediction, a table of entity rows scored by one model version on the
features each row's entities had at its time.

The work lives in serving/batch_prediction.py; this file says in which order it runs and what
is recorded. The version is resolved once, when the run starts (`@champion` unless told
otherwise); the scores land in the profile's scores store (HOME/batch_predictions, a folder per
version and run; PostgreSQL in the server profile); a Prefect
artifact says what was scored, what was refused and where both are. The run is named by what it
scores: `predict-2026-01-11-v3`. On the Ray engine the point-in-time join runs on Ray (Feast's
Ray offline store, as training's join does); the booster scores the joined rows in this process.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.prefect_names import artifact_key, name_flow_run
from flows.results import RESULT_SERIALIZER
from mlops.compute.ray_engine import start_ray
from mlops.config.runtime import setup
from mlops.contracts.batches import newest_batch
from mlops.contracts.usecase import active_use_case
from mlops.stores.batch_scores import scores_store
from mlops.stores.feature_store import open_store
from mlops.stores.registry import ModelRegistry
from serving.batch_prediction import BatchPrediction, predict_batch, read_rows


@flow(name="predict", persist_result=True, result_serializer=RESULT_SERIALIZER)
def predict(
    source: str | None = None, model: str = "champion", explain: bool = False
) -> BatchPrediction:
    """Score `source` (a Parquet or CSV file of entity rows with their times, or a landed batch
    folder; default: the newest batch in the landing zone) with `model` (`champion`, `@alias`
    or a version number); `explain`: each row's contributions beside its score."""
    settings = setup()
    use_case = active_use_case(settings)
    registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
    version = registry.resolve(model)
    path = Path(source) if source else newest_batch(settings.landing_dir)
    name_flow_run(f"predict-{path.stem}-v{version}")
    rows = read_rows(path, use_case)
    if settings.engine == "ray":  # Feast's Ray offline store joins on this capped session
        start_ray(settings)
    store = open_store(settings, use_case)
    scores = scores_store(settings, use_case.model_name)
    result = predict_batch(scores, store, registry, use_case, rows, version, explain)
    refused = f"{result.rejected} refused, with their reasons: `{result.rejected_path}`"
    create_markdown_artifact(
        key=artifact_key("batch-prediction", use_case.model_name),
        markdown=(
            f"# {use_case.model_name} v{version}: {result.scored} of {result.rows} rows scored\n\n"
            f"From `{path}`; scores: `{result.scores_path}`"
            + (f"; {refused}" if result.rejected else "")
            + ("" if result.written else " (already scored by an earlier run: nothing written)")
        ),
        description=f"v{version}: {result.scored} scored, {result.rejected} refused",
    )
    return result
