"""The service's HTTP routes, as the ASGI app the BentoML service mounts at / (`service_app`).

The prediction routes (POST /predict, /predict_batch, /explain, /floor) are bare ASGI
(`PredictionRoutes`): BentoML's API layer, and even Starlette's routing and request objects, cost
more per request than scoring does (see docs/serving.md). A prediction route reads the body,
validates it with the use case's request model, hands it to the service's micro-batcher and sends
the orjson answer.
/model (GET, or POST `{}` as BentoML's client calls it), /openapi.json, / and /docs (the page)
and /docs.json stay on Starlette. BentoML's clients find the routes in /schema.json
(serving/openapi_schema.py: `ServiceSchema`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import bentoml
import orjson
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from serving.http_limits import JSON, json_error
from serving.online_store_reader import StoreUnavailable
from serving.openapi_schema import with_prediction_routes
from serving.request_models import ModelRequest, RequestModels
from serving.throttled_log import ErrorLog

log = logging.getLogger("serving")

# Scoring failures are logged once per cause, then counted this often.
ERROR_LOG_SECONDS = 60.0

errors = ErrorLog(log, every=ERROR_LOG_SECONDS)

failed_total = bentoml.metrics.Counter(
    name="mlops_failed_requests",
    documentation="Prediction requests answered 5xx by the service itself, per status and error.",
    labelnames=["status", "error"],
)

Answer = tuple[int, bytes]  # status, JSON body
Handler = Callable[[bytes], Awaitable[Answer]]


def prediction_handlers(models: RequestModels) -> dict[str, Handler]:
    """The prediction routes by path: a request body in, (status, JSON answer) out. They score
    on the service being served (`bentoml.get_current_service()`: its batchers and model)."""
    predict_request, batch_request = models.predict_request, models.batch_request

    async def predict(body: bytes) -> Answer:
        parsed = _parse(body, predict_request)
        if not isinstance(parsed, BaseModel):
            return parsed
        return await _answer([parsed.model_dump()], single=True)

    async def predict_batch(body: bytes) -> Answer:
        parsed = _parse(body, batch_request)
        if not isinstance(parsed, BaseModel):
            return parsed
        return await _answer(parsed.model_dump()["requests"], single=False)

    async def floor(body: bytes) -> Answer:
        """/predict's way through the service without its work: validation, the champion check
        and the batcher's thread hop stay; features, model and log go. A constant answer; the
        infra check times it beside /predict and judges only the difference."""
        parsed = _parse(body, predict_request)
        if not isinstance(parsed, BaseModel):
            return parsed
        service = bentoml.get_current_service()
        unavailable = service.unavailable()
        if unavailable is not None:
            return _error(503, f"{unavailable}; see /readyz")
        [answer] = await service.floor.submit([None])
        return 200, orjson.dumps(answer)

    async def explain(body: bytes) -> Answer:
        """/predict's answer with each input's contribution; scored by the champion, on a
        batcher of its own, and not logged: a diagnostic, not a served prediction."""
        parsed = _parse(body, predict_request)
        if not isinstance(parsed, BaseModel):
            return parsed
        return await _answer([parsed.model_dump()], single=True, explained=True)

    return {
        "/predict": predict,
        "/predict_batch": predict_batch,
        "/explain": explain,
        "/floor": floor,  # diagnostics; not in the OpenAPI document
    }


FLOOR_ANSWER = {"floor": True}


def floor_answers(requests: list[None]) -> list[dict[str, Any]]:
    """What the floor's batcher answers in place of scoring."""
    return [FLOOR_ANSWER for _ in requests]


def service_app(
    handlers: Mapping[str, Handler],
    openapi: dict[str, Any],
    page: str,
    service: bentoml.Service[Any],
) -> PredictionRoutes:
    """The prediction routes, and on Starlette: GET /model (the service's `describe()`; POST
    too, with an empty object, as BentoML's client calls every endpoint), /openapi.json
    (`openapi`), / and /docs (`page`) and /docs.json (the service's BentoML document with
    `openapi`'s routes).

    The page at /, and the spec it renders at /docs.json, replace BentoML's: these routes are
    matched before BentoML's page routes. BentoML's spec lists no route of a mounted Starlette
    app, and its page loads from the internet (see serving/openapi_schema.py)."""

    async def model(request: Request) -> Response:
        if request.method == "POST":
            parsed = _parse(await request.body(), ModelRequest)
            if not isinstance(parsed, BaseModel):
                status, answer = parsed
                return Response(answer, status_code=status, media_type=JSON)
        return Response(orjson.dumps(bentoml.get_current_service().describe()), media_type=JSON)

    async def openapi_document(request: Request) -> Response:
        return JSONResponse(openapi)

    async def page_html(request: Request) -> Response:
        return HTMLResponse(page)

    async def docs_spec(request: Request) -> Response:
        return JSONResponse(with_prediction_routes(service.openapi_spec.asdict(), openapi))

    return PredictionRoutes(
        handlers,
        [
            Route("/model", model, methods=["GET", "POST"]),
            Route("/openapi.json", openapi_document, methods=["GET"]),
            Route("/", page_html, methods=["GET"]),
            Route("/docs", page_html, methods=["GET"]),  # where FastAPI users look
            Route("/docs.json", docs_spec, methods=["GET"]),
        ],
    )


def _parse(body: bytes, schema: type[BaseModel]) -> BaseModel | Answer:
    try:
        return schema.model_validate_json(body or b"{}")
    except ValidationError as err:
        errors = err.errors(include_url=False, include_context=False, include_input=False)
        return 400, orjson.dumps(
            {"error": f"invalid request: {_summary(errors)}", "detail": errors}
        )


async def _answer(requests: list[dict[str, Any]], single: bool, explained: bool = False) -> Answer:
    service = bentoml.get_current_service()
    unavailable = service.unavailable()
    if unavailable is not None:
        return _error(503, f"{unavailable}; see /readyz")
    try:
        batcher = service.explainer if explained else service.batcher
        predictions = await batcher.submit(requests)
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

    def __init__(self, handlers: Mapping[str, Handler], routes: list[Route]) -> None:
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
