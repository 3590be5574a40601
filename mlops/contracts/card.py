"""The requirements card: steps 1-2 of ML system design, and every gate threshold.

The card is a reviewed YAML file that belongs to the use case. Gates read their thresholds from
here, never from code, so changing a threshold is a reviewed change to one file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from mlops.contracts.metrics import LOWER_IS_BETTER, Metric
from mlops.contracts.tasks import REGRESSION_OBJECTIVES, Task, TaskKind, task_for


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Strict):
    """The kind of prediction (`mlops.contracts.tasks`): `binary` unless the card says."""

    kind: TaskKind = "binary"
    classes: list[str] | None = Field(
        default=None, description="multiclass: the label's values; a class's code is its place."
    )
    objective: str | None = Field(
        default=None, description=f"regression: one of {', '.join(REGRESSION_OBJECTIVES)}."
    )

    @model_validator(mode="after")
    def _fits_the_kind(self) -> TaskSpec:
        if self.kind == "multiclass":
            classes = self.classes or []
            if len(classes) < 3 or len(set(classes)) != len(classes):
                raise ValueError(
                    "a multiclass task lists its classes, three or more distinct values (two "
                    f"are a binary task), e.g. classes: [a, b, c]; got {self.classes}"
                )
        elif self.classes is not None:
            raise ValueError(f"`classes` belongs to a multiclass task, not a {self.kind} one")
        if self.objective is not None and (
            self.kind != "regression" or self.objective not in REGRESSION_OBJECTIVES
        ):
            raise ValueError(
                f"`objective` is a regression task's, one of {list(REGRESSION_OBJECTIVES)}; "
                f"got {self.objective!r} for a {self.kind} task"
            )
        return self

    def task(self) -> Task:
        return task_for(self.kind, self.classes or (), self.objective)


class LabelSpec(_Strict):
    column: str
    definition: str
    arrives_within_hours: float = Field(gt=0)


class OfflineMetrics(_Strict):
    primary: Metric
    secondary: list[str]


class OnlineMetric(_Strict):
    name: str
    definition: str


class ServingSLO(_Strict):
    p99_latency_ms: float = Field(gt=0)
    throughput_rps: float = Field(gt=0)


class ValidationGate(_Strict):
    max_failing_fraction: float = Field(ge=0, le=1, description="Above it, reject the batch.")
    max_event_age_days: float = Field(
        default=30,
        gt=0,
        description="An event row older than this before its batch's close is quarantined.",
    )


class Floor(_Strict):
    """A bound a promoted model's metric meets on the test window: at least `min`, or at most
    `max`."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Floor:
        if (self.min is None) == (self.max is None):
            raise ValueError(
                "a floor has exactly one of `min` (the metric must be at least it) or `max` "
                "(at most it), e.g. {max: 0.98}"
            )
        return self

    @property
    def bound(self) -> float:
        if self.max is not None:
            return self.max
        assert self.min is not None  # the validator saw to it
        return self.min

    @property
    def operator(self) -> str:
        return "<=" if self.max is not None else ">="

    def met_by(self, value: float) -> bool:
        """Whether `value` meets the floor; NaN (a metric undefined on the window) never does."""
        return bool(value <= self.bound if self.max is not None else value >= self.bound)


class PromotionGate(_Strict):
    min_improvement: float = Field(
        ge=0, description="Challenger must beat champion on the primary metric by this."
    )
    floors: dict[Metric, Floor] = Field(description="Bounds every promoted model meets.")
    slice_tolerance: float = Field(ge=0, description="Largest allowed regression on any slice.")
    min_slice_rows: int = Field(ge=1)
    # A floor inside its metric's bootstrap interval on the test window is noise, not a bar.
    bootstrap_resamples: int = Field(default=200, ge=10, description="Resamples of the test rows.")
    bootstrap_confidence: float = Field(default=0.90, gt=0, lt=1)


class Windows(_Strict):
    """Consecutive time windows ending at the newest data: train, validation, test."""

    train_days: float = Field(gt=0)
    validation_days: float = Field(gt=0)
    test_days: float = Field(gt=0)

    @property
    def span_days(self) -> int:
        """Whole days of data the three windows need."""
        return math.ceil(self.train_days + self.validation_days + self.test_days)


class TrainingBudget(Windows):
    time_budget_seconds: float = Field(
        gt=0, description="A guard: spent before the search's last trial, training stops."
    )
    search_trials: int = Field(
        ge=1, description="Hyperparameter sets tried, every one; the first the defaults."
    )
    early_stopping_rounds: int = Field(ge=1)
    baseline_max_rows: int = Field(ge=1000, description="Rows the logistic baseline fits on.")
    first_trial: dict[str, float] = Field(
        default_factory=dict,
        description="XGBoost parameters of the search's first trial, over the platform's "
        "defaults (models/training.py: DEFAULT_PARAMS): what this use case's model needs.",
    )


class MonitoringGate(_Strict):
    window_hours: float = Field(gt=0, description="Traffic each monitoring run looks at.")
    reference_rows: int = Field(ge=100, description="Sample of the test window kept at training.")
    sample_rows: int = Field(ge=1000, description="Rows Evidently compares, at most.")
    min_rows: int = Field(ge=1)
    min_labelled_rows: int = Field(ge=1)
    max_degradation: float = Field(
        ge=0,
        # Its name before other task kinds than binary: a card written then still reads.
        validation_alias=AliasChoices("max_degradation", "max_nce_degradation"),
        description="The task's primary metric (NCE, NRMSE) on labelled rows over the "
        "reference's: retrain.",
    )
    score_drift_threshold: float = Field(gt=0, description="Distance at which the score drifts.")
    column_drift_threshold: float = Field(gt=0, description="Distance at which an input drifts.")
    drift_share: float = Field(gt=0, le=1, description="Share of drifted inputs that counts.")
    windows_k: int = Field(ge=1)
    windows_n: int = Field(ge=1)
    max_quarantined_fraction: float = Field(ge=0, le=1, description="Above it: incident, alert.")
    max_null_fraction: float = Field(ge=0, le=1, description="Above it: incident, alert.")
    retrain_windows: Windows

    @model_validator(mode="after")
    def _k_of_n(self) -> MonitoringGate:
        if self.windows_k > self.windows_n:
            raise ValueError("windows_k cannot exceed windows_n")
        return self


class LiveEvidence(_Strict):
    """How much live evidence promotes a @challenger (monitoring/live_evidence.py): on the
    first `min_labelled` labelled requests both models scored, the paired bootstrap interval of
    its improvement on the primary metric must exclude zero; otherwise it is rejected. Judged
    once, so looking again cannot wear the interval down. `margin` is the improvement the card
    means to catch: `min_labelled` is sized so that a challenger better by it is promoted in
    nine runs out of ten (benchmarks/live_evidence.py measures it), and a verdict whose interval
    is too wide for that says so."""

    min_labelled: int = Field(ge=100, description="Labelled requests judged, both models'.")
    margin: float = Field(gt=0, description="On the primary metric, in its better direction.")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Of the two-sided interval.")
    resamples: int = Field(default=200, ge=50)


class CanaryGuardrails(_Strict):
    """What hands a canary's traffic back to the champion (serving/canary.py): judged on each
    window of `window_requests` requests the challenger answered, against what the champion
    answered in the same window."""

    window_requests: int = Field(default=200, ge=10, description="Challenger answers judged.")
    max_error_rate: float = Field(
        default=0.02, ge=0, le=1, description="Share of the challenger's calls that failed."
    )
    max_latency_ratio: float = Field(
        default=3.0,
        gt=1,
        description="The challenger's median scoring time per request, to the champion's.",
    )
    max_score_shift: float = Field(
        default=1.0,
        gt=0,
        description="Difference of the two models' mean scores, in the champion's score "
        "spreads (standard deviations).",
    )


class Rollout(_Strict):
    """What a model that passed the gate does next (design step 6, serving). `promote`: it
    becomes @champion. `shadow`: it becomes @challenger, and the service scores it on
    `shadow_share` of live requests beside the champion, off the response path; both go to the
    prediction log. `canary`: it becomes @challenger too, and answers the requests of
    `canary_share` of the entities (the first entity key's: one user always meets the same
    model), shadowing the rest; `guardrails` hand its traffic back to the champion. With
    `live_evidence`, monitoring then promotes or rejects it once enough labels arrived; without,
    a person does (`mlops promote`). A first model, with no champion to shadow, is promoted
    either way."""

    mode: Literal["promote", "shadow", "canary"] = "promote"
    shadow_share: float = Field(
        default=1.0, gt=0, le=1, description="Share of live requests the challenger scores."
    )
    canary_share: float = Field(
        default=0.1, gt=0, lt=1, description="Share of entities whose requests it answers."
    )
    guardrails: CanaryGuardrails = CanaryGuardrails()
    live_evidence: LiveEvidence | None = None


class Gates(_Strict):
    validation: ValidationGate
    promotion: PromotionGate
    monitoring: MonitoringGate


class RequirementsCard(_Strict):
    use_case: str
    business_objective: str
    ml_task: str
    task: TaskSpec = TaskSpec()
    label: LabelSpec
    offline_metrics: OfflineMetrics
    online_metric: OnlineMetric
    serving_slo: ServingSLO
    training: TrainingBudget
    gates: Gates
    rollout: Rollout = Rollout()

    @model_validator(mode="after")
    def _metrics_are_the_tasks(self) -> RequirementsCard:
        task = self.task.task()
        named = {self.offline_metrics.primary, *self.gates.promotion.floors}
        if unknown := sorted(named - set(task.metrics)):
            raise ValueError(
                f"a {task.kind} task is scored by {', '.join(task.metrics)}; the card names "
                f"{', '.join(unknown)} (offline_metrics.primary, gates.promotion.floors)"
            )
        return self

    @model_validator(mode="after")
    def _primary_has_a_floor(self) -> RequirementsCard:
        primary = self.offline_metrics.primary
        if primary not in self.gates.promotion.floors:
            raise ValueError(
                f"floors follow the card's primary metric: offline_metrics.primary is {primary}, "
                f"so gates.promotion.floors needs a floor for {primary}, e.g. "
                f"{primary}: {{{'max' if primary in LOWER_IS_BETTER else 'min'}: ...}}"
            )
        return self

    @classmethod
    def load(cls, path: Path) -> RequirementsCard:
        return cls.model_validate(yaml.safe_load(path.read_text()))
