"""The canary's assignment and guardrails without a service: one user always meets the same
model, about the card's share of users meet the challenger, and each guardrail (errors,
latency against the champion's in the same window, score shift) stops it once, with why. The
real service's drill: tests/integration/serving/test_canary.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import numpy as np

from mlops.contracts.card import CanaryGuardrails
from serving.canary import Canary
from serving.champion import Champion
from serving.model_loading import ServedModel

RULE = CanaryGuardrails(window_requests=10, max_error_rate=0.2, max_latency_ratio=3.0)
CHAMPION = cast(ServedModel, SimpleNamespace(version="1"))


def canary(share: float = 0.5) -> tuple[Canary, list[tuple[str, str]]]:
    breaches: list[tuple[str, str]] = []
    challenger = cast(Champion, SimpleNamespace(current=SimpleNamespace(version="2")))
    watched = Canary(challenger, RULE, share, "user_id", lambda v, why: breaches.append((v, why)))
    return watched, breaches


def window(
    watched: Canary, *, ours_seconds: float, ours_scores: list[float] | None, calls: int = 10
) -> None:
    """Ten calls of one request each per model, the champion's first."""
    for i in range(calls):
        theirs = np.array([0.1 + 0.01 * (i % 3)])
        watched.record("1", False, 1, 0.001, theirs)
        scores = None if ours_scores is None else np.array([ours_scores[i % len(ours_scores)]])
        watched.record("2", True, 1, ours_seconds, scores)


def test_a_user_always_meets_the_same_model_and_about_the_share_meet_the_challenger():
    watched, _ = canary(share=0.25)
    users = [{"user_id": user, "ad_id": 1} for user in range(4000)]
    assigned = watched.assigned(users)
    assert 0.22 < len(assigned) / len(users) < 0.28
    assert watched.assigned(users) == assigned
    other_ads = [{"user_id": user, "ad_id": 9} for user in range(4000)]
    assert watched.assigned(other_ads) == assigned  # by user, whatever the ad


def test_a_challenger_like_the_champion_keeps_answering():
    watched, breaches = canary()
    window(watched, ours_seconds=0.0012, ours_scores=[0.1, 0.11, 0.12])
    assert breaches == [] and watched.answering(CHAMPION) is not None


def test_failing_calls_stop_the_canary_once_with_why():
    watched, breaches = canary()
    window(watched, ours_seconds=0.001, ours_scores=None)
    assert breaches == [("2", breaches[0][1])]
    assert breaches[0][1].startswith("canary guardrail: 10 of the challenger's 10 scoring calls")
    assert watched.answering(CHAMPION) is None
    assert watched.stopped("2") == breaches[0][1]
    window(watched, ours_seconds=0.001, ours_scores=None)  # calls still in flight
    assert len(breaches) == 1


def test_a_slow_challenger_is_stopped_against_the_champions_time_in_the_same_window():
    watched, breaches = canary()
    window(watched, ours_seconds=0.010, ours_scores=[0.1, 0.11, 0.12])  # 10x the champion's
    [(version, why)] = breaches
    assert version == "2"
    assert "median scoring call took 10.0x the champion's in the same window (> 3x)" in why


def test_latency_is_judged_on_enough_calls_only():
    watched, breaches = canary()
    for _ in range(2):  # a window of ten requests in two calls: one busy moment, not a verdict
        watched.record("1", False, 5, 0.001, np.array([0.1, 0.11, 0.12, 0.1, 0.11]))
        watched.record("2", True, 5, 0.050, np.array([0.1, 0.11, 0.12, 0.1, 0.11]))
    assert breaches == []


def test_a_challenger_scoring_far_from_the_champion_is_stopped():
    watched, breaches = canary()
    window(watched, ours_seconds=0.001, ours_scores=[0.9])
    [(_, why)] = breaches
    assert "mean score is" in why and "standard deviations from the champion's (> 1)" in why


def test_the_champion_itself_is_never_a_canary():
    watched, _ = canary()
    assert watched.answering(cast(ServedModel, SimpleNamespace(version="2"))) is None
