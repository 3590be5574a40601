"""When the monitoring verdict asks for retraining, a @challenger on live trial may stand in for
it: one promoted on live evidence was trained on more recent data, one waiting for its labels
would be replaced by one as recent (its trial started over, and never finished while the drift
lasts); a rejected one leaves the retraining to happen."""

from __future__ import annotations

import pytest

from flows.monitor import stands_in_for_retraining
from monitoring.live_evidence import LiveVerdict


def _trial(decision: str) -> LiveVerdict:
    return LiveVerdict(decision, f"{decision}: 12 of 5000 labelled requests", "3", "1", "nce", 12)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("trial", "note"),
    [
        (None, None),
        (_trial("reject"), None),
        (_trial("promote"), "not retrained: v3, trained on more recent data, was promoted"),
        (_trial("wait"), "not retrained: v3 is on live trial (wait: 12 of 5000 labelled"),
    ],
)
def test_a_challenger_on_trial_stands_in_for_retraining_unless_rejected(trial, note) -> None:
    said = stands_in_for_retraining(trial)
    assert said == note or (note is not None and said is not None and said.startswith(note))
