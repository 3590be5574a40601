"""The service's API documents: the prediction routes' OpenAPI document (GET /openapi.json),
generated from the pydantic models that validate them; BentoML's document with those routes added
(GET /docs.json); and the page at / that renders it with Swagger UI."""

from __future__ import annotations

import html
from typing import Any

from pydantic import BaseModel

from mlops.contracts.usecase import UseCase
from serving.http_limits import JSON
from serving.request_models import ErrorAnswer, ModelInfo, RequestModels

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
