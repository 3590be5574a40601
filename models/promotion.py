"""The promotion gate: is the challenger good enough, and better than the champion?

Both models are scored on the same fresh test window before this runs; the gate compares those
two evaluations, never a number logged when the champion was trained. Thresholds come from the
requirements card (`gates.promotion`). Every check says what it compared, so the decision's
reason can be read without opening the code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlops.card import PromotionGate
from mlops.metrics import improvement
from models.evaluation import Evaluation


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    checks: tuple[Check, ...]

    @property
    def decision(self) -> str:
        return "promoted" if self.promote else "rejected"


def decide(
    challenger: Evaluation,
    champion: Evaluation | None,
    gate: PromotionGate,
    primary: str,
) -> PromotionDecision:
    """Promote only if the floors hold, the primary metric improves by the margin and no slice
    regresses beyond the tolerance. Without a champion, the floors alone decide."""
    checks = list(_floors(challenger, gate))
    if champion is not None:
        checks.append(_margin(challenger, champion, gate, primary))
        checks.extend(_slices(challenger, champion, gate, primary))
    failed = [c for c in checks if not c.passed]
    if failed:
        reason = "rejected: " + "; ".join(c.detail for c in failed)
    elif champion is None:
        reason = "promoted: first model, meets the floors (" + _details(checks) + ")"
    else:
        reason = "promoted: " + _details(checks)
    return PromotionDecision(promote=not failed, reason=reason, checks=tuple(checks))


def with_infra_check(decision: PromotionDecision, passed: bool, detail: str) -> PromotionDecision:
    """The gate's decision once the infra check has run: a model that cannot serve well is not
    promoted, whatever its metrics."""
    checks = (*decision.checks, Check("infra", passed, detail))
    if passed:
        return PromotionDecision(True, f"{decision.reason}; {detail}", checks)
    return PromotionDecision(False, f"rejected: {detail}", checks)


def _floors(challenger: Evaluation, gate: PromotionGate) -> list[Check]:
    m = challenger.metrics
    floors = [
        ("nce", m["nce"] <= gate.max_nce, f"nce {m['nce']:.4f} <= {gate.max_nce}"),
        (
            "roc_auc",
            m["roc_auc"] >= gate.min_roc_auc,
            f"roc_auc {m['roc_auc']:.4f} >= {gate.min_roc_auc}",
        ),
        ("ece", m["ece"] <= gate.max_ece, f"ece {m['ece']:.4f} <= {gate.max_ece}"),
    ]
    return [
        Check(f"floor.{name}", bool(ok), detail if ok else f"floor missed: {detail} is false")
        for name, ok, detail in floors
    ]


def _margin(
    challenger: Evaluation, champion: Evaluation, gate: PromotionGate, primary: str
) -> Check:
    ours, theirs = challenger.metrics[primary], champion.metrics[primary]
    gain = improvement(primary, ours, theirs)
    comparison = (
        f"{primary} {ours:.4f} vs champion {theirs:.4f} on the same window: improvement {gain:+.4f}"
    )
    if gain >= gate.min_improvement:
        return Check("margin", True, f"{comparison} >= margin {gate.min_improvement}")
    return Check("margin", False, f"{comparison} < margin {gate.min_improvement}")


def _slices(
    challenger: Evaluation, champion: Evaluation, gate: PromotionGate, primary: str
) -> list[Check]:
    """One check per slice both models were scored on with enough rows."""
    checks = []
    for key, metrics in challenger.slices.items():
        rows = challenger.slice_rows.get(key, 0)
        theirs = champion.slices.get(key, {}).get(primary, math.nan)
        ours = metrics[primary]
        if rows < gate.min_slice_rows or math.isnan(ours) or math.isnan(theirs):
            continue
        regression = -improvement(primary, ours, theirs)
        detail = f"slice {key} ({rows} rows) {primary} {ours:.4f} vs {theirs:.4f}"
        if regression > gate.slice_tolerance:
            checks.append(
                Check(
                    f"slice.{key}",
                    False,
                    f"{detail}: worse by {regression:.4f} > tolerance {gate.slice_tolerance}",
                )
            )
        else:
            checks.append(Check(f"slice.{key}", True, detail))
    return checks


def _details(checks: list[Check]) -> str:
    slices = [c for c in checks if c.name.startswith("slice.")]
    others = [c.detail for c in checks if not c.name.startswith("slice.")]
    if slices:
        others.append(f"no slice regressed beyond tolerance ({len(slices)} slices checked)")
    return "; ".join(others)
