"""Fault drills: scoring made slower, as a slower model would be (the infra check's,
MLOPS_SERVING__FAULT_SCORING_REPEATS, to prove the check rejects it; a slow @challenger's,
FAULT_CHALLENGER_SPIN_MS), or failing (a broken @challenger's, FAULT_CHALLENGER_ERRORS). The
service decides once, when it starts, whether to score through these: with the drills off, no
request checks for them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def slowed_down(score: Callable[P, R], milliseconds: float) -> Callable[P, R]:
    """`score`, each call followed by `milliseconds` of the thread's CPU time burnt."""

    def slower(*args: P.args, **kwargs: P.kwargs) -> R:
        scored = score(*args, **kwargs)
        spin_cpu(milliseconds)
        return scored

    return slower


def repeated(score: Callable[P, R], extra: int) -> Callable[P, R]:
    """`score`, each call done `extra` more times: the same work, so on a slow machine it
    stretches exactly as the model's own scoring does."""

    def costlier(*args: P.args, **kwargs: P.kwargs) -> R:
        for _ in range(extra):
            score(*args, **kwargs)
        return score(*args, **kwargs)

    return costlier


def spin_cpu(milliseconds: float) -> None:
    """Burn this much of the thread's CPU time. CPU time, not wall time: on a busy machine it
    stretches like real compute does."""
    until = time.thread_time() + milliseconds / 1000
    while time.thread_time() < until:
        pass


def failing(score: Callable[P, R], message: str) -> Callable[P, R]:
    """`score`, each call failing with `message` instead."""

    def fails(*args: P.args, **kwargs: P.kwargs) -> R:
        raise RuntimeError(message)

    return fails
