"""Scoring requests: online features, the use case's model inputs, the champion's booster.

    requests -> Feast online store (in-process) -> training's defaults for missing values
        -> use_case.model_inputs (the function training uses) -> float matrix -> booster

No BentoML here: the service, the infra check and the tests call these functions directly.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.model_inputs import as_frame
from mlops.usecase import UseCase

if TYPE_CHECKING:
    import xgboost as xgb
    from feast import FeatureStore

    from mlops.registry import ModelRegistry

log = logging.getLogger(__name__)

# A fresh booster's first predictions are slower (lazy allocation); a few passes settle it.
WARM_UP_PASSES = 20


@dataclass(frozen=True)
class ServedModel:
    """One model version, ready to score; replaced whole on a hot-swap, never edited."""

    name: str
    version: str
    booster: xgb.Booster
    defaults: dict[str, Any]  # raw column -> value filled in when missing (None: keep missing)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Read from the booster once: each attribute read is a call into XGBoost's C API.
    feature_names: list[str] = field(init=False)
    rounds: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        best = self.booster.attr("best_iteration")
        object.__setattr__(self, "feature_names", list(self.booster.feature_names or []))
        object.__setattr__(self, "rounds", (0, int(best) + 1) if best is not None else (0, 0))
        # One request is one row: threads cost more than they save, and the cores are shared.
        self.booster.set_param({"nthread": 1})

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return self.booster.inplace_predict(matrix, iteration_range=self.rounds)

    def describe(self) -> dict[str, Any]:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "loaded_at": self.loaded_at.isoformat(),
            "features": self.feature_names,
        }


@dataclass(frozen=True)
class Scored:
    """Scores for a list of requests, with what each one was scored on."""

    scores: np.ndarray
    matrix: np.ndarray  # the exact model inputs, one row per request, as the booster saw them
    missing: list[list[str]]  # per request: raw values that neither request nor store had


def load_model_dir(path: Path, name: str, version: str) -> ServedModel:
    """A logged MLflow model directory (from the registry, or from a bento) as a ServedModel."""
    import mlflow.xgboost
    from mlflow.models import Model

    booster = mlflow.xgboost.load_model(str(path))
    metadata = Model.load(str(path / "MLmodel")).metadata or {}
    if "serving_defaults" not in metadata:
        log.warning("%s v%s has no serving defaults: missing values stay missing", name, version)
    return ServedModel(name, str(version), booster, dict(metadata.get("serving_defaults", {})))


def load_registered(registry: ModelRegistry, version: str) -> ServedModel:
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        return load_model_dir(registry.download(version, Path(tmp)), registry.name, version)


class Scorer:
    """Online features plus the use case's model inputs, for any ServedModel."""

    def __init__(self, store: FeatureStore, use_case: UseCase) -> None:
        self.store = store
        self.use_case = use_case
        self.feature_service = store.get_feature_service(use_case.feature_service)
        self.feature_columns = tuple(
            f.name for view in self.feature_service.feature_view_projections for f in view.features
        )

    def lookup(self, requests: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """The feature service's values for each request's entities (None where unknown)."""
        keys = self.use_case.entity_keys
        rows = [{k: r[k] for k in keys} for r in requests]
        values = self.store.get_online_features(
            features=self.feature_service, entity_rows=rows
        ).to_dict()
        return {name: values[name] for name in self.feature_columns}

    def score(self, model: ServedModel, requests: list[dict[str, Any]]) -> Scored:
        return self.score_rows(model, requests, self.lookup(requests))

    def score_rows(
        self,
        model: ServedModel,
        requests: list[dict[str, Any]],
        features: dict[str, list[Any]],
    ) -> Scored:
        """Score requests whose features were already looked up."""
        columns, missing = self.raw_columns(model, requests, features)
        matrix = self.matrix(model, columns)
        return Scored(model.predict(matrix), matrix, missing)

    def raw_columns(
        self,
        model: ServedModel,
        requests: list[dict[str, Any]],
        features: dict[str, list[Any]],
    ) -> tuple[dict[str, np.ndarray], list[list[str]]]:
        """Raw columns as training's (event columns and feature values; see
        mlops/model_inputs.py), with training's defaults where a value is missing; and, per
        request, the names of the values that were missing."""
        timestamp = self.use_case.events.timestamp_column
        now = datetime.now(UTC)
        stamps = [_utc(r.get(timestamp)) or now for r in requests]
        columns = {name: [r.get(name) for r in requests] for name in self.use_case.request_columns}
        columns.update(features)
        missing: list[list[str]] = [[] for _ in requests]
        for name, values in columns.items():
            default = model.defaults.get(name)
            for i, value in enumerate(values):
                if value is None:
                    missing[i].append(name)
                    values[i] = default
        raw = {name: np.array(values, dtype=object) for name, values in columns.items()}
        raw[timestamp] = np.array([t.replace(tzinfo=None) for t in stamps], "datetime64[us]")
        return raw, missing

    def matrix(self, model: ServedModel, columns: dict[str, np.ndarray]) -> np.ndarray:
        inputs = self.use_case.model_inputs(columns)
        return np.column_stack([inputs[name] for name in model.feature_names])


def prepare(model: ServedModel, scorer: Scorer) -> ServedModel:
    """Warm a freshly loaded model up; raise unless the serving path (category codes) scores
    like the training path (pandas categoricals). No online lookup, so it can run beside live
    traffic."""
    from mlops.model_inputs import predict

    # An unknown entity, twice: scored on training defaults, then with every value missing.
    requests = [{k: 0 for k in scorer.use_case.entity_keys} for _ in range(2)]
    columns, _ = scorer.raw_columns(
        model, requests, {name: [None, None] for name in scorer.feature_columns}
    )
    timestamp = scorer.use_case.events.timestamp_column
    for name, values in columns.items():
        if name != timestamp:
            values[1] = None
    for _ in range(WARM_UP_PASSES):
        served = model.predict(scorer.matrix(model, columns))
    inputs = as_frame(scorer.use_case.model_inputs(columns), scorer.use_case.categories)
    reference = predict(model.booster, inputs)
    if not np.allclose(served, reference, rtol=0, atol=1e-6):
        raise RuntimeError(
            f"{model.name} v{model.version} scores {served} when served and {reference} the "
            "training way: its categories differ from the use case's"
        )
    return replace(model, loaded_at=datetime.now(UTC))


def decode(
    feature_names: list[str], categories: Mapping[str, Sequence[Any]], row: np.ndarray
) -> dict[str, Any]:
    """One encoded input row as readable values (category codes back to their names)."""
    decoded: dict[str, Any] = {}
    for name, value in zip(feature_names, row.tolist(), strict=True):
        if value != value:  # NaN: missing
            decoded[name] = None
        elif name in categories:
            decoded[name] = categories[name][int(value)]
        else:
            decoded[name] = value
    return decoded


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None
