"""A `@challenger` shadowing the champion in the real service (`mlops serve`): it scores the
same requests, on the same features, into the shadow log; a full shadow queue never fails or
holds up an answer (a drill: the challenger made slow); a challenger rejected is let go.

One service for the module, on a copy of the session's trained week, its shadow scoring slowed
down (CPU time, `MLOPS_SERVING__FAULT_CHALLENGER_SPIN_MS`) behind a queue of one batch. The
challenger is v1's model registered again, so both models must score alike. Each test names
its own challenger and waits for the service to follow it: any order works.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlops.stores.prediction_log import shadow_log_dir
from mlops.stores.registry import CHALLENGER, ModelRegistry
from tests.support.service import (
    MAX_CONCURRENCY,
    Served,
    register_again,
    serving,
    serving_environment,
    wait_for_log,
)
from tests.support.session import TrainedWeek
from tests.support.stores import copy_home
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SHADOW_SPIN_MS = 300  # CPU time per shadow batch: ~100x a request's, busy machine or not
BURST = 40


@pytest.fixture(scope="module")
def shadowing(
    trained_week: TrainedWeek, tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str
) -> Iterator[Served]:
    home = copy_home(trained_week.home, tmp_path_factory.mktemp("shadow") / "mlops-home")
    env = {
        **serving_environment(home, prefect_api_url),
        "MLOPS_SERVING__FAULT_CHALLENGER_SPIN_MS": str(SHADOW_SPIN_MS),
        "MLOPS_SERVING__SHADOW_QUEUE_BATCHES": "1",
    }
    with serving(home, trained_week.report, env) as served:
        yield served


def challenge_with_v1_again(served: Served) -> str:
    """A new @challenger (v1's model again), once the service scores it."""
    registry: ModelRegistry = served.registry
    version = register_again(registry, served.champion())
    registry.challenge(version, "test: shadow the champion")
    wait_until(
        lambda: served.client.get("/model").json()["challenger_version"] == version,
        f"the service to shadow with v{version}",
    )
    return version


def request(user_id: int) -> dict[str, object]:
    return {"user_id": user_id, "ad_id": 3, "device": "mobile", "ad_position": 1}


def skipped(served: Served) -> float:
    metrics = served.client.get("/metrics").text
    found = re.findall(r'^mlops_shadow_requests_total\{outcome="skipped"\} (\S+)$', metrics, re.M)
    return sum(float(value) for value in found)


def test_the_challenger_scores_the_same_requests_on_the_same_features(shadowing):
    champion = shadowing.champion()
    challenger = challenge_with_v1_again(shadowing)

    ids = []
    for user_id in (1, 2, 999_999):  # the last one unknown to the store: defaults filled in
        answer = shadowing.post("/predict", request(user_id))
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == champion
        ids.append(answer.json()["request_id"])
        # One at a time: the queue holds one batch, and this test is not the drill.
        wait_for_log(shadowing, ids, directory=shadow_log_dir(shadowing.settings.predictions_dir))

    served = wait_for_log(shadowing, ids)
    shadowed = wait_for_log(
        shadowing, ids, directory=shadow_log_dir(shadowing.settings.predictions_dir)
    )
    for request_id in ids:
        ours, theirs = served[request_id], shadowed[request_id]
        assert (ours["model_version"], theirs["model_version"]) == (champion, challenger)
        assert theirs["missing_features"] == ours["missing_features"]
        assert theirs["score"] == pytest.approx(ours["score"], abs=1e-9)
    assert shadowed[ids[-1]]["missing_features"]  # the unknown user's values were defaulted


def test_a_full_shadow_queue_neither_fails_nor_holds_up_an_answer(shadowing):
    challenge_with_v1_again(shadowing)
    before = skipped(shadowing)

    # Bursts from as many clients as the service admits at once: the slow challenger takes one
    # batch, the queue one more; the rest are skipped while the answers go out.
    with ThreadPoolExecutor(MAX_CONCURRENCY) as clients:
        answers = list(
            clients.map(lambda i: shadowing.post("/predict", request(1 + i % 50)), range(BURST))
        )

    assert [a.status_code for a in answers] == [200] * BURST, [a.text for a in answers][:3]
    wait_until(lambda: skipped(shadowing) > before, "skipped shadow scoring to be counted")


def test_a_rejected_challenger_is_let_go(shadowing):
    challenger = challenge_with_v1_again(shadowing)

    shadowing.registry.reject(challenger, "test: worse on live traffic")

    assert shadowing.registry.alias(CHALLENGER) is None
    wait_until(
        lambda: shadowing.client.get("/model").json()["challenger_version"] is None,
        "the service to stop shadowing",
    )
    answer = shadowing.post("/predict", request(1))
    assert answer.status_code == 200, answer.text


def test_the_shadow_log_stays_out_of_the_champions_log(shadowing: Served) -> None:
    challenge_with_v1_again(shadowing)
    answer = shadowing.post("/predict", request(7))
    request_id = answer.json()["request_id"]

    shadow_dir: Path = shadow_log_dir(shadowing.settings.predictions_dir)
    wait_for_log(shadowing, [request_id], directory=shadow_dir)
    served = wait_for_log(shadowing, [request_id])
    assert served[request_id]["model_version"] == shadowing.champion()
