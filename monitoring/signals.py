"""What the monitoring gate judges and what it says: a window's drift and signals, the verdict.

Plain records shared by the Evidently reports (which measure drift and show the signals), the
gate (which decides from them) and the record (which stores both).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from monitoring.attribution import AttributionShift
    from monitoring.window import Window

Decision = Literal["none", "retrain", "alert"]


@dataclass(frozen=True)
class DriftResult:
    drift_share: float  # share of model inputs that drifted
    drifted_inputs: list[str]
    score_drift: float  # the score's normed Wasserstein distance
    score_drifted: bool
    column_drift: dict[str, float]  # every input's distance


@dataclass(frozen=True)
class Signals:
    """What one window measured, next to the reference it is judged against."""

    rows: int
    labelled: int
    quarantined_fraction: float
    null_fraction: dict[str, float]
    metric: str  # the task's primary metric (`Task.primary`): nce, nrmse
    performance: float | None  # that metric on every labelled row
    reference_performance: float  # and on the reference the model was trained with
    drift_share: float
    drifted_inputs: list[str]
    score_drifted: bool
    column_drift: dict[str, float]  # every input's drift distance, for the record
    score_drift: float
    # How the champion's reasons moved (monitoring/attribution.py): informational, no rule
    # acts on it. None for an empty window.
    attribution_shift: float | None = None
    attribution_moved: list[str] = field(default_factory=list)  # the inputs that moved most

    @classmethod
    def measured(
        cls,
        window: Window,
        metric: str,
        reference: float,
        drift: DriftResult | None,
        attribution: AttributionShift | None = None,
    ) -> Signals:
        """A window's signals, `metric` against its `reference` value; `drift` and
        `attribution` are None when the window was empty (no report ran)."""
        return cls(
            rows=window.rows,
            labelled=window.labelled,
            quarantined_fraction=window.quarantined_fraction,
            null_fraction=window.null_fraction,
            metric=metric,
            performance=(window.performance or {}).get(metric),
            reference_performance=reference,
            drift_share=drift.drift_share if drift else 0.0,
            drifted_inputs=drift.drifted_inputs if drift else [],
            score_drifted=drift.score_drifted if drift else False,
            column_drift=drift.column_drift if drift else {},
            score_drift=drift.score_drift if drift else 0.0,
            attribution_shift=attribution.distance if attribution else None,
            attribution_moved=attribution.moved() if attribution else [],
        )


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    drifted: bool  # this window, for the k-of-n rule of later windows

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
