"""The service's API documents: the prediction routes' OpenAPI document (GET /openapi.json),
generated from the pydantic models that validate them; BentoML's document with those routes added
(GET /docs.json); the page at / (and /docs) that renders it with Swagger UI; and BentoML's
service schema (GET /schema.json) with the routes as its endpoints, which BentoML's clients
discover them from (`ServiceSchema`)."""

from __future__ import annotations

import html
import json
from typing import Any

from pydantic import BaseModel

from mlops.contracts.usecase import UseCase
from serving.http_limits import JSON, Receive, Scope, Send
from serving.request_models import ErrorAnswer, ModelInfo, ModelRequest, RequestModels

# BentoML's tag for a service's own endpoints: its page at / lists the routes under it.
APP_TAG = "Service APIs"


def prediction_openapi(use_case: UseCase, models: RequestModels) -> dict[str, Any]:
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
                f"Score one request: {use_case.score_name}",
                models.predict_request,
                models.prediction,
            ),
            "/predict_batch": post(
                "Score many requests at once", models.batch_request, models.batch_prediction
            ),
            "/explain": post(
                "Score one request and say why: each model input's contribution (TreeSHAP)",
                models.predict_request,
                models.explanation,
            ),
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


def client_endpoints(models: RequestModels) -> list[dict[str, Any]]:
    """The prediction routes as BentoML's /schema.json lists an `@bentoml.api` method: name,
    route, and input and output JSON schemas with their references inlined (as BentoML inlines
    them). Its client calls an endpoint by POSTing the keyword arguments as one flat JSON object
    (`client.predict(**fields)`: the request's fields, what /predict takes), and
    `client.model()` POSTs `{}` to /model."""

    def endpoint(
        name: str, doc: str, body: type[BaseModel], answer: type[BaseModel]
    ) -> dict[str, Any]:
        return {
            "name": name,
            "route": f"/{name}",
            "description": doc,
            "doc": doc,  # what the client reads for the method's docstring
            "batchable": False,
            "input": _inlined(body.model_json_schema()),
            "output": _inlined(answer.model_json_schema()),
            "is_task": False,
        }

    return [
        endpoint("predict", "Score one request.", models.predict_request, models.prediction),
        endpoint(
            "predict_batch",
            "Score many requests at once: requests=[...].",
            models.batch_request,
            models.batch_prediction,
        ),
        endpoint(
            "explain",
            "Score one request and say why: each model input's contribution.",
            models.predict_request,
            models.explanation,
        ),
        endpoint("model", "The model version being served.", ModelRequest, ModelInfo),
    ]


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every `$ref` to its `$defs` replaced by the definition."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[1]
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                return resolve({**defs[name], **siblings})
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


SCHEMA_PATH = "/schema.json"


class ServiceSchema:
    """Answers GET /schema.json: BentoML's own schema of the service (`Service.schema()`: its
    name, description and paths) with `endpoints` as its routes. BentoML lists `@bentoml.api`
    methods only, so the prediction routes, which are bare ASGI for speed (serving/routes.py),
    would be invisible to its clients. An ASGI middleware, because BentoML routes /schema.json
    before the mounted app; it runs after the API key check, so the schema needs the key as the
    routes do. The document is built once, on the first request for it."""

    def __init__(self, app: Any, service: Any, endpoints: list[dict[str, Any]]) -> None:
        self.app = app
        self.service = service
        self.endpoints = endpoints
        self.body: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != SCHEMA_PATH
            or scope["method"] not in ("GET", "HEAD")
        ):
            await self.app(scope, receive, send)
            return
        if self.body is None:
            self.body = json.dumps({**self.service.schema(), "routes": self.endpoints}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", JSON.encode()),
                    (b"content-length", str(len(self.body)).encode()),
                ],
            }
        )
        body = b"" if scope["method"] == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})


def with_prediction_routes(spec: dict[str, Any], openapi: dict[str, Any]) -> dict[str, Any]:
    """BentoML's OpenAPI document with `openapi`'s title, routes and schemas."""
    components = spec.setdefault("components", {})
    components["schemas"] = {**components.get("schemas", {}), **openapi["components"]["schemas"]}
    return {**spec, "info": openapi["info"], "paths": {**spec["paths"], **openapi["paths"]}}


def service_page(title: str) -> str:
    """The page at /: BentoML's Swagger UI page over ./docs.json, without what it loads from
    the internet (Google Tag Manager, its spec's description badges) and without its index.css,
    which hides the spec's title; on the Swagger UI files BentoML serves (static_content/;
    swagger-initializer.js loads ./docs.json)."""
    return f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>{html.escape(title)}</title>
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
