"""The prediction service (BentoML): `bentoml serve serving.service:PredictionService`, or
`mlops serve`.

    POST /predict          one request: the use case's entity ids and optional context
    POST /predict_batch    {"requests": [...]}, up to MLOPS_SERVING__MAX_BATCH
    GET  /model            the model version being served
    GET  /openapi.json     the schema of the three routes above
    GET  /  /docs.json     the service's page: Swagger UI (BentoML's static files, so offline)
                           over /docs.json, BentoML's spec (/livez, /readyz, /metrics) plus
                           /openapi.json's routes
    GET  /livez /readyz /metrics     BentoML: alive; ready (model loaded and warm, and the
                           online store answers a lookup; else 503 with the cause); Prometheus
    POST /floor            diagnostics, not in /openapi.json: /predict without the scoring (see
                           below); the infra check's floor

With `MLOPS_AUTH__SERVING_API_KEY` set, every route but /livez, /readyz and /metrics asks for
`Authorization: Bearer <key>` (401 otherwise; serving/auth.py); bound beyond loopback
(`MLOPS_SERVING__HOST`), the service refuses to start without one.

Request bodies are validated strictly by the use case's request model: malformed JSON, a wrong
type, an out-of-range value (an event time too, see serving/http_limits.py), an unknown field or
an oversized batch get a 400 with the reason (in a batch, naming the item); a body over the size
limit 413, a non-JSON body 415, more than `max_concurrency` requests in flight 429 (BentoML), an
online store that cannot be read 503 with the cause (as /readyz), no answer within
`timeout_seconds` 504 (BentoML). Anything else failing is a 500 with the error's type; failures
are logged once per cause with the traceback, then counted (`ErrorLog`), never a traceback per
request.

The prediction routes are bare ASGI (`PredictionRoutes`) mounted in the BentoML service rather
than `@bentoml.api` methods: BentoML's API layer, and even Starlette's routing and request objects,
cost more per request than scoring does (see docs/serving.md). BentoML still runs the workers, the
traffic limits, health and metrics. Validated requests are scored by a micro-batcher
(serving/batching.py): those in flight together share one store read per view and one model call.

`/floor` takes the same body as `/predict` and goes the same way (validation, the champion
check, the hop to the scoring thread (a batcher of its own), an orjson answer) but scores
nothing, reads no feature and logs nothing. What `/predict` takes beyond `/floor` is what the
model adds: the infra check times the two interleaved and judges only the difference
(serving/infra_check.py).
"""

from __future__ import annotations

import gc
import html
import logging
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import bentoml
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mlops.config.errors import UserError
from mlops.config.runtime import setup
from mlops.contracts.usecase import active_use_case
from serving.auth import ApiKey, require_api_key_beyond_loopback
from serving.batching import MicroBatcher
from serving.http_limits import JSON, RequestLimits, earliest_event, json_error, with_time_bounds
from serving.prediction_logger import PredictionLog, Served, records
from serving.scoring import ErrorLog, StoreUnavailable

if TYPE_CHECKING:
    from feast import FeatureStore

    from serving.scoring import ServedModel

log = logging.getLogger("serving")

# BentoML reads the traffic limits when this module is imported, so the settings and the use
# case are read here, once.
settings = setup()
# Before anything is loaded: a service open to the network is refused, with one line rather
# than a traceback (`bentoml serve` of a bento binds 0.0.0.0; `mlops serve` refuses earlier).
try:
    require_api_key_beyond_loopback(settings)
except UserError as refused:
    sys.exit(f"error: {refused}")
use_case = active_use_case(settings)
limits = settings.serving

# The online store is probed this often for readiness (a real lookup), and must answer within
# the deadline; scoring failures are logged once per cause, then counted this often.
PROBE_SECONDS = 2.0
PROBE_DEADLINE_SECONDS = 5.0
ERROR_LOG_SECONDS = 60.0

PredictRequest: type[BaseModel] = with_time_bounds(
    use_case.request_model, use_case.events.timestamp_column, earliest_event(use_case)
)
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


class ModelInfo(BaseModel):
    """GET /model."""

    model_name: str
    model_version: str | None = Field(description="None until a model is loaded.")
    loaded_at: datetime | None
    features: list[str] = Field(description="The model's inputs, in order.")
    pinned: bool = Field(description="A fixed version (or the bento's), not the @champion.")
    last_error: str | None = Field(description="Why the last model load failed, if it did.")


class ErrorAnswer(BaseModel):
    error: str


errors = ErrorLog(log, every=ERROR_LOG_SECONDS)

missing_total = bentoml.metrics.Counter(
    name="mlops_missing_feature_values",
    documentation="Raw values filled with a default or left missing, per column.",
    labelnames=["column"],
)
swaps_total = bentoml.metrics.Counter(
    name="mlops_model_swaps", documentation="Models loaded and swapped in.", labelnames=[]
)
failed_total = bentoml.metrics.Counter(
    name="mlops_failed_requests",
    documentation="Prediction requests answered 5xx by the service itself, per status and error.",
    labelnames=["status", "error"],
)
served_version = bentoml.metrics.Gauge(
    name="mlops_served_model_version",
    documentation="The model version being served.",
    labelnames=["model"],
    multiprocess_mode="livemostrecent",  # one value across workers, not one per process
)


Answer = tuple[int, bytes]  # status, JSON body


async def predict(body: bytes) -> Answer:
    parsed = _parse(body, PredictRequest)
    if not isinstance(parsed, BaseModel):
        return parsed
    return await _answer([parsed.model_dump()], single=True)


async def predict_batch(body: bytes) -> Answer:
    parsed = _parse(body, BatchRequest)
    if not isinstance(parsed, BaseModel):
        return parsed
    return await _answer(parsed.model_dump()["requests"], single=False)


async def floor(body: bytes) -> Answer:
    """/predict's way through the service without its work: validation, the champion check and
    the batcher's thread hop stay; features, model and log go. A constant answer."""
    parsed = _parse(body, PredictRequest)
    if not isinstance(parsed, BaseModel):
        return parsed
    service = bentoml.get_current_service()
    unavailable = service.unavailable()
    if unavailable is not None:
        return _error(503, f"{unavailable}; see /readyz")
    [answer] = await service.floor.submit([None])
    return 200, orjson.dumps(answer)


FLOOR_ANSWER = {"floor": True}


def _floor_answers(requests: list[None]) -> list[dict[str, Any]]:
    return [FLOOR_ANSWER for _ in requests]


async def model(request: Request) -> Response:
    return Response(orjson.dumps(bentoml.get_current_service().describe()), media_type=JSON)


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


# The page at /, and the spec it renders at /docs.json, replace BentoML's: these routes are
# matched before BentoML's page routes. BentoML's spec lists no route of a mounted Starlette app,
# and its page loads Google Tag Manager and its spec's description badges from the internet.
# This page is BentoML's without them (and without its index.css, which hides the spec's title),
# on the Swagger UI files BentoML serves (static_content/; swagger-initializer.js loads
# ./docs.json).
PAGE = f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>{html.escape(use_case.name)} predictions</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css" />
    <style>body {{ margin: 0; background: #fafafa; }} .topbar {{ display: none; }}</style>
    <link rel="icon" type="image/png" href="./static_content/favicon-light-32x32.png" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="./static_content/swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"""


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def docs_spec(request: Request) -> Response:
    service = cast("bentoml.Service[PredictionService]", PredictionService)
    return JSONResponse(with_prediction_routes(service.openapi_spec.asdict()))


def with_prediction_routes(spec: dict[str, Any]) -> dict[str, Any]:
    """BentoML's OpenAPI document with /openapi.json's title, routes and schemas."""
    components = spec.setdefault("components", {})
    components["schemas"] = {**components.get("schemas", {}), **OPENAPI["components"]["schemas"]}
    return {**spec, "info": OPENAPI["info"], "paths": {**spec["paths"], **OPENAPI["paths"]}}


def _parse(body: bytes, schema: type[BaseModel]) -> BaseModel | Answer:
    try:
        return schema.model_validate_json(body or b"{}")
    except ValidationError as err:
        errors = err.errors(include_url=False, include_context=False, include_input=False)
        return 400, orjson.dumps(
            {"error": f"invalid request: {_summary(errors)}", "detail": errors}
        )


async def _answer(requests: list[dict[str, Any]], single: bool) -> Answer:
    service = bentoml.get_current_service()
    unavailable = service.unavailable()
    if unavailable is not None:
        return _error(503, f"{unavailable}; see /readyz")
    try:
        predictions = await service.batcher.submit(requests)
    except StoreUnavailable as err:
        service.health.recheck()
        return _failed(503, err, f"{err}; see /readyz")
    except Exception as err:
        return _failed(500, err, f"internal error ({type(err).__name__}); it is logged")
    return 200, orjson.dumps(predictions[0] if single else {"predictions": predictions})


def _error(status: int, message: str) -> Answer:
    return status, orjson.dumps({"error": message})


def _failed(status: int, err: Exception, message: str) -> Answer:
    errors.error(f"scoring failed ({status})", err)
    failed_total.labels(status=str(status), error=type(err).__name__).inc()
    return _error(status, message)


def _summary(errors: list[Any]) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors[:5])


class PredictionRoutes(Starlette):
    """The app BentoML mounts: the prediction routes on bare ASGI, the others on Starlette.
    Starlette's routing and its request and response objects cost more than validating a
    request does; a prediction route reads the body, awaits its handler and sends the answer.

    The prediction routes are listed as Starlette routes too, never called: BentoML matches a
    request against a mounted Starlette app's routes and leaves the rest (its static files) to
    its own."""

    def __init__(
        self, handlers: Mapping[str, Callable[[bytes], Awaitable[Answer]]], routes: list[Route]
    ) -> None:
        listed = [Route(path, _handled_above, methods=["POST"]) for path in handlers]
        super().__init__(routes=[*routes, *listed])
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        handler = self.handlers.get(path) if scope["type"] == "http" else None
        if handler is None:
            await super().__call__(scope, receive, send)
            return
        if scope["method"] != "POST":
            await json_error(send, 405, "use POST", [(b"allow", b"POST")])
            return
        body = b""
        more = True
        while more:  # RequestLimits bounded the size
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, answer = await handler(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", JSON_BYTES),
                    (b"content-length", b"%d" % len(answer)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


JSON_BYTES = JSON.encode()


async def _handled_above(request: Request) -> Response:
    raise AssertionError("PredictionRoutes answers this route itself")


PREDICTION_ROUTES = {
    "/predict": predict,
    "/predict_batch": predict_batch,
    "/floor": floor,  # diagnostics; not in the OpenAPI document
}
routes = PredictionRoutes(
    PREDICTION_ROUTES,
    [
        Route("/model", model, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/", page, methods=["GET"]),  # see PAGE
        Route("/docs.json", docs_spec, methods=["GET"]),
    ],
)


@bentoml.service(
    name=f"{use_case.name}-predictions",
    workers=limits.workers,
    traffic={"timeout": limits.timeout_seconds, "max_concurrency": limits.max_concurrency},
    # A log line per request costs more than scoring it; the prediction log and /metrics
    # record every request instead.
    logging={"access": {"enabled": limits.access_log}},
    # An OpenTelemetry span per prediction costs more than validating it, exported or not;
    # the prediction log and /metrics account for every prediction.
    tracing={"excluded_urls": [f"{path}$" for path in PREDICTION_ROUTES]},
)
@bentoml.asgi_app(routes, path="/")
class PredictionService:
    def __init__(self) -> None:
        from mlops.stores.registry import CHAMPION, ModelRegistry
        from serving import packaging
        from serving.champion import Champion
        from serving.scoring import READ_TIMEOUT_SECONDS, Scorer, StoreHealth, load_registered

        # A store read that hangs fails (503) before the request times out (504).
        read_timeout = min(READ_TIMEOUT_SECONDS, limits.timeout_seconds / 2)
        self.scorer = Scorer(self._open_store(), use_case, read_timeout)
        self.health = StoreHealth(self.scorer.online, PROBE_SECONDS, PROBE_DEADLINE_SECONDS)
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
        self.batcher = MicroBatcher(self.score, limits.batch_max_size, limits.batch_wait_ms / 1000)
        self.floor = MicroBatcher(
            _floor_answers, limits.batch_max_size, limits.batch_wait_ms / 1000
        )
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
        self.health.start()
        # Everything loaded so far (libraries, registry, model) lives as long as the process:
        # keep the collector from scanning it, or a full collection stalls requests ~100 ms.
        gc.freeze()

    @staticmethod
    def _open_store() -> FeatureStore:
        """The feature store, its definitions applied (tables created, stuck views repaired). A
        store that cannot be opened (a corrupt online store) must not stop the service, or it
        would restart in a loop: it starts not ready, and the probe says why until the store
        reads again. Scoring needs only the store's configuration (see Scorer)."""
        from feast import FeatureStore

        from mlops.stores.feature_store import open_store, repo_config

        try:
            return open_store(settings, use_case, registry_cache_mode="thread")
        except Exception:
            log.exception("cannot open the feature store; not ready until its online store reads")
            return FeatureStore(config=repo_config(settings, use_case, "thread"))

    @property
    def pinned(self) -> bool:
        return limits.model_source == "bento" or limits.model_version is not None

    def unavailable(self) -> str | None:
        """Why requests cannot be scored now (None: they can); /readyz and 503s say it."""
        if self.champion.current is None:
            error = self.champion.last_error
            return "no model loaded yet" + (f": {error}" if error else "")
        problem = self.health.problem()
        return f"online store unavailable: {problem}" if problem else None

    def __is_ready__(self) -> bool:
        # An HTTPException, not False: BentoML then answers /readyz with the cause.
        unavailable = self.unavailable()
        if unavailable is not None:
            raise HTTPException(503, f"not ready: {unavailable}")
        return True

    @bentoml.on_shutdown
    def close(self) -> None:
        self.batcher.close()  # what was queued is scored, and logged below
        self.floor.close()
        self.health.stop()
        self.champion.stop()
        self.log.close()

    def describe(self) -> dict[str, Any]:
        current = self.champion.current
        model = (
            current.describe()
            if current is not None
            else {"model_name": use_case.model_name, "model_version": None, "features": []}
        )
        return ModelInfo.model_validate(
            {
                "loaded_at": None,
                **model,
                "pinned": self.pinned,
                "last_error": self.champion.last_error,
            }
        ).model_dump(mode="json")

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
        for name, count in Counter(n for names in scored.missing for n in names).items():
            missing_total.labels(column=name).inc(count)
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


# BentoML's tag for a service's own endpoints: its page at / lists the routes under it.
APP_TAG = "Service APIs"


def _openapi() -> dict[str, Any]:
    """The prediction routes' OpenAPI document, from the same pydantic models that validate."""
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": {JSON: {"schema": ref(ErrorAnswer)}}}

    def post(summary: str, body: type[BaseModel], answer: type[BaseModel]) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "tags": [APP_TAG],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": ref(body)}},
                },
                "responses": {
                    "200": {
                        "description": "scored",
                        "content": {JSON: {"schema": ref(answer)}},
                    },
                    "400": error("invalid request; `error` says why, `detail` where"),
                    "401": error("no API key, or a wrong one (when the service has one)"),
                    "413": error("body too large"),
                    "415": error("not JSON"),
                    "429": {"description": "too many requests in flight"},
                    "500": error("internal error, logged"),
                    "503": error(
                        "not ready: no model loaded yet, or the online store cannot be read"
                    ),
                    "504": {"description": "no answer within the timeout"},
                },
            }
        }

    return {
        "openapi": "3.0.2",
        "info": {
            "title": f"{use_case.name} predictions",
            "version": "1",
            "description": f"`{use_case.score_name}` per request, from the model `GET /model` "
            "names (the registry's @champion unless pinned). `/openapi.json` has these routes "
            "alone; `/livez`, `/readyz` and `/metrics` are BentoML's (see docs/serving.md).",
        },
        "paths": {
            "/predict": post(
                f"Score one request: {use_case.score_name}", PredictRequest, Prediction
            ),
            "/predict_batch": post("Score many requests at once", BatchRequest, BatchPrediction),
            "/model": {
                "get": {
                    "summary": "The model version being served",
                    "tags": [APP_TAG],
                    "responses": {
                        "200": {
                            "description": "the model, or none yet",
                            "content": {JSON: {"schema": ref(ModelInfo)}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": schemas},
    }


OPENAPI = _openapi()
# The decorators' types lose the Service wrapper that bentoml.service returns. The first
# middleware added runs first: a request without the API key learns nothing about the limits.
_service = cast("bentoml.Service[PredictionService]", PredictionService)
if settings.auth.serving_api_key:
    _service.add_asgi_middleware(ApiKey, api_key=settings.auth.serving_api_key.get_secret_value())
_service.add_asgi_middleware(RequestLimits, max_body_bytes=limits.max_body_bytes)
