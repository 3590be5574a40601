"""The data gate: whether a validated batch goes on, from the use case's requirements card."""

from __future__ import annotations

from dataclasses import dataclass

from ingestion.table_validation import ALREADY_INGESTED, TableValidation
from mlops.contracts.usecase import UseCase

BATCH_REJECTED = "batch rejected"


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    row_reason: str = BATCH_REJECTED  # what a refused batch's clean rows are quarantined for


def decide_batch(results: dict[str, TableValidation], use_case: UseCase) -> GateDecision:
    """Pass the batch unless a table is unusable, the batch brings no new event (a re-landed
    copy), or a table fails more rows than the card's `max_failing_fraction` allows."""
    max_failing_fraction = use_case.card.gates.validation.max_failing_fraction
    event_table = use_case.event_table
    for name, result in results.items():
        if result.problems:
            return GateDecision(False, f"{name}: " + " ".join(result.problems))
    events = results.get(event_table)
    if events is not None and events.already_ingested and events.clean.empty:
        others = events.rows - events.already_ingested
        return GateDecision(
            False,
            f"{event_table}: no new row: {events.already_ingested} of {events.rows} rows were "
            f"already ingested by batch(es) {', '.join(events.already_in)}"
            + (f" and the other {others} failed validation" if others else "")
            + ": a re-landed copy. The whole batch is quarantined, nothing is stored.",
            row_reason=ALREADY_INGESTED,
        )
    for name, result in results.items():
        if result.failing_fraction > max_failing_fraction:
            return GateDecision(
                False,
                f"{name}: {result.failing_fraction:.1%} of rows failed validation, above the "
                f"card's max_failing_fraction of {max_failing_fraction:.1%}; "
                "the whole batch is quarantined.",
            )
    worst = max((r.failing_fraction for r in results.values()), default=0.0)
    return GateDecision(
        True, f"at most {worst:.2%} of rows failed per table (limit {max_failing_fraction:.1%})"
    )
