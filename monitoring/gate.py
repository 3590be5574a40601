"""The monitoring gate: none, retrain or alert, always with the reason.

In this order, first match wins:
1. alert    a data incident: the data path quarantined too many of the window's events, or too
            many requests lacked a value of their own context. Retraining on broken data makes
            the model worse, so a person looks first.
2. none     too few rows to say anything.
3. retrain  labelled performance (the task's primary metric: NCE, NRMSE) is worse than the
            reference's by more than the tolerance.
4. retrain  drift (of the model's inputs or of the score) in k of the last n windows.
5. none     otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlops.contracts.card import MonitoringGate
from monitoring.signals import Decision, Signals, Verdict


def performance_judged(signals: Signals, gate: MonitoringGate) -> float | None:
    """The labelled performance the gate judges: None when too few labels have arrived."""
    if signals.performance is None or signals.labelled < gate.min_labelled_rows:
        return None
    return signals.performance


def window_drifted(signals: Signals, gate: MonitoringGate) -> bool:
    return signals.score_drifted or signals.drift_share >= gate.drift_share


def decide(signals: Signals, earlier_drifted: Sequence[bool], gate: MonitoringGate) -> Verdict:
    """`earlier_drifted`: the drift verdicts of earlier windows of the same champion, oldest
    first."""
    drifted = window_drifted(signals, gate)

    def verdict(decision: Decision, reason: str) -> Verdict:
        return Verdict(decision, reason, drifted)

    nulls = {c: f for c, f in signals.null_fraction.items() if f > gate.max_null_fraction}
    if signals.quarantined_fraction > gate.max_quarantined_fraction or nulls:
        found = []
        if signals.quarantined_fraction > gate.max_quarantined_fraction:
            found.append(
                f"{signals.quarantined_fraction:.1%} of events quarantined "
                f"(> {gate.max_quarantined_fraction:.1%})"
            )
        found += [
            f"{f:.1%} of requests without '{c}' (> {gate.max_null_fraction:.1%})"
            for c, f in nulls.items()
        ]
        return verdict("alert", f"data incident: {'; '.join(found)}; not retraining on it")
    if signals.rows < gate.min_rows:
        return verdict("none", f"{signals.rows} rows, fewer than {gate.min_rows}: no verdict")

    metric, judged = signals.metric.upper(), performance_judged(signals, gate)
    if judged is not None:
        degradation = judged - signals.reference_performance
        if degradation > gate.max_degradation:
            return verdict(
                "retrain",
                f"performance: {metric} {judged:.4f} on {signals.labelled} labelled rows, "
                f"{degradation:+.4f} against the reference's {signals.reference_performance:.4f}"
                f" (tolerance {gate.max_degradation})",
            )
    recent = [*earlier_drifted, drifted][-gate.windows_n :]
    if sum(recent) >= gate.windows_k:
        return verdict(
            "retrain",
            f"drift in {sum(recent)} of the last {len(recent)} windows (k={gate.windows_k}, "
            f"n={gate.windows_n}); now: {_drift_text(signals, gate)}",
        )
    performance = (
        f"{metric} {judged:.4f} vs reference {signals.reference_performance:.4f} (within "
        f"+{gate.max_degradation:g})"
        if judged is not None
        else f"{signals.labelled} labelled rows, fewer than {gate.min_labelled_rows}"
    )
    # A drifted window alone is no retrain signal: say so, or "drifted" reads as a contradiction.
    drift = (
        f"drifted windows: {sum(recent)} of the last {len(recent)}, fewer than the "
        f"{gate.windows_k} that retrain (k={gate.windows_k}, n={gate.windows_n}); now: "
        if any(recent)
        else ""
    )
    return verdict("none", f"healthy: {performance}; {drift}{_drift_text(signals, gate)}")


def _drift_text(signals: Signals, gate: MonitoringGate) -> str:
    """The window's drift beside the limits that make it a drifted window."""
    inputs = ", ".join(signals.drifted_inputs) or "none"
    score = (
        f"score drifted (distance {signals.score_drift:.3f} >= {gate.score_drift_threshold:g})"
        if signals.score_drifted
        else f"score stable (distance {signals.score_drift:.3f} < {gate.score_drift_threshold:g})"
    )
    return (
        f"{signals.drift_share:.0%} of inputs drifted ({inputs}; a drifted window from "
        f"{gate.drift_share:.0%}), {score}"
    )
