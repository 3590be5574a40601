"""The live-evidence verdict on paired scores: wait for the labels, promote a clearly better
challenger, reject one as good as the champion, warn when a rejection's evidence is too thin for
the card's margin. The rule's error rates over many seeds: benchmarks/live_evidence.py."""

from __future__ import annotations

import numpy as np

from mlops.contracts.card import LiveEvidence
from mlops.contracts.tasks import task_for
from monitoring.live_evidence import Paired, judge

BINARY = task_for("binary")
RULE = LiveEvidence(min_labelled=2000, margin=0.05, resamples=100)


def world(rows: int, challenger_error: float, seed: int = 0) -> Paired:
    rng = np.random.default_rng(seed)
    logit = rng.normal(-2.0, 1.0, rows)
    labels = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    error = rng.normal(0, 1.0, rows)
    champion = 1 / (1 + np.exp(-(logit + error)))
    challenger = 1 / (1 + np.exp(-(logit + challenger_error * error)))
    return Paired(labels, champion, challenger)


def test_too_few_labelled_requests_wait_and_say_how_many():
    verdict = judge(world(500, 0.5), BINARY, RULE, "2", "1")
    assert verdict.decision == "wait"
    assert verdict.reason.startswith("wait: 500 of the 2000 labelled requests")
    assert verdict.interval is None


def test_a_clearly_better_challenger_is_promoted_on_the_first_requests_only():
    verdict = judge(world(3000, 0.3), BINARY, RULE, "2", "1")
    assert verdict.decision == "promote", verdict.reason
    assert verdict.labelled == 3000
    assert verdict.reason.startswith("promoted on live evidence: nce ")
    assert "on the same 2000 labelled requests" in verdict.reason
    assert verdict.interval is not None and verdict.interval[0] > 0
    assert verdict.improvement is not None and verdict.improvement > 0.05
    assert "warning" not in verdict.reason


def test_the_champion_itself_is_rejected_its_interval_never_excluding_zero():
    same = world(2000, 1.0)
    verdict = judge(same, BINARY, RULE, "2", "1")
    assert verdict.decision == "reject"
    assert verdict.interval == (0.0, 0.0)
    assert "its interval does not exclude zero" in verdict.reason


def test_a_rejection_on_an_interval_wider_than_the_margin_is_warned_about():
    thin = LiveEvidence(min_labelled=200, margin=0.001, resamples=100)
    verdict = judge(world(200, 1.05), BINARY, thin, "2", "1")  # a little worse: no evidence
    assert verdict.decision == "reject"
    assert "warning: on this many labelled requests a challenger better by the card's margin " in (
        verdict.reason
    )
    assert "0.001 would be promoted only about " in verdict.reason
    assert "raise min_labelled" in verdict.reason


def test_the_verdict_reads_as_markdown_with_its_interval():
    verdict = judge(world(2000, 0.3), BINARY, RULE, "2", "1")
    page = verdict.markdown()
    assert page.startswith("# promote: @challenger v2 vs @champion v1 on live traffic")
    assert "95% paired bootstrap interval [+" in page
