"""The monitoring gate's rules, in the order they apply, with the card's thresholds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlops.contracts.card import MonitoringGate
from mlops.contracts.usecase import load_use_case
from monitoring.gate import decide
from monitoring.history import History
from monitoring.signals import Signals
from tests.support.session import PINNED_USE_CASE

GATE: MonitoringGate = load_use_case(PINNED_USE_CASE).card.gates.monitoring

HEALTHY = Signals(
    rows=20_000,
    labelled=20_000,
    quarantined_fraction=0.0,
    null_fraction={"device": 0.0, "ad_position": 0.0},
    metric="nce",
    performance=0.92,
    reference_performance=0.92,
    drift_share=0.0,
    drifted_inputs=[],
    score_drifted=False,
    column_drift={},
    score_drift=0.01,
)
DRIFTED = replace(HEALTHY, drift_share=0.5, drifted_inputs=["device"], score_drifted=True)


def test_healthy_window_changes_nothing() -> None:
    verdict = decide(HEALTHY, [], GATE)
    assert verdict.decision == "none"
    assert "healthy" in verdict.reason and not verdict.drifted


def test_performance_degradation_retrains_at_once() -> None:
    worse = replace(
        HEALTHY, performance=HEALTHY.reference_performance + GATE.max_degradation + 0.01
    )
    verdict = decide(worse, [], GATE)
    assert verdict.decision == "retrain"
    assert verdict.reason.startswith("performance: NCE 0.9700")


def test_the_rule_reads_the_tasks_own_metric() -> None:
    regression = replace(HEALTHY, metric="nrmse", performance=0.80, reference_performance=0.60)
    verdict = decide(regression, [], GATE)
    assert verdict.decision == "retrain"
    assert verdict.reason.startswith("performance: NRMSE 0.8000"), verdict.reason


def test_a_card_written_before_task_kinds_still_reads() -> None:
    earlier = GATE.model_dump() | {"max_nce_degradation": 0.05}
    del earlier["max_degradation"]
    assert MonitoringGate.model_validate(earlier).max_degradation == 0.05


def test_degradation_within_tolerance_or_on_too_few_labels_does_not() -> None:
    slightly = replace(
        HEALTHY, performance=HEALTHY.reference_performance + GATE.max_degradation / 2
    )
    assert decide(slightly, [], GATE).decision == "none"
    few_labels = replace(HEALTHY, performance=2.0, labelled=GATE.min_labelled_rows - 1)
    assert decide(few_labels, [], GATE).decision == "none"


@pytest.mark.parametrize(
    ("earlier", "decision"),
    [([], "none"), ([False, False], "none"), ([True], "retrain"), ([True, False], "retrain")],
)
def test_drift_needs_k_of_the_last_n_windows(earlier: list[bool], decision: str) -> None:
    assert GATE.windows_k == 2 and GATE.windows_n == 3  # the card's rule this test spells out
    verdict = decide(DRIFTED, earlier, GATE)
    assert verdict.decision == decision and verdict.drifted


def test_a_drifted_window_that_does_not_retrain_says_why_both_hold() -> None:
    score_moved = replace(DRIFTED, score_drift=GATE.score_drift_threshold + 0.05)
    verdict = decide(score_moved, [False], GATE)
    assert verdict.decision == "none" and verdict.drifted
    assert verdict.reason.startswith("healthy: ")
    assert "drifted windows: 1 of the last 2, fewer than the 2 that retrain" in verdict.reason
    limit = f"{GATE.score_drift_threshold:g}"
    assert f"score drifted (distance {score_moved.score_drift:.3f} >= {limit})" in verdict.reason


def test_old_drift_falls_out_of_the_last_n_windows() -> None:
    assert decide(DRIFTED, [True, False, False], GATE).decision == "none"


def test_data_incident_alerts_and_never_retrains_even_when_performance_drops() -> None:
    broken = replace(
        DRIFTED,
        quarantined_fraction=GATE.max_quarantined_fraction * 3,
        null_fraction={"device": GATE.max_null_fraction * 2, "ad_position": 0.0},
        performance=2.0,
    )
    verdict = decide(broken, [True, True], GATE)
    assert verdict.decision == "alert"
    assert "quarantined" in verdict.reason and "'device'" in verdict.reason


def test_too_few_rows_decide_nothing() -> None:
    tiny = replace(DRIFTED, rows=GATE.min_rows - 1, performance=2.0)
    assert decide(tiny, [True, True], GATE).decision == "none"


def test_card_refuses_k_above_n() -> None:
    raw = GATE.model_dump() | {"windows_k": 4, "windows_n": 3}
    with pytest.raises(ValueError, match="windows_k"):
        MonitoringGate.model_validate(raw)


def test_history_replaces_a_rerun_window_and_starts_over_with_a_new_champion(tmp_path) -> None:
    history = History(tmp_path / "history.json")
    history.record({"window_end": "2026-01-08", "model_version": "1", "drifted": True})
    history.record({"window_end": "2026-01-09", "model_version": "1", "drifted": False})
    history.record({"window_end": "2026-01-09", "model_version": "1", "drifted": True})  # rerun
    assert len(history.entries()) == 2
    assert history.drifted_before("2026-01-10", "1") == [True, True]
    assert history.drifted_before("2026-01-10", "2") == []
    assert history.drifted_before("2026-01-09", "1") == [True]
