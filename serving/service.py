"""The prediction service (BentoML): `bentoml serve serving.service:PredictionService`, or
`mlops serve`.

    POST /predict          one request: the use case's entity ids and optional context
    POST /predict_batch    {"requests": [...]}, up to MLOPS_SERVING__MAX_BATCH
    GET  /model            the model version being served
    GET  /openapi.json     the schema of the three routes above
    GET  /livez /readyz /metrics     BentoML: alive, ready (model loaded and warm), Prometheus
    POST /floor            diagnostics, not in /openapi.json: /predict without the scoring (see
                           below); the infra check's floor

Request bodies are validated strictly by the use case's request model: malformed JSON, a wrong
type, an out-of-range value, an unknown field or an oversized batch get a 400 with the reason;
a body over the size limit 413, a non-JSON body 415, more than `max_concurrency` requests in
flight 429 (BentoML), no answer within `timeout_seconds` 504 (BentoML).

The prediction routes are a small Starlette app mounted in the BentoML service rather than
`@bentoml.api` methods: BentoML's API layer costs more per request than scoring does (see
docs/serving.md). BentoML still runs the process, the traffic limits, health and metrics.

`/floor` takes the same body as `/predict` and goes the same way (validation, the champion
check, the thread-pool hop, an orjson answer) but scores nothing, reads no feature and logs
nothing. What `/predict` takes beyond `/floor` is what the model adds: the infra check times the
two interleaved and judges only the difference (serving/infra_check.py).
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import bentoml
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlops.runtime import setup
from mlops.usecase import load_use_case
from serving.http_limits import RequestLimits
from serving.prediction_log import PredictionLog, Served, records

if TYPE_CHECKING:
    from serving.scoring import ServedModel

log = logging.getLogger("serving")

# BentoML reads the traffic limits when this module is imported, so the settings and the use
# case are read here, once.
settings = setup()
use_case = load_use_case(settings.use_case)
limits = settings.serving

PredictRequest: type[BaseModel] = use_case.request_model
_prediction_fields: dict[str, Any] = {
    "request_id": (str, Field(description="Joins the prediction log, and later the label.")),
    "model_version": (str, ...),
    "missing_features": (
        list[str],
        Field(
            description="Values neither the request nor the online store had; filled with "
            "training defaults where the model never saw them missing."
        ),
    ),
    use_case.score_name: (float, ...),
}
Prediction = create_model("Prediction", **_prediction_fields)


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
    multiprocess_mode="livemostrecent",  # one value across workers, not one per process
)


async def predict(request: Request) -> Response:
    parsed = await _parse(request, PredictRequest)
    if isinstance(parsed, Response):
        return parsed
    return await _answer([parsed.model_dump()], single=True)


async def predict_batch(request: Request) -> Response:
    parsed = await _parse(request, BatchRequest)
    if isinstance(parsed, Response):
        return parsed
    return await _answer(parsed.model_dump()["requests"], single=False)


async def floor(request: Request) -> Response:
    """/predict's way through the service without its work: validation, the champion check and
    the thread-pool hop stay; features, model and log go. A constant answer."""
    parsed = await _parse(request, PredictRequest)
    if isinstance(parsed, Response):
        return parsed
    if bentoml.get_current_service().champion.current is None:
        return JSONResponse({"error": "no model loaded yet; see /readyz"}, 503)
    answer = await run_in_threadpool(_floor_answer)
    return Response(orjson.dumps(answer), media_type="application/json")


def _floor_answer() -> dict[str, Any]:
    return FLOOR_ANSWER


FLOOR_ANSWER = {"floor": True}


async def model(request: Request) -> Response:
    return JSONResponse(bentoml.get_current_service().describe())


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


async def _parse(request: Request, schema: type[BaseModel]) -> BaseModel | Response:
    try:
        return schema.model_validate_json(await request.body() or b"{}")
    except ValidationError as err:
        errors = err.errors(include_url=False, include_context=False, include_input=False)
        return JSONResponse(
            {"error": f"invalid request: {_summary(errors)}", "detail": errors}, 400
        )


async def _answer(requests: list[dict[str, Any]], single: bool) -> Response:
    service = bentoml.get_current_service()
    if service.champion.current is None:
        return JSONResponse({"error": "no model loaded yet; see /readyz"}, 503)
    # In a thread: the event loop stays free, so timeouts fire and the concurrency limit counts
    # requests in flight.
    predictions = await run_in_threadpool(service.score, requests)
    body = orjson.dumps(predictions[0] if single else {"predictions": predictions})
    return Response(body, media_type="application/json")


def _summary(errors: list[Any]) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors[:5])


routes = Starlette(
    routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/predict_batch", predict_batch, methods=["POST"]),
        Route("/model", model, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/floor", floor, methods=["POST"]),  # diagnostics; not in the OpenAPI document
    ]
)


@bentoml.service(
    name=f"{use_case.name}-predictions",
    workers=limits.workers,
    traffic={"timeout": limits.timeout_seconds, "max_concurrency": limits.max_concurrency},
    # A log line per request costs more than scoring it; the prediction log and /metrics
    # record every request instead.
    logging={"access": {"enabled": limits.access_log}},
)
@bentoml.asgi_app(routes, path="/")
class PredictionService:
    def __init__(self) -> None:
        from mlops.feature_store import open_store
        from mlops.registry import CHAMPION, ModelRegistry
        from serving import packaging
        from serving.champion import Champion
        from serving.scoring import Scorer, load_registered

        self.scorer = Scorer(open_store(settings, use_case, registry_cache_mode="thread"), use_case)
        registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
        wanted: Callable[[], str | None]
        load: Callable[[str], ServedModel]
        if limits.model_source == "bento":
            version = packaging.packaged_version(use_case)
            wanted, load = (lambda: version), partial(packaging.load_packaged, use_case)
        elif limits.model_version is not None:
            wanted, load = (lambda: limits.model_version), partial(load_registered, registry)
        else:
            wanted, load = partial(registry.alias, CHAMPION), partial(load_registered, registry)
        self.champion = Champion(wanted, load, self.scorer, on_swap=self._swapped)
        self.log = PredictionLog(
            settings.predictions_dir,
            partial(records, categories=use_case.categories),
            limits.log_flush_seconds,
        ).start()
        self.champion.refresh()
        if self.pinned:
            if self.champion.current is None:
                # A pinned version that cannot load never will: exit rather than never be ready.
                raise RuntimeError(self.champion.last_error)
        else:
            self.champion.follow(limits.poll_seconds)
        # Everything loaded so far (libraries, registry, model) lives as long as the process:
        # keep the collector from scanning it, or a full collection stalls requests ~100 ms.
        gc.freeze()

    @property
    def pinned(self) -> bool:
        return limits.model_source == "bento" or limits.model_version is not None

    def __is_ready__(self) -> bool:
        return self.champion.current is not None

    @bentoml.on_shutdown
    def close(self) -> None:
        self.champion.stop()
        self.log.close()

    def describe(self) -> dict[str, Any]:
        current = self.champion.current
        return {
            **(current.describe() if current else {"model_version": None}),
            "pinned": self.pinned,
            "last_error": self.champion.last_error,
        }

    def score(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        model = self.champion.current  # read once: a swap cannot change it mid-request
        assert model is not None
        served_at = datetime.now(UTC)
        timestamp = use_case.events.timestamp_column
        for request in requests:  # logged as used: the event happens now unless it says when
            if request.get(timestamp) is None:
                request[timestamp] = served_at
        scored = self.scorer.score(model, requests)
        if limits.fault_scoring_spin_ms:
            _spin_cpu(limits.fault_scoring_spin_ms)
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
            {
                "request_id": request_id,
                use_case.score_name: float(score),
                "model_version": model.version,
                "missing_features": missing,
            }
            for request_id, score, missing in zip(ids, scored.scores, scored.missing, strict=True)
        ]

    def _swapped(self, model: Any) -> None:
        swaps_total.inc()
        served_version.labels(model=model.name).set(float(model.version))


def _spin_cpu(milliseconds: float) -> None:
    """The fault drill (MLOPS_SERVING__FAULT_SCORING_SPIN_MS): burn this much of the thread's
    CPU time, as a slower model would. CPU time, not wall time: on a busy machine it stretches
    like real compute does."""
    until = time.thread_time() + milliseconds / 1000
    while time.thread_time() < until:
        pass


def _openapi() -> dict[str, Any]:
    """The prediction routes' OpenAPI document, from the same pydantic models that validate."""
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def post(summary: str, body: type[BaseModel], answer: type[BaseModel]) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref(body)}},
                },
                "responses": {
                    "200": {"content": {"application/json": {"schema": ref(answer)}}},
                    "400": {"description": "invalid request; `error` says why"},
                    "413": {"description": "body too large"},
                    "415": {"description": "not JSON"},
                    "429": {"description": "too many requests in flight"},
                    "503": {"description": "no model loaded yet"},
                },
            }
        }

    return {
        "openapi": "3.0.2",
        "info": {"title": f"{use_case.name} predictions", "version": "1"},
        "paths": {
            "/predict": post(
                f"Score one request: {use_case.score_name}", PredictRequest, Prediction
            ),
            "/predict_batch": post("Score many requests at once", BatchRequest, BatchPrediction),
            "/model": {"get": {"summary": "The model version being served"}},
        },
        "components": {"schemas": schemas},
    }


OPENAPI = _openapi()
# The decorators' types lose the Service wrapper that bentoml.service returns.
cast("bentoml.Service[PredictionService]", PredictionService).add_asgi_middleware(
    RequestLimits, max_body_bytes=limits.max_body_bytes
)
