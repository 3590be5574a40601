"""/schema.json as BentoML's clients read it: the prediction routes listed as endpoints with
their request models' JSON schemas (`client_endpoints`), answered by `ServiceSchema` in front
of the service, which lets every other request through untouched. Plain ASGI calls on the
service's definition: no server, no model."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from serving.openapi_schema import SCHEMA_PATH, ServiceSchema, client_endpoints
from serving.request_models import ModelInfo, request_models


def call(
    middleware: ServiceSchema, path: str, method: str = "GET"
) -> tuple[list[dict[str, Any]], list[str]]:
    reached: list[str] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    middleware.app = app
    scope = {"type": "http", "path": path, "method": method, "headers": []}
    asyncio.run(middleware(scope, receive, send))
    return sent, reached


def test_the_prediction_routes_are_endpoints_with_their_request_models(use_case):
    models = request_models(use_case, max_batch=10)
    endpoints = {e["name"]: e for e in client_endpoints(models)}
    assert set(endpoints) == {"predict", "predict_batch", "explain", "model"}
    assert all(e["route"] == f"/{name}" for name, e in endpoints.items())
    predict = endpoints["predict"]
    assert endpoints["explain"]["input"] == predict["input"]  # /explain takes /predict's body
    assert {"inputs", "contributions"} <= set(endpoints["explain"]["output"]["properties"])
    # What the client checks its arguments against, and sends as one flat object.
    assert set(predict["input"]["properties"]) == set(models.predict_request.model_fields)
    assert set(predict["input"]["required"]) == {"user_id", "ad_id"}
    assert set(predict["output"]["properties"]) >= {"click_probability", "model_version"}
    batch = endpoints["predict_batch"]
    assert list(batch["input"]["properties"]) == ["requests"]
    assert batch["input"]["properties"]["requests"]["items"] == predict["input"]
    assert batch["input"]["properties"]["requests"]["maxItems"] == 10
    assert endpoints["model"]["input"]["properties"] == {}
    assert set(endpoints["model"]["output"]["properties"]) == set(ModelInfo.model_fields)
    assert "$ref" not in json.dumps(endpoints)  # inlined: the client resolves no reference


def test_schema_json_lists_the_endpoints_and_everything_else_passes(settings):
    from serving.service import PredictionService, models

    endpoints = client_endpoints(models)
    middleware = ServiceSchema(None, service=PredictionService, endpoints=endpoints)
    sent, reached = call(middleware, SCHEMA_PATH)
    assert reached == []
    assert sent[0]["status"] == 200
    body = json.loads(sent[1]["body"])
    assert body["routes"] == endpoints
    # The rest is BentoML's own schema of the service.
    assert body["name"] == "adclick-predictions"
    assert {"/predict", "/predict_batch", "/model"} <= set(body["paths"])
    assert int(dict(sent[0]["headers"])[b"content-length"]) == len(sent[1]["body"])
    assert call(middleware, SCHEMA_PATH)[0][1]["body"] == sent[1]["body"]  # built once
    for path, method in [("/predict", "POST"), ("/schema.json", "POST"), ("/readyz", "GET")]:
        sent, reached = call(middleware, path, method)
        assert reached == [path] and sent == [], (path, method)
