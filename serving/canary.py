"""A canary: the `@challenger` answers the requests of a share of the entities, and guardrails
from the card hand the traffic back to the champion when it misbehaves.

Assignment is by the first entity key's value (a stable hash, the same in every worker and after
every restart): one user always meets the same model. A call to the challenger that fails is
answered by the champion instead, so no request fails for the canary; the failure is counted.
Each window of `window_requests` requests the challenger answered is judged against what the
champion answered meanwhile in the same worker:

- errors: the challenger's failed calls over its calls;
- latency: its median scoring call over the champion's (the same machine in the same minutes:
  a busy machine slows both), once each made `MIN_TIMED_CALLS` calls in the window;
- scores: the difference of the two models' mean scores, in the champion's standard deviations.

A breach stops the canary in this worker at once and calls `on_breach(version, reason)` once;
the service records it in the registry (the challenger rejected, its alias removed), which every
other worker follows within a poll.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops.contracts.card import CanaryGuardrails
from serving.champion import Champion
from serving.model_loading import ServedModel

log = logging.getLogger(__name__)
HASH_SPACE = 2**64
MIN_TIMED_CALLS = 5  # per model in a window, for its latency to be judged


@dataclass
class _Answers:
    """One model's calls in the current window."""

    calls: int = 0
    failed: int = 0
    requests: int = 0
    call_seconds: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


class Canary:
    def __init__(
        self,
        challenger: Champion,
        guardrails: CanaryGuardrails,
        share: float,
        entity: str,
        on_breach: Callable[[str, str], None],
    ) -> None:
        self.challenger = challenger
        self.guardrails = guardrails
        self.entity = entity
        self.on_breach = on_breach
        self._below = int(share * HASH_SPACE)
        self._lock = threading.Lock()
        self._stopped: dict[str, str] = {}  # version -> why its canary was stopped
        self._version: str | None = None
        self._champion = _Answers()
        self._canary = _Answers()

    def answering(self, champion: ServedModel) -> ServedModel | None:
        """The challenger, if it answers its share now: loaded, not the champion, not stopped."""
        model = self.challenger.current
        if model is None or model.version == champion.version or model.version in self._stopped:
            return None
        return model

    def stopped(self, version: str) -> str | None:
        """Why the canary of `version` was stopped, if it was."""
        return self._stopped.get(version)

    def assigned(self, requests: Sequence[dict[str, Any]]) -> list[int]:
        """Which requests the challenger answers: their entity hashes under the share."""
        return [i for i, request in enumerate(requests) if self._hash(request) < self._below]

    def record(
        self,
        version: str,
        canary: bool,
        requests: int,
        seconds: float,
        scores: np.ndarray | None,
    ) -> None:
        """One scoring call of the champion (`canary` False) or of the challenger `version`;
        `scores` None: the call failed. Judges the window once the challenger filled it."""
        breach = None
        with self._lock:
            if canary and version in self._stopped:  # a call in flight when it was stopped
                return
            if canary and version != self._version:  # a new challenger: a new window
                self._version, self._champion, self._canary = version, _Answers(), _Answers()
            answers = self._canary if canary else self._champion
            answers.calls += 1
            answers.requests += requests
            answers.call_seconds.append(seconds)
            if scores is None:
                answers.failed += 1
            else:
                answers.scores.extend(_per_request(scores))
            if canary and self._canary.requests >= self.guardrails.window_requests:
                breach = self._judge()
                self._champion, self._canary = _Answers(), _Answers()
                if breach is not None:
                    self._stopped[version] = breach
        if breach is not None:
            log.warning("canary of v%s stopped, traffic back to the champion: %s", version, breach)
            self.on_breach(version, breach)

    def _judge(self) -> str | None:
        """The first guardrail the window breaks, as the reason; None if it held."""
        rule, ours, theirs = self.guardrails, self._canary, self._champion
        error_rate = ours.failed / ours.calls
        if error_rate > rule.max_error_rate:
            return (
                f"canary guardrail: {ours.failed} of the challenger's {ours.calls} scoring calls "
                f"failed ({error_rate:.1%} > {rule.max_error_rate:.1%})"
            )
        if not theirs.scores or not ours.scores:
            return None  # nothing to compare with in this window
        # A median of a call or two is one busy moment of the machine, not the model's speed.
        timed = min(len(ours.call_seconds), len(theirs.call_seconds)) >= MIN_TIMED_CALLS
        ratio = statistics.median(ours.call_seconds) / max(
            statistics.median(theirs.call_seconds), 1e-9
        )
        if timed and ratio > rule.max_latency_ratio:
            return (
                f"canary guardrail: the challenger's median scoring call took {ratio:.1f}x the "
                f"champion's in the same window (> {rule.max_latency_ratio:g}x)"
            )
        spread = float(np.std(theirs.scores)) or 1e-9
        shift = abs(float(np.mean(ours.scores)) - float(np.mean(theirs.scores))) / spread
        if shift > rule.max_score_shift:
            return (
                f"canary guardrail: the challenger's mean score is {shift:.2f} of the champion's "
                f"standard deviations from the champion's (> {rule.max_score_shift:g})"
            )
        return None

    def _hash(self, request: dict[str, Any]) -> int:
        value = str(request.get(self.entity)).encode()
        return int.from_bytes(hashlib.blake2b(value, digest_size=8).digest(), "big")


def _per_request(scores: np.ndarray) -> list[float]:
    """A number per request: the score, or the most probable class's probability."""
    values = np.asarray(scores, dtype=np.float64)
    return (values.max(axis=1) if values.ndim == 2 else values).tolist()
