"""`@challenger` in a real MLflow registry (a copy of the trained week, v1 @champion): a newer
challenger replaces the former one, promotion and rejection take the alias, and `reconcile`
finishes each of those cut short. Crashes are staged by writing what the interrupted call had
written so far (the train flow's own kill drills: tests/integration/flows/test_train_flow.py)."""

from __future__ import annotations

import pytest

from mlops.stores.registry import CHALLENGER, CHAMPION, DECISION, ModelRegistry
from tests.support.service import register_again

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(champion_settings, use_case) -> ModelRegistry:
    return ModelRegistry(champion_settings.tracking_uri, use_case.model_name)


def decisions(registry: ModelRegistry) -> dict[str, str]:
    return {v.version: v.decision for v in registry.versions()}


def test_a_newer_challenger_replaces_the_former_one(registry):
    first, second = register_again(registry, "1"), register_again(registry, "1")

    assert registry.challenge(first, "passed the gate") is None
    assert registry.challenge(second, "passed the gate") == first

    assert registry.alias(CHALLENGER) == second
    assert decisions(registry) == {"1": "promoted", first: "abandoned", second: "challenger"}
    reason = registry.version(first).tags["decision.reason"]
    assert reason == f"replaced as @{CHALLENGER} by v{second}"


def test_promoting_or_rejecting_the_challenger_takes_its_alias(registry):
    challenger = register_again(registry, "1")
    registry.challenge(challenger, "passed the gate")
    registry.reject(challenger, "worse on live traffic")
    assert registry.alias(CHALLENGER) is None

    challenger = register_again(registry, "1")
    registry.challenge(challenger, "passed the gate")
    assert registry.promote(challenger, "better on live traffic") == "1"
    assert (registry.alias(CHAMPION), registry.alias(CHALLENGER)) == (challenger, None)


def test_reconcile_finishes_each_challenger_decision_cut_short(registry):
    # Moved to @challenger, its decision not yet written.
    pending = register_again(registry, "1")
    registry._set_alias(CHALLENGER, pending)
    # A former challenger whose replacement was not recorded.
    replaced = register_again(registry, "1")
    registry._tag(replaced, {DECISION: "challenger"})

    assert sorted(registry.reconcile()) == sorted([pending, replaced])
    assert decisions(registry)[pending] == "challenger"
    assert decisions(registry)[replaced] == "abandoned"

    # Rejected, the alias not yet taken.
    registry._record(pending, "rejected", "worse on live traffic", "test")
    assert registry.reconcile() == [pending]
    assert registry.alias(CHALLENGER) is None
    assert registry.reconcile() == []


def test_only_a_train_run_takes_a_pending_version_without_an_alias_for_dead(registry):
    training = register_again(registry, "1")  # pending: a train run may be scoring it now

    assert registry.reconcile(abandon_pending=False) == []  # what the monitor flow does
    assert decisions(registry)[training] == "pending"
    assert registry.reconcile() == [training]  # what the next train run does
    assert decisions(registry)[training] == "abandoned"
