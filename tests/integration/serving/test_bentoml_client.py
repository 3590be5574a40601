"""BentoML's own clients on the real service (`bentoml serve`, started by `mlops serve`):
`bentoml.SyncHTTPClient` and `AsyncHTTPClient` discover `predict`, `predict_batch` and `model`
from /schema.json and get what a plain HTTP call gets: the same scores, the same 4xx for a bad
request or a body over the limit (raised as BentoML's exception with the status), and the API
key asked for like on every route.

The session's service answers the first tests. The last one packages the champion and serves
the bento with `bentoml serve` in its directory, with an API key: the bento serves its own
model, and the clients send the key as their token.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
import httpx
import pytest
from bentoml.exceptions import BentoMLException

from mlops.config.settings import Settings
from tests.support.cli import MLOPS
from tests.support.service import (
    MAX_BATCH,
    MAX_BODY_BYTES,
    REQUEST_TIMEOUT_SECONDS,
    Served,
    serving_environment,
)
from tests.support.session import TrainedWeek
from tests.support.stores import copy_home

pytestmark = pytest.mark.integration

ENDPOINTS = {"predict", "predict_batch", "explain", "model"}
SCORE = "click_probability"
KEY = "client-test-key"
BENTOML = str(Path(sys.executable).parent / "bentoml")


def request(user_id: Any = 1, **context: Any) -> dict[str, Any]:
    """A request whose score cannot move between two calls: its event time (the hour of day
    is a feature) is fixed, not "now"."""
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0)
    return {
        "user_id": user_id,
        "ad_id": 1,
        "device": "mobile",
        "ad_position": 2,
        "event_timestamp": an_hour_ago.isoformat(),
        **context,
    }


def same_prediction(client_answer: dict[str, Any], plain: dict[str, Any]) -> None:
    assert set(client_answer) == set(plain)
    for field in (SCORE, "model_version", "missing_features"):
        assert client_answer[field] == plain[field], field


@pytest.fixture(autouse=True)
def no_cloud_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """BentoML's client sends BENTO_CLOUD_API_KEY as its token when it is set."""
    monkeypatch.delenv("BENTO_CLOUD_API_KEY", raising=False)


def refusal(call: Any) -> BentoMLException:
    with pytest.raises(BentoMLException) as refused:
        call()
    return refused.value


def test_the_sync_client_discovers_and_calls_the_prediction_routes(shared_service: Served):
    served = shared_service
    served.champion()
    one = request()
    many = {"requests": [request(user_id=i) for i in range(1, 6)]}
    with bentoml.SyncHTTPClient(served.started["url"], timeout=REQUEST_TIMEOUT_SECONDS) as client:
        assert set(client.endpoints) >= ENDPOINTS
        scored = client.predict(**one)
        same_prediction(scored, served.post("/predict", one).json())
        batch = client.predict_batch(**many)
        plain = served.post("/predict_batch", many).json()["predictions"]
        assert len(batch["predictions"]) == len(plain) == 5
        for answer, expected in zip(batch["predictions"], plain, strict=True):
            same_prediction(answer, expected)
        assert client.model() == served.client.get("/model").json()
        explained = client.explain(**one)
        same_prediction(explained, served.post("/explain", one).json())
        assert "bias" in explained["contributions"]


def test_the_sync_client_gets_the_same_4xx_as_a_plain_call(shared_service: Served):
    served = shared_service
    too_many = {"requests": [request(user_id=i) for i in range(1, MAX_BATCH + 2)]}
    # Over the body limit, declared: refused before validation.
    too_big = {"requests": [request(user_id=i) for i in range(1, MAX_BODY_BYTES // 50)]}
    with bentoml.SyncHTTPClient(served.started["url"], timeout=REQUEST_TIMEOUT_SECONDS) as client:
        for path, body, call, status in [
            (
                "/predict",
                request(user_id="one"),
                lambda: client.predict(**request(user_id="one")),
                400,
            ),
            (
                "/predict",
                request(device="fridge"),
                lambda: client.predict(**request(device="fridge")),
                400,
            ),
            ("/predict_batch", too_many, lambda: client.predict_batch(**too_many), 400),
            ("/predict_batch", too_big, lambda: client.predict_batch(**too_big), 413),
        ]:
            plain = served.post(path, body)
            refused = refusal(call)
            assert refused.error_code == HTTPStatus(plain.status_code) == status, plain.text
            if status == 413:  # the two clients serialize the same body to other lengths
                assert plain.json()["error"].endswith(f"is over {MAX_BODY_BYTES}")
                assert json.loads(refused.message)["error"].endswith(f"is over {MAX_BODY_BYTES}")
            else:
                assert json.loads(refused.message) == plain.json()
        # What the client checks itself, before sending: a missing or an unknown argument.
        with pytest.raises(TypeError, match="user_id"):
            client.predict(ad_id=1)
        with pytest.raises(TypeError, match="colour"):
            client.predict(user_id=1, ad_id=1, colour="red")


def test_the_async_client_discovers_and_calls_the_prediction_routes(shared_service: Served):
    served = shared_service
    served.champion()
    one = request()

    async def calls() -> tuple[Any, Any, Any, BentoMLException]:
        async with bentoml.AsyncHTTPClient(
            served.started["url"], timeout=REQUEST_TIMEOUT_SECONDS
        ) as client:
            assert set(client.endpoints) >= ENDPOINTS
            scored = await client.predict(**one)
            batch = await client.predict_batch(requests=[one, request(user_id=2)])
            model = await client.model()
            try:
                await client.predict(**request(user_id=0))
            except BentoMLException as refused:
                return scored, batch, model, refused
            raise AssertionError("user_id 0 was accepted")

    scored, batch, model, refused = asyncio.run(calls())
    same_prediction(scored, served.post("/predict", one).json())
    same_prediction(batch["predictions"][0], scored)
    assert model == served.client.get("/model").json()
    plain = served.post("/predict", request(user_id=0))
    assert refused.error_code == HTTPStatus(plain.status_code) == HTTPStatus.BAD_REQUEST
    assert json.loads(refused.message) == plain.json()


@pytest.fixture(scope="module")
def bento_service(
    trained_week: TrainedWeek, tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The bento `mlops package` builds, served by `bentoml serve` in its directory, as a user
    of BentoML would, with an API key: (its URL, what `mlops package` printed)."""
    from serving.process import ServiceProcess, free_port, wait_ready

    directory = tmp_path_factory.mktemp("bento")
    home = copy_home(trained_week.home, directory / "mlops-home")
    env = {**serving_environment(home, prefect_api_url), "MLOPS_AUTH__SERVING_API_KEY": KEY}
    done = subprocess.run(
        [MLOPS, "package", "--json"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    packaged = json.loads(done.stdout)
    settings = Settings(home=home)
    bento = settings.bentoml_home / "bentos" / Path(*packaged["bento"].split(":"))
    port = free_port()
    log_path = directory / "bento.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [BENTOML, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=bento,
            env={**env, **settings.library_environment()},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = ServiceProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_ready(service, settings.serving.startup_timeout_seconds)
        yield service.url, packaged
    finally:
        service.stop()


def test_the_bento_serves_its_model_to_clients_with_the_api_key(bento_service):
    url, packaged = bento_service
    one = request()
    # Without the key, or with a wrong one, the client cannot even read the schema.
    for token in (None, "wrong"):
        refused = refusal(lambda: bentoml.SyncHTTPClient(url, token=token))  # noqa: B023
        assert "schema" in refused.message
    assert httpx.get(f"{url}/schema.json").status_code == 401
    with bentoml.SyncHTTPClient(url, token=KEY, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        scored = client.predict(**one)
        model = client.model()
    # The model the bento was built with, not the registry's to follow.
    assert model["pinned"] is True and model["model_version"] == packaged["model_version"]
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS) as plain:
        expected = plain.post("/predict", json=one).json()
        assert plain.get("/docs").status_code == 200
    same_prediction(scored, expected)

    async def async_call() -> Any:
        async with bentoml.AsyncHTTPClient(
            url, token=KEY, timeout=REQUEST_TIMEOUT_SECONDS
        ) as client:
            return await client.predict(**one)

    same_prediction(asyncio.run(async_call()), expected)
