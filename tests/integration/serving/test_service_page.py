"""The service's own page (GET /) shows the prediction routes with their schemas, offline.

In-process, on the ASGI app `bentoml serve` builds (`Service.to_asgi(is_main=True)`, BentoML's
routes and the mounted prediction routes in the order the server matches them), without its
lifespan: no model, no store, no process. The page and its spec do not depend on either.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, cast

import bentoml
import httpx
import pytest

from mlops.config.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def get(settings: Settings) -> Callable[[str], httpx.Response]:
    """GET a path from the app; httpx's ASGI transport runs no lifespan (the service's
    __init__)."""
    from serving.service import PredictionService

    app = cast("bentoml.Service[Any]", PredictionService).to_asgi(is_main=True)

    async def request(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            return await client.get(path)

    return lambda path: asyncio.run(request(path))


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    assert ref.startswith("#/components/schemas/"), schema
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_the_page_at_the_root_renders_the_prediction_routes_with_their_schemas(get):
    page = get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # Everything the page loads is the service's own: nothing from the internet.
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert loaded and all(url.startswith("./static_content/") for url in loaded), loaded
    for url in loaded:
        assert get(url.removeprefix(".")).status_code == 200, url
    initializer = get("/static_content/swagger-initializer.js").text
    assert '"./docs.json"' in initializer  # what the page renders

    spec = get("/docs.json").json()
    ours = get("/openapi.json").json()
    paths = spec["paths"]
    # The prediction routes, as /openapi.json describes them, next to BentoML's own.
    for path in ("/predict", "/predict_batch", "/model"):
        assert paths[path] == ours["paths"][path]
    assert {"/livez", "/readyz", "/metrics"} <= set(paths)
    assert "/floor" not in paths and "/docs.json" not in paths

    predict = paths["/predict"]["post"]
    request = _resolve(spec, predict["requestBody"]["content"]["application/json"]["schema"])
    assert {"user_id", "ad_id"} <= set(request["required"])
    answer = _resolve(spec, predict["responses"]["200"]["content"]["application/json"]["schema"])
    assert {"request_id", "model_version", "missing_features", "click_probability"} <= set(
        answer["properties"]
    )
    batch = paths["/predict_batch"]["post"]["requestBody"]["content"]["application/json"]
    items = _resolve(spec, batch["schema"])["properties"]["requests"]["items"]
    assert _resolve(spec, items) == request
    model = paths["/model"]["get"]["responses"]["200"]["content"]["application/json"]
    assert "model_version" in _resolve(spec, model["schema"])["properties"]
    # Every schema the routes refer to is in the document.
    refs = re.findall(r'"#/components/schemas/([^"]+)"', get("/docs.json").text)
    assert set(refs) <= set(spec["components"]["schemas"])
    # The spec's own text points nowhere outside the service (BentoML's badges are gone).
    assert "https://" not in spec["info"].get("description", "")
