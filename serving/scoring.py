"""Scoring requests: online features, the use case's model inputs, the champion's booster.

    requests -> Feast online store (in-process, serving/online_store_reader.py) -> training's
        defaults for missing values -> use_case.model_inputs (the function training uses)
        -> float matrix -> booster (serving/model_loading.py)

No BentoML here: the service, the infra check and the tests call these functions directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.contracts.model_inputs import as_frame
from mlops.contracts.usecase import UseCase
from serving.online_store_reader import READ_TIMEOUT_SECONDS, OnlineFeatures

if TYPE_CHECKING:
    from feast import FeatureStore

    from serving.model_loading import ServedModel

# What the trees start from before any input (the intercept and their expected value).
BIAS = "bias"
# One row's contributions: input -> value (and BIAS); per class for a multiclass model.
Explained = dict[str, float] | dict[str, dict[str, float]]

# A fresh booster's first predictions are slower (lazy allocation); a few passes settle it.
WARM_UP_PASSES = 20


@dataclass(frozen=True)
class Scored:
    """Scores for a list of requests, with what each one was scored on."""

    scores: np.ndarray
    matrix: np.ndarray  # the exact model inputs, one row per request, as the booster saw them
    missing: list[list[str]]  # per request: raw values that neither request nor store had


class Scorer:
    """Online features plus the use case's model inputs, for any ServedModel."""

    def __init__(
        self, store: FeatureStore, use_case: UseCase, read_timeout: float = READ_TIMEOUT_SECONDS
    ) -> None:
        self.use_case = use_case
        # Only the store's configuration: the definitions are the use case's own (sources are
        # never read online, hence no paths).
        definitions = use_case.feast_definitions(lambda view: view)
        self.online = OnlineFeatures(
            store.config, definitions, use_case.feature_service, read_timeout
        )
        self.feature_columns = self.online.columns

    def lookup(self, requests: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """The feature service's values for each request's entities (None where unknown);
        StoreUnavailable if the online store cannot be read."""
        return self.online.read(requests)

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
        mlops/contracts/model_inputs.py), with training's defaults where a value is missing;
        and, per request, the names of the values that were missing."""
        timestamp = self.use_case.events.timestamp_column
        now = datetime.now(UTC)
        stamps = [_utc(r.get(timestamp)) or now for r in requests]
        columns = {name: [r.get(name) for r in requests] for name in self.use_case.request_columns}
        columns.update(features)
        for name in self.use_case.request_features:  # the caller's value where the store has none
            stored = columns[name]
            for i, request in enumerate(requests):
                if stored[i] is None:
                    stored[i] = request.get(name)
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

    def explain(self, model: ServedModel, columns: dict[str, np.ndarray]) -> list[Explained]:
        """Each row's contributions to its margin (XGBoost's TreeSHAP,
        `mlops.contracts.model_inputs.contributions`): model input -> value, and `bias`; per
        class for a multiclass model. They sum to the row's margin (log-odds for a binary task)."""
        from mlops.contracts.model_inputs import as_frame, contributions

        inputs = as_frame(self.use_case.model_inputs(columns), self.use_case.categories)
        names = [*model.feature_names, BIAS]

        def named(values: np.ndarray) -> dict[str, float]:
            return dict(zip(names, map(float, values), strict=True))

        classes = self.use_case.task.classes
        return [
            {c: named(v) for c, v in zip(classes, row, strict=True)} if classes else named(row)
            for row in contributions(model.booster, inputs)
        ]


def prepare(model: ServedModel, scorer: Scorer) -> ServedModel:
    """Warm a freshly loaded model up; raise unless the serving path (category codes) scores
    like the training path (pandas categoricals). No online lookup, so it can run beside live
    traffic."""
    from mlops.contracts.model_inputs import predict

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
