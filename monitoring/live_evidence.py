"""Promotion on live evidence: the `@challenger` against the champion on the same live requests.

    shadow log (the challenger's scores) JOIN prediction log (the champion's answers) ON request
        JOIN labels from the offline store (late: once their batch landed) ON event
    -> the first `min_labelled` labelled requests, in event time
    -> the primary metric of each model on them, and a paired bootstrap interval of the
       challenger's improvement (both models scored on the same resampled requests)

A verdict reached is also an Evidently report, the challenger's answers against the champion's
(`monitoring/reports/<day>/live-evidence/v<challenger>.html`, and in the workspace, where the
dashboard draws both models' metric side by side).

The card's `rollout.live_evidence` says how much evidence: promoted when the improvement's
interval excludes zero, rejected otherwise; `min_labelled` is sized for the card's `margin` (see
`LiveEvidence`), and a rejection warns when its interval was too wide to catch a gain that size
nine times out of ten (a promotion found its evidence). It is judged once, on exactly the first
`min_labelled` labelled requests: judging again as labels arrive until an interval excludes
zero would promote an identical challenger sooner or later. Until then the
verdict is `wait`, with how many labelled requests there are.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops.config.settings import Settings
from mlops.contracts.card import LiveEvidence
from mlops.contracts.metrics import improvement
from mlops.contracts.tasks import Task
from mlops.contracts.usecase import UseCase
from mlops.stores.offline_store import OfflineStore, has_view, quoted
from mlops.stores.prediction_log import log_files, shadow_log_dir
from mlops.stores.reference import LABEL, prediction_columns
from mlops.stores.registry import CHALLENGER, ModelRegistry
from monitoring import evidently_reports as evidently

LiveDecision = Literal["promote", "reject", "wait"]
# Below it, a rejection warns that `min_labelled` is too small for the card's margin.
TARGET_POWER = 0.9


@dataclass(frozen=True)
class Paired:
    """Labelled requests both models scored, oldest event first."""

    labels: np.ndarray
    champion: np.ndarray  # scores: one per request, or a row of class probabilities
    challenger: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def first(self, count: int) -> Paired:
        return Paired(self.labels[:count], self.champion[:count], self.challenger[:count])


@dataclass(frozen=True)
class LiveVerdict:
    decision: LiveDecision
    reason: str
    challenger_version: str
    champion_version: str
    metric: str
    labelled: int  # paired labelled requests available (judged on `min_labelled` of them)
    champion_performance: float | None = None
    challenger_performance: float | None = None
    improvement: float | None = None  # positive: the challenger is better
    interval: tuple[float, float] | None = None
    confidence: float | None = None
    judged: int = 0  # the first labelled requests it was judged on (`min_labelled`)
    reports: tuple[str, ...] = ()  # the Evidently report of a verdict reached

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [
            f"# {self.decision}: @challenger v{self.challenger_version} vs @champion "
            f"v{self.champion_version} on live traffic",
            "",
            self.reason,
            "",
            f"- labelled requests both models scored: {self.labelled}",
        ]
        if self.improvement is not None and self.interval is not None:
            low, high = self.interval
            lines += [
                f"- {self.metric}: champion {self.champion_performance:.4f}, challenger "
                f"{self.challenger_performance:.4f}",
                f"- improvement {self.improvement:+.4f}, {self.confidence:.0%} paired bootstrap "
                f"interval [{low:+.4f}, {high:+.4f}]",
            ]
        return "\n".join(lines) + "\n"


def read_paired(
    settings: Settings,
    use_case: UseCase,
    challenger: str,
    champion: str,
    end: datetime,
) -> Paired:
    """Every labelled request with an event time before `end` that the champion `champion`
    answered and the challenger scored in its shadow, oldest first (a replayed event once)."""
    shadow = [str(p) for p in log_files(shadow_log_dir(settings.predictions_dir))]
    served = [str(p) for p in log_files(settings.predictions_dir)]
    events = use_case.events
    offline = OfflineStore(settings.offline_dir)
    con = offline.connect([events.name])
    try:
        if not shadow or not served or not has_view(con, events.name):
            return _none(use_case.task)
        con.execute("SET TimeZone = 'UTC'")
        event_id, ts = quoted(events.id_column), quoted(events.timestamp_column)
        score = "DOUBLE[]" if use_case.task.classes else "DOUBLE"
        rows = con.execute(
            f"""
            WITH shadow AS (
                SELECT request_id, CAST(score AS {score}) AS challenger
                FROM read_json($shadow, format = 'newline_delimited', union_by_name = true)
                WHERE CAST(model_version AS VARCHAR) = $challenger
            ), served AS (
                SELECT request_id, {event_id} AS event, CAST({ts} AS TIMESTAMPTZ) AS event_at,
                       CAST(score AS {score}) AS champion
                FROM read_json($served, format = 'newline_delimited', union_by_name = true)
                WHERE CAST(model_version AS VARCHAR) = $champion
                  AND CAST({ts} AS TIMESTAMPTZ) < $end
            )
            SELECT CAST(labels.{quoted(use_case.label)} AS DOUBLE) AS label, champion, challenger
            FROM served
            JOIN shadow USING (request_id)
            JOIN {quoted(events.name)} AS labels ON labels.{event_id} = served.event
            WHERE labels.{quoted(use_case.label)} IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY served.event ORDER BY request_id) = 1
            ORDER BY event_at, request_id
            """,
            {
                "shadow": shadow,
                "served": served,
                "challenger": str(challenger),
                "champion": str(champion),
                "end": end,
            },
        ).fetchall()
    finally:
        con.close()
    if not rows:
        return _none(use_case.task)
    labels, champions, challengers = zip(*rows, strict=True)
    return Paired(
        np.asarray(labels, dtype=np.float64),
        np.asarray(champions, dtype=np.float64),
        np.asarray(challengers, dtype=np.float64),
    )


def live_verdict(
    settings: Settings,
    use_case: UseCase,
    registry: ModelRegistry,
    champion: str,
    end: datetime,
    context: dict[str, Any],
    seed: int = 0,
) -> LiveVerdict | None:
    """The verdict on the @challenger against `champion` with the labels in by `end`, and its
    report (in the monitored window's `context`: `monitoring.record.report_context`); None when
    there is no challenger, or the card leaves the decision to a person."""
    rule = use_case.card.rollout.live_evidence
    challenger = registry.alias(CHALLENGER)
    if rule is None or challenger is None or challenger == champion:
        return None
    paired = read_paired(settings, use_case, challenger, champion, end)
    verdict = judge(paired, use_case.task, rule, challenger, champion, seed)
    if verdict.decision == "wait":
        return verdict
    report = record_live_evidence(
        settings, use_case, paired.first(rule.min_labelled), verdict, context
    )
    return replace(verdict, reports=(str(report),))


def record_live_evidence(
    settings: Settings,
    use_case: UseCase,
    judged: Paired,
    verdict: LiveVerdict,
    context: dict[str, Any],
) -> Path:
    """The requests judged, both models' answers side by side: an HTML report, and the same in
    the Evidently workspace (replacing an earlier run's of the same window)."""
    task, metric = use_case.task, verdict.metric
    day = context["metadata"]["day"]
    ours, theirs = verdict.challenger_performance, verdict.champion_performance
    if ours is None or theirs is None:
        raise ValueError(f"a {verdict.decision} verdict without both models' {metric}")

    def answers(scores: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(prediction_columns(task, scores))
        frame[LABEL] = judged.labels
        return frame

    report = evidently.live_evidence_report(
        answers(judged.champion),
        answers(judged.challenger),
        task,
        {f"champion_{metric}": theirs, f"challenger_{metric}": ours},
        **context,
    )
    versions = f"{verdict.challenger_version} vs v{verdict.champion_version}"  # v3 vs v1
    evidently.annotate(
        report,
        name=evidently.report_name("live evidence", day, versions, verdict.decision),
        summary=(
            f"**{verdict.decision}**: {verdict.reason}\n\nThe challenger's answers (current) "
            "against the champion's (reference) to the same labelled live requests."
        ),
        counters={
            "day judged": day,
            "challenger": f"v{verdict.challenger_version}",
            "champion": f"v{verdict.champion_version}",
            f"challenger {metric.upper()}": f"{ours:.4f}",
            f"champion {metric.upper()}": f"{theirs:.4f}",
            "verdict": verdict.decision,
        },
        metadata={"challenger_version": verdict.challenger_version},
        tags=[f"challenger:v{verdict.challenger_version}"],
    )
    end = context["metadata"]["window_end"]
    evidently.add_to_workspace(
        settings.monitoring_dir / "workspace",
        use_case.name,
        f"live-evidence {end}",
        [report],
        task,
        use_case.request_columns,
    )
    folder = settings.monitoring_dir / "reports" / day / "live-evidence"
    return evidently.save_html(report, folder / f"v{verdict.challenger_version}.html")


def judge(
    paired: Paired,
    task: Task,
    rule: LiveEvidence,
    challenger: str,
    champion: str,
    seed: int = 0,
) -> LiveVerdict:
    """The verdict on the first `rule.min_labelled` paired requests (see the module)."""
    metric = task.primary
    found = len(paired)
    if found < rule.min_labelled:
        return LiveVerdict(
            "wait",
            f"wait: {found} of the {rule.min_labelled} labelled requests both models scored "
            "that the card's live evidence asks for",
            challenger,
            champion,
            metric,
            found,
        )
    judged = paired.first(rule.min_labelled)
    theirs = task.score(judged.labels, judged.champion)[metric]
    ours = task.score(judged.labels, judged.challenger)[metric]
    gained = improvement(metric, ours, theirs)
    low, high = paired_interval(judged, task, metric, rule.resamples, rule.confidence, seed)
    measured = (
        f"{metric} {ours:.4f} vs the champion's {theirs:.4f} on the same {rule.min_labelled} "
        f"labelled requests: improvement {gained:+.4f}, {rule.confidence:.0%} paired bootstrap "
        f"interval [{low:+.4f}, {high:+.4f}]"
    )
    decision: LiveDecision = "promote" if low > 0 else "reject"
    verdict = (
        "promoted on live evidence"
        if decision == "promote"
        else "rejected on live evidence (its interval does not exclude zero)"
    )
    # Only a rejection can be for want of evidence: an interval that excluded zero found it.
    power = margin_power(low, high, rule.margin, rule.confidence)
    if decision == "reject" and not power >= TARGET_POWER:
        measured += (
            f"; warning: on this many labelled requests a challenger better by the card's margin "
            f"{rule.margin:g} would be promoted only about {power:.0%} of the time (raise "
            "min_labelled)"
        )
    return LiveVerdict(
        decision,
        f"{verdict}: {measured}",
        challenger,
        champion,
        metric,
        found,
        theirs,
        ours,
        gained,
        (low, high),
        rule.confidence,
        rule.min_labelled,
    )


def margin_power(low: float, high: float, margin: float, confidence: float) -> float:
    """About how often an interval this wide excludes zero for a challenger better by
    `margin`: its standard error read off the interval, the gain taken as normal."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    error = (high - low) / (2 * z)
    if not error > 0:
        return 1.0 if error == 0 else math.nan
    return NormalDist().cdf(margin / error - z)


def paired_interval(
    paired: Paired, task: Task, metric: str, resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """The percentile interval of the challenger's improvement over resamples of the requests,
    both models scored on each same resample (the pairing is what makes it narrow: a request
    hard for one model is hard for the other)."""
    rng = np.random.default_rng(seed)
    rows = len(paired)
    gains = np.empty(resamples)
    for i in range(resamples):
        drawn = rng.integers(rows, size=rows)
        y = paired.labels[drawn]
        ours = task.score(y, paired.challenger[drawn])[metric]
        theirs = task.score(y, paired.champion[drawn])[metric]
        gains[i] = improvement(metric, ours, theirs)
    finite = gains[np.isfinite(gains)]
    if not len(finite):
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return float(low), float(high)


def _none(task: Task) -> Paired:
    shape = (0, len(task.classes)) if task.classes else (0,)
    return Paired(np.empty(0), np.empty(shape), np.empty(shape))
