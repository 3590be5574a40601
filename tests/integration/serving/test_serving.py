"""The prediction service as a real `bentoml serve` process (started by `mlops serve`) over
HTTP, on a copy of the ingested week with a champion trained (and infra-checked) once.

The session's service (`shared_service`, tests/integration/conftest.py) answers the tests that
only send requests and read, in any order: no test relies on what another did before it. A test
that needs to know which model is served reads the @champion at its start and waits until the
service serves it. The hot swap promotes, so it has a service (and a registry) of its own; the
clean-stop test starts and stops a service of its own.
Waits poll with generous deadlines and requests have generous timeouts: on a busy machine a
request, the first one above all, can take seconds, and the verdicts are about the answers.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlops.config.settings import Settings
from mlops.stores.prediction_log import read_prediction_log
from mlops.stores.registry import ModelRegistry
from tests.support.cli import MLOPS
from tests.support.service import (
    MAX_BATCH,
    MAX_CONCURRENCY,
    POLL_SECONDS,
    REQUEST_TIMEOUT_SECONDS,
    Served,
    register_again,
    serving,
    serving_environment,
    start_serving,
    stop_serving,
)
from tests.support.session import TrainedWeek
from tests.support.stores import copy_home
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def served(shared_service: Served) -> Served:
    """The session's service: v1 is, and stays, its @champion."""
    return shared_service


@pytest.fixture
def own_served(trained_week: TrainedWeek, tmp_path: Path, prefect_api_url: str) -> Iterator[Served]:
    """A service of its own, on a private copy of the trained week: for a test that promotes."""
    home = copy_home(trained_week.home, tmp_path / "mlops-home")
    with serving(home, trained_week.report, serving_environment(home, prefect_api_url)) as own:
        yield own


def known_request(**context: Any) -> dict[str, Any]:
    return {"user_id": 1, "ad_id": 1, "device": "mobile", "ad_position": 2, **context}


def test_infra_check_passed_before_the_first_promotion(served):
    infra = next(c for c in served.report.checks if c["name"] == "infra")
    assert served.report.decision == "promoted"
    assert infra["passed"], infra["detail"]
    assert "golden requests" in infra["detail"] and "SLO 50 ms" in infra["detail"]
    # The check served from its own log, not the live one.
    assert list((served.settings.home / "infra_check" / "v1" / "predictions").rglob("*.jsonl"))
    assert served.started["model_version"] == served.report.version == "1"


def test_predict_known_and_cold_start_entities(served):
    champion = served.champion()
    known = served.post("/predict", known_request())
    assert known.status_code == 200, known.text
    body = known.json()
    assert set(body) == {"request_id", "click_probability", "model_version", "missing_features"}
    assert 0 < body["click_probability"] < 1
    assert body["model_version"] == champion
    assert body["missing_features"] == []

    cold = served.post("/predict", {"user_id": 10**12, "ad_id": 1})
    assert cold.status_code == 200, cold.text
    missing = cold.json()["missing_features"]
    # Unknown user and omitted context: flagged, scored on training defaults, not refused.
    assert {"user_age_bucket", "user_country", "device", "ad_position"} <= set(missing)
    assert not any(name.startswith("ad_category") for name in missing)


def test_predict_batch_answers_each_request(served):
    requests = [known_request(user_id=i) for i in range(1, 6)]
    response = served.post("/predict_batch", {"requests": requests})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 5
    assert len({p["request_id"] for p in predictions}) == 5


def test_health_model_metrics_and_docs(served):
    champion = served.champion()
    assert served.client.get("/livez").status_code == 200
    assert served.client.get("/readyz").status_code == 200
    model = served.client.get("/model").json()
    assert model["model_version"] == champion and model["pinned"] is False
    # A labelled counter shows up once a value was counted: this test's own cold start does.
    cold = served.post("/predict", {"user_id": 10**12, "ad_id": 1})
    assert cold.status_code == 200 and cold.json()["missing_features"], cold.text
    metrics = served.client.get("/metrics").text
    assert "mlops_missing_feature_values_total" in metrics
    gauge = re.search(r'^mlops_served_model_version\{model="adclick"\} (\S+)$', metrics, re.M)
    assert gauge and float(gauge.group(1)) == float(champion), gauge and gauge.group(0)
    docs = served.client.get("/openapi.json").json()
    assert {"/predict", "/predict_batch", "/explain", "/model"} <= set(docs["paths"])
    assert "click_probability" in docs["components"]["schemas"]["Prediction"]["properties"]


JSON = {"Content-Type": "application/json"}
BAD_INPUTS = {
    "malformed JSON": ({"content": b'{"user_id": 1,', "headers": JSON}, 400),
    "not an object": ({"content": b"[1, 2]", "headers": JSON}, 400),
    "empty body": ({"content": b"", "headers": JSON}, 400),
    "wrong type": ({"json": {"user_id": "1", "ad_id": 1}}, 400),
    "float for int": ({"json": {"user_id": 1.5, "ad_id": 1}}, 400),
    "missing id": ({"json": {"user_id": 1}}, 400),
    "out of range": ({"json": {"user_id": 1, "ad_id": 1, "ad_position": 9}}, 400),
    "negative id": ({"json": {"user_id": -1, "ad_id": 1}}, 400),
    "unknown category": ({"json": {"user_id": 1, "ad_id": 1, "device": "smart-tv"}}, 400),
    "unknown field": ({"json": {"user_id": 1, "ad_id": 1, "clicked": 1}}, 400),
    "naive timestamp": (
        {"json": {"user_id": 1, "ad_id": 1, "event_timestamp": "2026-01-08T10:00:00"}},
        400,
    ),
    "not JSON": ({"content": b"user_id=1", "headers": {"Content-Type": "text/plain"}}, 415),
    "body too large": ({"content": b"{" + b" " * 70_000 + b"}", "headers": JSON}, 413),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gets_a_4xx_with_a_message(served, case):
    kwargs, status = BAD_INPUTS[case]
    response = served.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]


@pytest.mark.parametrize(
    "body",
    [{"requests": []}, {"requests": [{"user_id": 1, "ad_id": 1}] * (MAX_BATCH + 1)}, {"x": 1}],
    ids=["empty batch", "oversized batch", "no requests"],
)
def test_bad_batch_gets_a_400(served, body):
    response = served.post("/predict_batch", body)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("invalid request: requests")


def test_beyond_the_concurrency_limit_requests_get_429_not_5xx(served):
    batch = {"requests": [known_request(user_id=i) for i in range(1, MAX_BATCH + 1)]}
    with ThreadPoolExecutor(max_workers=4 * MAX_CONCURRENCY) as pool:
        statuses = list(
            pool.map(lambda _: served.post("/predict_batch", batch).status_code, range(64))
        )
    assert set(statuses) <= {200, 429}
    assert 429 in statuses and 200 in statuses


def test_champion_hot_swap_fails_no_request(own_served):
    before = own_served.champion()
    registry = own_served.registry
    after = register_again(registry, before)
    versions: list[str] = []
    failures: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            response = own_served.post("/predict", known_request())
            if response.status_code != 200:
                failures.append(response.status_code)
            else:
                versions.append(response.json()["model_version"])

    streams = [threading.Thread(target=stream) for _ in range(2)]
    for thread in streams:
        thread.start()
    try:
        # Answers from the model before the swap, however slow this machine is right now.
        wait_until(lambda: len(versions) >= 10 or bool(failures), "answers before the swap")
        registry.promote(after, "test: hot swap under load")
        promoted_at = time.monotonic()
        while after not in versions[-5:] and time.monotonic() - promoted_at < 30:
            time.sleep(0.05)
        swapped_after = time.monotonic() - promoted_at
        time.sleep(1)
    finally:
        stop.set()
        for thread in streams:
            thread.join()

    assert failures == []
    assert versions[0] == before and versions[-1] == after
    # Once a request saw the new version (per stream, order may interleave by a request or
    # two), the old one is gone.
    first_after = versions.index(after)
    assert versions[first_after + 4 :].count(before) == 0
    assert swapped_after < POLL_SECONDS + 5, (
        f"v{after} served {swapped_after:.1f} s after promotion"
    )
    assert own_served.client.get("/model").json()["model_version"] == after


def test_package_builds_a_bento_with_the_champion(champion_settings: Settings):
    """On a private copy of the trained week: no service needed, a version is registered."""
    registry = ModelRegistry(champion_settings.tracking_uri, "adclick")
    champion = registry.champion()
    # A newer version that is not the champion: the one packaged must be the champion.
    newest = register_again(registry, champion)
    assert newest != champion
    done = subprocess.run(
        [MLOPS, "package", "--json"], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    packaged = json.loads(done.stdout)
    assert packaged["model_version"] == champion
    bento = champion_settings.bentoml_home / "bentos" / Path(*packaged["bento"].split(":"))
    assert (bento / "bento.yaml").exists()
    assert packaged["model"] in (bento / "bento.yaml").read_text()


def test_clean_stop_loses_no_prediction(served, tmp_path):
    """A service of its own, with two workers (each writes its own log file) and its own
    prediction log: once it has stopped cleanly, every request it answered is in the log,
    once. Requests come on several connections at once, so both workers and the micro-batcher
    see concurrent traffic."""
    log_dir = tmp_path / "predictions"
    process, started = start_serving(
        {
            **served.env,
            "MLOPS_SERVING__PREDICTION_LOG_DIR": str(log_dir),
            "MLOPS_SERVING__WORKERS": "2",
            "MLOPS_SERVING__MAX_CONCURRENCY": "64",  # this test is not about the limit
        }
    )

    def client_session(first_user: int) -> list[str]:
        ids: list[str] = []
        with httpx.Client(base_url=started["url"], timeout=REQUEST_TIMEOUT_SECONDS) as client:
            for user_id in range(first_user, first_user + 10):
                response = client.post("/predict", json=known_request(user_id=user_id))
                assert response.status_code == 200, response.text
                ids.append(response.json()["request_id"])
            batch = {"requests": [known_request(user_id=i) for i in range(1, MAX_BATCH + 1)]}
            response = client.post("/predict_batch", json=batch)
            assert response.status_code == 200, response.text
            ids += [p["request_id"] for p in response.json()["predictions"]]
        return ids

    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            answered = [i for ids in pool.map(client_session, range(1, 60, 10)) for i in ids]
    finally:
        code = stop_serving(process)
    assert code == 0
    logged = [r["request_id"] for r in read_prediction_log(log_dir)]
    assert len(logged) == len(set(logged))
    assert set(answered) == set(logged)
    assert len(answered) == 6 * (10 + MAX_BATCH)
