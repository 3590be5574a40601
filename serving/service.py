"""The prediction service (BentoML): `bentoml serve serving.service:PredictionService`, or
`mlops serve`.

    POST /predict         one request: the use case's entity ids and optional context
    POST /predict_batch   {"requests": [...]}, up to MLOPS_SERVING__MAX_BATCH
    POST /model           the model version being served
    GET  /livez /readyz /metrics /docs    health, readiness (model loaded and warm), Prometheus

Request bodies are validated strictly by the use case's request model: malformed JSON, a wrong
type, an out-of-range value, an unknown field or an oversized batch get a 400 with the reason;
a body over the size limit 413, a non-JSON body 415, more than `max_concurrency` requests in
flight 429. The work itself lives in scoring.py, champion.py and prediction_log.py.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import bentoml
from pydantic import BaseModel, ConfigDict, Field, create_model

from mlops.settings import get_settings
from mlops.usecase import load_use_case
from serving.http_limits import RequestLimits
from serving.prediction_log import PredictionLog, Served

log = logging.getLogger("serving")

# BentoML reads the service's traffic limits and the API schemas when this module is imported,
# so the settings and the use case are read here, once.
settings = get_settings().apply()
use_case = load_use_case(settings.use_case)
limits = settings.serving

PredictRequest = use_case.request_model
Prediction = create_model(
    "Prediction",
    request_id=(str, Field(description="Joins the prediction log, and later the label.")),
    model_version=(str, ...),
    missing_features=(
        list[str],
        Field(
            description="Values neither the request nor the online store had; filled with "
            "training defaults where the model never saw them missing."
        ),
    ),
    **{use_case.score_name: (float, ...)},
)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    requests: list[PredictRequest] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=limits.max_batch
    )


class BatchPrediction(BaseModel):
    predictions: list[Prediction]  # type: ignore[valid-type]


missing_total = bentoml.metrics.Counter(
    name="mlops_missing_feature_values",
    documentation="Raw values filled with a default or left missing, per column.",
    labelnames=["column"],
)
swaps_total = bentoml.metrics.Counter(
    name="mlops_model_swaps", documentation="Models loaded and swapped in.", labelnames=[]
)
served_version = bentoml.metrics.Gauge(
    name="mlops_served_model_version",
    documentation="The model version being served.",
    labelnames=["model"],
)


@bentoml.service(
    name=f"{use_case.name}-predictions",
    workers=limits.workers,
    traffic={"timeout": limits.timeout_seconds, "max_concurrency": limits.max_concurrency},
    # A log line per request costs more than scoring it; the prediction log and /metrics
    # record every request instead.
    logging={"access": {"enabled": limits.access_log}},
)
class PredictionService:
    def __init__(self) -> None:
        from mlops.feature_store import open_store
        from models.registry import ModelRegistry
        from serving.champion import Champion
        from serving.scoring import Scorer

        self.scorer = Scorer(open_store(settings, use_case), use_case)
        self.champion = Champion(
            ModelRegistry(settings.tracking_uri, use_case.model_name),
            self.scorer,
            pinned_version=limits.model_version,
            on_swap=self._swapped,
        )
        self.log = PredictionLog(
            settings.predictions_dir, self._records, limits.log_flush_seconds
        ).start()
        self.champion.refresh()
        self.champion.follow(limits.poll_seconds)

    def __is_ready__(self) -> bool:
        return self.champion.current is not None

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=Prediction)
    async def predict(self, **request: Any) -> BaseModel:
        return self._score([request])[0]

    @bentoml.api(route="/predict_batch", input_spec=BatchRequest, output_spec=BatchPrediction)
    async def predict_batch(self, requests: list[Any]) -> BatchPrediction:
        return BatchPrediction(predictions=self._score([r.model_dump() for r in requests]))

    @bentoml.api(route="/model")
    async def model(self) -> dict[str, Any]:
        current = self.champion.current
        return {
            **(current.describe() if current else {"model_version": None}),
            "pinned": limits.model_version is not None,
            "last_error": self.champion.last_error,
        }

    @bentoml.on_shutdown
    def close(self) -> None:
        self.champion.stop()
        self.log.close()

    def _score(self, requests: list[dict[str, Any]]) -> list[BaseModel]:
        model = self.champion.current  # read once: a swap cannot change it mid-request
        if model is None:
            raise bentoml.exceptions.ServiceUnavailable("no model loaded yet")
        served_at = datetime.now(UTC)
        timestamp = use_case.events.timestamp_column
        for request in requests:  # logged as used: the event happens now unless it says when
            if request.get(timestamp) is None:
                request[timestamp] = served_at
        scored = self.scorer.score(model, requests)
        ids = [uuid.uuid4().hex for _ in requests]
        self.log.append(
            Served(
                served_at,
                model.version,
                model.feature_names,
                ids,
                requests,
                scored.matrix,
                scored.scores,
                scored.missing,
            )
        )
        for names in scored.missing:
            for name in names:
                missing_total.labels(column=name).inc()
        return [
            Prediction(
                request_id=request_id,
                model_version=model.version,
                missing_features=missing,
                **{use_case.score_name: float(score)},
            )
            for request_id, score, missing in zip(ids, scored.scores, scored.missing, strict=True)
        ]

    def _records(self, served: Served) -> list[dict[str, Any]]:
        from serving.scoring import decode

        return [
            {
                "request_id": request_id,
                "served_at": served.served_at.isoformat(),
                "model_version": served.model_version,
                **request,
                "features": decode(served.feature_names, use_case.categories, row),
                "missing_features": missing,
                "score": float(score),
            }
            for request_id, request, row, score, missing in zip(
                served.request_ids,
                served.requests,
                served.matrix,
                served.scores,
                served.missing,
                strict=True,
            )
        ]

    def _swapped(self, model: Any) -> None:
        swaps_total.inc()
        served_version.labels(model=model.name).set(float(model.version))


PredictionService.add_asgi_middleware(RequestLimits, max_body_bytes=limits.max_body_bytes)
