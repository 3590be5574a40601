"""A canary in the real service (`mlops serve`), under a card whose rollout is a canary
(`MLOPS_CARD`): the @challenger answers about its share of the users, each user always the
same model; and the drill: a challenger whose every call fails is rolled back by its guardrail
within one window, in the registry too, without a request failing.

One service per case on a copy of the session's trained week; the challenger is v1's model
registered again (the drill breaks it with `MLOPS_SERVING__FAULT_CHALLENGER_ERRORS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlops.stores.registry import CHALLENGER, DECIDED_BY, DECISION
from tests.support.service import Served, register_again, serving, serving_environment
from tests.support.session import TrainedWeek
from tests.support.stores import copy_home
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SHARE = 0.3
WINDOW = 20  # challenger answers per judged window
USERS = 120


def canary_card(use_case, directory: Path) -> Path:
    card = yaml.safe_load((use_case.package_dir / "card.yaml").read_text())
    card["rollout"] = {
        "mode": "canary",
        "canary_share": SHARE,
        "guardrails": {"window_requests": WINDOW, "max_error_rate": 0.05},
    }
    path = directory / "canary-card.yaml"
    path.write_text(yaml.safe_dump(card))
    return path


@pytest.fixture(params=["healthy", "failing"])
def canary(
    request, trained_week: TrainedWeek, use_case, tmp_path: Path, prefect_api_url: str
) -> Iterator[tuple[str, Served]]:
    home = copy_home(trained_week.home, tmp_path / "mlops-home")
    env = {
        **serving_environment(home, prefect_api_url),
        "MLOPS_CARD": str(canary_card(use_case, tmp_path)),
        "MLOPS_SERVING__FAULT_CHALLENGER_ERRORS": str(request.param == "failing").lower(),
        # One worker: /model then says what every request meets. Each worker follows the
        # challenger on its own poll, so for a moment after it appears two workers may differ;
        # the assignment itself is the same in every worker (tests/unit/serving/test_canary.py).
        "MLOPS_SERVING__WORKERS": "1",
    }
    with serving(home, trained_week.report, env) as served:
        version = register_again(served.registry, served.champion())
        served.registry.challenge(version, "test: a canary")
        wait_until(
            lambda: served.client.get("/model").json()["challenger_version"] == version,
            f"the service to follow the challenger v{version}",
        )
        yield request.param, served


def answers_per_user(served: Served) -> dict[int, set[str]]:
    versions: dict[int, set[str]] = {}
    for _ in range(2):  # each user twice: the same model both times
        batch = [{"user_id": user, "ad_id": 3} for user in range(1, USERS + 1)]
        for start in range(0, len(batch), 40):
            answer = served.post("/predict_batch", {"requests": batch[start : start + 40]})
            assert answer.status_code == 200, answer.text
            for body, user_request in zip(
                answer.json()["predictions"], batch[start : start + 40], strict=True
            ):
                versions.setdefault(user_request["user_id"], set()).add(body["model_version"])
    return versions


def metric(served: Served, name: str) -> float:
    text = served.client.get("/metrics").text
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))


def test_a_canary_answers_its_share_of_users_or_is_rolled_back_by_its_guardrail(canary):
    case, served = canary
    champion = served.champion()
    challenger = served.registry.alias(CHALLENGER)

    versions = answers_per_user(served)

    assert all(len(seen) == 1 for seen in versions.values()), "a user met both models"
    by_challenger = sum(seen == {challenger} for seen in versions.values())
    if case == "healthy":
        assert 0.15 < by_challenger / USERS < 0.45  # SHARE of the users, give or take
        assert served.registry.alias(CHALLENGER) == challenger
        return
    # Every call to the broken challenger failed and was answered by the champion instead.
    assert by_challenger == 0 and all(seen == {champion} for seen in versions.values())
    wait_until(lambda: served.registry.alias(CHALLENGER) is None, "the rollback's record")
    tags = served.registry.version(challenger).tags
    assert (tags[DECISION], tags[DECIDED_BY]) == ("rejected", "canary guardrail")
    assert tags["decision.reason"].startswith("canary guardrail: ")
    assert "scoring calls failed" in tags["decision.reason"]
    assert metric(served, "mlops_canary_stopped_total") >= 1
    wait_until(
        lambda: served.client.get("/model").json()["challenger_version"] is None,
        "the service to let the challenger go",
    )
