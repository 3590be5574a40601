"""How often promotion on live evidence gets it right, over many seeded worlds (a benchmark of
the decision rule in monitoring/live_evidence.py, not a test).

Each seed draws `min_labelled` labelled requests of a click-through world (a true logit per
request, a click drawn from it, about 3% of them clicks) and two models' scores of them: a
champion whose logit errs by a normal error, and a challenger that is either

- **better by the card's margin**: its error shrunk so that its primary metric (NCE) is better
  by exactly `margin` on a million-request world, and correlated with the champion's (rho), as
  a retrained model's mistakes are with its predecessor's; or
- **as good**: an error of the same size, correlated alike (an identical model, whose interval
  is zero wide, is never promoted; this is the harder case).

Both are judged with the card's `rollout.live_evidence` settings (the active use case's, or the
defaults below when its card has none). The targets: the better one promoted in at least 90% of
the worlds, the one as good in at most 5%.

    python -m benchmarks live-evidence [--seeds 200] [--rho 0.9] [--json] [--smoke]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from benchmarks.harness import parse_options, run_in_fresh_home, target

TARGETS = {"better": 0.90, "as_good": 0.05}  # promoted at least / at most
CLICK_LOGIT = (-3.6, 1.0)  # mean and spread of the true logit: ~3% clicks
CHAMPION_ERROR = 0.6  # the spread of the champion's logit error
CALIBRATION_ROWS = 1_000_000
DEFAULT_RULE = {"min_labelled": 5000, "margin": 0.02}


def main(argv: list[str], base_import_seconds: float = 0.0) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks live-evidence")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--rho", type=float, default=0.9, help="Correlation of the two errors.")
    args = parse_options(parser, argv, smoke={"seeds": 2})
    run_in_fresh_home("live-evidence", lambda: measure(args), render, args)
    return 0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from mlops.config.settings import get_settings
    from mlops.contracts.card import LiveEvidence
    from mlops.contracts.tasks import task_for
    from mlops.contracts.usecase import active_use_case
    from monitoring.live_evidence import Paired, judge

    use_case = active_use_case(get_settings())
    rule = use_case.card.rollout.live_evidence or LiveEvidence.model_validate(DEFAULT_RULE)
    task = task_for("binary")
    shrink = _shrink_for(rule.margin, args.rho, task)
    promoted = {"better": 0, "as_good": 0}
    started = time.perf_counter()
    for seed in range(args.seeds):
        for case, scale in (("better", shrink), ("as_good", 1.0)):
            y, champion, challenger = _world(rule.min_labelled, args.rho, scale, seed)
            verdict = judge(Paired(y, champion, challenger), task, rule, "2", "1", seed)
            promoted[case] += verdict.decision == "promote"
    judgements = 2 * args.seeds
    shares = {case: count / args.seeds for case, count in promoted.items()}
    return {
        "use_case": use_case.name,
        "rule": rule.model_dump(),
        "rho": args.rho,
        "seeds": args.seeds,
        "promoted": shares,
        "interval_95": {case: _wilson(count, args.seeds) for case, count in promoted.items()},
        "targets": [
            target(
                "challenger better by the margin: share promoted",
                shares["better"],
                ">=",
                TARGETS["better"],
            ),
            target(
                "challenger as good: share promoted", shares["as_good"], "<=", TARGETS["as_good"]
            ),
        ],
        "seconds_per_judgement": (time.perf_counter() - started) / judgements,
    }


def _world(
    rows: int, rho: float, scale: float, seed: int, logit_error: float = CHAMPION_ERROR
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, the champion's scores and the challenger's (its error `scale` times as large)."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(*CLICK_LOGIT, rows)
    labels = (rng.uniform(size=rows) < _sigmoid(logit)).astype(np.float64)
    ours, independent = rng.normal(0, logit_error, (2, rows))
    theirs = scale * (rho * ours + math.sqrt(1 - rho**2) * independent)
    return labels, _sigmoid(logit + ours), _sigmoid(logit + theirs)


def _shrink_for(margin: float, rho: float, task: Any) -> float:
    """The challenger's error scale that makes it better by `margin` on a large world."""

    def gain(scale: float) -> float:
        y, champion, challenger = _world(CALIBRATION_ROWS, rho, scale, seed=10_000)
        return float(task.score(y, champion)["nce"] - task.score(y, challenger)["nce"])

    low, high = 0.0, 1.0  # gain falls as the scale grows: gain(1) is about 0
    for _ in range(20):
        middle = (low + high) / 2
        low, high = (middle, high) if gain(middle) > margin else (low, middle)
    return (low + high) / 2


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-x)))


def _wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson interval of a rate: how far the figure itself may be from the truth."""
    if trials == 0:
        return (math.nan, math.nan)
    rate = successes / trials
    centre = (rate + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return (round(centre - half, 4), round(centre + half, 4))


def render(report: dict[str, Any]) -> str:
    rule = report["rule"]
    lines = [
        f"{report['use_case']}: live evidence on {rule['min_labelled']} labelled requests, "
        f"margin {rule['margin']:g} NCE, {rule['confidence']:.0%} paired bootstrap interval "
        f"({rule['resamples']} resamples); errors correlated {report['rho']:g}; "
        f"{report['seeds']} seeds",
        f"{'challenger':<26} {'promoted':>9} {'95% interval':>16} {'target':>10}",
    ]
    for case, label, sign in (
        ("better", "better by the margin", ">="),
        ("as_good", "as good", "<="),
    ):
        low, high = report["interval_95"][case]
        lines.append(
            f"{label:<26} {report['promoted'][case]:>9.1%} {f'[{low:.1%}, {high:.1%}]':>16} "
            f"{sign + format(TARGETS[case], '.0%'):>10}"
        )
    lines.append(f"{report['seconds_per_judgement'] * 1000:.0f} ms per verdict")
    return "\n".join(lines)
