"""The promotion gate: is the challenger good enough, and better than the champion?

Both models are scored on the same fresh test window before this runs; the gate compares those
two evaluations, never a number logged when the champion was trained. Thresholds come from the
requirements card (`gates.promotion`). Every check says what it compared, so the decision's
reason can be read without opening the code.

A floor inside its metric's bootstrap interval on the test window (`models.noise`) would
decide on noise: the gate still applies it, and the decision carries a warning that says so. So
does a challenger that a baseline matches or beats on the primary metric (a linear model would
serve as well: on a small or nearly linear table it often does); it is promoted all the same,
since the service serves boosters, and the warning tells the reader to look.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlops.contracts.card import Floor, PromotionGate, Rollout
from mlops.contracts.metrics import Metric, improvement
from models.evaluation import Evaluation
from models.noise import Bootstrap

# Warnings go last in a decision's reason, each after this.
WARNING = "; warning: "


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str  # the verdict, then the warnings
    checks: tuple[Check, ...]
    warnings: tuple[str, ...] = ()
    # Passed, but shadows the champion as @challenger first (the card's rollout).
    shadow: bool = False

    @property
    def decision(self) -> str:
        if not self.promote:
            return "rejected"
        return "challenger" if self.shadow else "promoted"


def decide(
    challenger: Evaluation,
    champion: Evaluation | None,
    gate: PromotionGate,
    primary: str,
    noise: Bootstrap | None = None,
    baselines: Mapping[str, Evaluation] | None = None,
) -> PromotionDecision:
    """Promote only if the floors hold, the primary metric improves by the margin and no slice
    regresses beyond the tolerance. Without a champion, the floors alone decide. `noise`: the
    challenger's bootstrap intervals on the test window; a floor inside one is warned about, as
    is each of the `baselines` (name -> evaluation) that scores as well as the challenger."""
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
    warnings = noise_warnings(gate.floors, noise) if noise is not None else ()
    warnings += baseline_warnings(challenger, baselines or {}, primary)
    return PromotionDecision(
        promote=not failed,
        reason=reason + _warned(warnings),
        checks=tuple(checks),
        warnings=warnings,
    )


def noise_warnings(floors: Mapping[Metric, Floor], noise: Bootstrap) -> tuple[str, ...]:
    """One warning per floor inside its metric's bootstrap interval."""
    warnings = []
    for metric, floor in floors.items():
        interval = noise.intervals.get(metric)
        if interval is not None and floor.bound in interval:
            warnings.append(
                f"floor {metric} {floor.operator} {floor.bound} is inside the noise: "
                f"{noise.confidence * 100:g}% bootstrap interval "
                f"[{interval.low:.4g}, {interval.high:.4g}] on {noise.rows} test rows"
            )
    return tuple(warnings)


def baseline_warnings(
    challenger: Evaluation, baselines: Mapping[str, Evaluation], primary: str
) -> tuple[str, ...]:
    """One warning per baseline the challenger does not beat on the primary metric."""
    ours = challenger.metrics[primary]
    return tuple(
        f"the {name} baseline scores {primary} {theirs:.4f}, as good as this model's "
        f"{ours:.4f}: a simpler model would serve as well here"
        for name, baseline in baselines.items()
        if not improvement(primary, ours, theirs := baseline.metrics[primary]) > 0
    )


def verdict(decision_reason: str, warnings: tuple[str, ...] | list[str]) -> str:
    """A decision's reason without the warnings at its end."""
    return decision_reason.removesuffix(_warned(warnings))


def with_infra_check(decision: PromotionDecision, passed: bool, detail: str) -> PromotionDecision:
    """The gate's decision once the infra check has run: a model that cannot serve well is not
    promoted, whatever its metrics."""
    checks = (*decision.checks, Check("infra", passed, detail))
    warnings = decision.warnings
    reason = f"{verdict(decision.reason, warnings)}; {detail}" if passed else f"rejected: {detail}"
    return PromotionDecision(passed, reason + _warned(warnings), checks, warnings)


def with_rollout(
    decision: PromotionDecision, rollout: Rollout, has_champion: bool
) -> PromotionDecision:
    """A passing model is tried on live traffic first (shadow or canary) when the card's
    rollout says so; a first model, with nothing to compare with, is promoted."""
    if not decision.promote or rollout.mode == "promote" or not has_champion:
        return decision
    trial = (
        f"shadows @champion on {rollout.shadow_share:.0%} of live requests"
        if rollout.mode == "shadow"
        else f"answers {rollout.canary_share:.0%} of the entities as a canary"
    )
    reason = verdict(decision.reason, decision.warnings).replace("promoted: ", "", 1)
    reason = f"challenger: passed the gate ({reason}); {trial} (card rollout)"
    return replace(decision, reason=reason + _warned(decision.warnings), shadow=True)


def _floors(challenger: Evaluation, gate: PromotionGate) -> list[Check]:
    checks = []
    for metric, floor in gate.floors.items():
        value = challenger.metrics.get(metric, math.nan)
        detail = f"{metric} {value:.4f} {floor.operator} {floor.bound}"
        ok = floor.met_by(value)
        checks.append(
            Check(f"floor.{metric}", ok, detail if ok else f"floor missed: {detail} is false")
        )
    return checks


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


def _warned(warnings: tuple[str, ...] | list[str]) -> str:
    return "".join(WARNING + w for w in warnings)


def _details(checks: list[Check]) -> str:
    slices = [c for c in checks if c.name.startswith("slice.")]
    others = [c.detail for c in checks if not c.name.startswith("slice.")]
    if slices:
        others.append(f"no slice regressed beyond tolerance ({len(slices)} slices checked)")
    return "; ".join(others)
