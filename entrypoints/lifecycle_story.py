"""What a lifecycle run tells, as data: the story asked for (`Scenario`), each monitored day
(`Day`) and the whole run (`Lifecycle`); and what happened, in words drawn from those records
(`what_happened`). `entrypoints.lifecycle` tells it, and `entrypoints.lifecycle_page` draws it.

Days are named by their date first; where a number helps, it is the day's place among the
monitored days, counted from 1: "2026-01-09 (monitored day 2)". The first monitored day is the
one after the days the first model trains on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# Where the story's days come from (`entrypoints.lifecycle.story_source`).
SIMULATOR, DATA_FILES, LANDING_ZONE = "simulator", "data files", "landing zone"


@dataclass(frozen=True)
class Scenario:
    """The story asked for; `None` is the use case's default (`check_scenario` fills it in):
    the simulator's story and events per day, 14 simulated days or every landed day. Only a
    simulated story has a scenario, events per day, a drift day and an incident day."""

    days: int | None = None
    events_per_day: int | None = None
    scenario: str | None = None
    drift_day: int | None = 10
    incident_day: int | None = 8
    seed: int = 7
    source: str = SIMULATOR  # SIMULATOR | DATA_FILES | LANDING_ZONE


@dataclass
class Day:
    """One monitored day: its traffic, its data, how the champion did, and what was decided."""

    day: str
    rows: int  # events that happened that day
    quarantined: int
    champion_version: str | None  # the version that served the day's traffic
    # The task's primary metric on the day's labelled traffic (`metric`: nce, nrmse), the
    # reference's, the oracle's (a simulator's best): keyed `<metric>`, `reference_<metric>`,
    # `oracle_<metric>`; and `label_rate`, the labels' mean.
    metrics: dict[str, float | None]
    drift_share: float | None
    score_drift: float | None
    decision: str  # none | retrain | alert
    reason: str
    served: int = 0
    refused: int = 0
    retrained: dict[str, Any] | None = None
    # The @challenger that shadowed the day's traffic, judged on live evidence once the day's
    # labels were in: version, decision (promote | reject | wait), reason, both models' metric
    # on the same requests, the interval (`monitoring.live_evidence.LiveVerdict`).
    challenger: dict[str, Any] | None = None
    links: dict[str, Any] = field(default_factory=dict)
    metric: str = "nce"  # a run saved before other task kinds was binary


@dataclass
class Lifecycle:
    """A whole run: the story told, the first model's bootstrap, the monitored days, and the
    page that shows them."""

    scenario: Scenario
    bootstrap: dict[str, Any]
    days: list[Day]
    summary_html: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": asdict(self.scenario),
            "bootstrap": self.bootstrap,
            "days": [asdict(d) for d in self.days],
            "summary_html": self.summary_html,
        }


def day_label(day: str, monitored: Sequence[str]) -> str:
    """`2026-01-09 (monitored day 2)`; a day that was not monitored is its date alone."""
    if day in monitored:
        return f"{day} (monitored day {list(monitored).index(day) + 1})"
    return day


def _kind(reason: str) -> str:
    """What a verdict's reason is about: the gate writes "<kind>: <details>"."""
    return reason.split(":", 1)[0]


def what_happened(result: Lifecycle) -> list[str]:
    """The story's events in sentences, each drawn from the run's records: alerts, retraining
    verdicts and their challengers (a shadowed one's live verdict), from when a promoted
    challenger served, how it did, and what serves at the end."""
    days = result.days
    monitored = [d.day for d in days]
    first = str(result.bootstrap["model_version"])
    sentences = []
    for i, day in enumerate(days):
        label = day_label(day.day, monitored)
        if day.decision == "alert":
            sentences.append(
                f"{label}: alert ({day.reason}); {day.quarantined:,} rows quarantined, "
                f"{day.refused:,} requests refused."
            )
        trained = day.retrained or {}
        if day.decision != "retrain" or live_decision(day) == "promote":
            continue  # a challenger promoted on live evidence stood in for retraining: told above
        if not trained.get("version"):
            note = f": {trained['note']}" if trained.get("note") else ""
            sentences.append(f"{label}: retrain ({_kind(day.reason)}), no challenger{note}.")
            continue
        version, decision = str(trained["version"]), trained["decision"]
        sentence = f"{label}: retrain ({_kind(day.reason)}); challenger v{version}"
        promoted_on: Day | None = day
        if decision == "challenger":
            sentence, promoted_on = _live_trial(sentence, version, day, days[i + 1 :], monitored)
        elif decision != "promoted":
            sentence = f"{sentence} {decision}; v{day.champion_version} kept serving."
            promoted_on = None
        else:
            sentence = f"{sentence} {decision}"
        if promoted_on is None:
            sentences.append(sentence)
            continue
        later = days[days.index(promoted_on) + 1 :]
        sentences.append(_served(sentence, version, promoted_on, later, monitored))
    if not any(d.decision == "alert" for d in days):
        sentences.append("No alert.")
    if not any(d.decision == "retrain" for d in days):
        sentences.append(f"No retraining: v{first} served every day.")
    champion = ([first] + [v for d in days if (v := promoted_version(d))])[-1]
    sentences.append(f"At the end v{champion} is @champion (the first was v{first}).")
    return sentences


def live_decision(day: Day) -> str | None:
    """The live verdict on the challenger that shadowed the day: promote | reject | wait."""
    return (day.challenger or {}).get("decision")


def promoted_version(day: Day) -> str | None:
    """The version that became @champion at the close of `day`: a retrained one the gate
    promoted, or a challenger promoted on live evidence."""
    trained = day.retrained or {}
    if trained.get("decision") == "promoted":
        return str(trained["version"])
    if live_decision(day) == "promote":
        return str((day.challenger or {})["version"])
    return None


def _live_trial(
    sentence: str, version: str, day: Day, later: list[Day], monitored: list[str]
) -> tuple[str, Day | None]:
    """A shadowed challenger's trial, to its live verdict; and the day it was promoted on."""
    sentence += f" passed the gate and went on live trial beside v{day.champion_version}"
    trial = [d for d in later if (d.challenger or {}).get("version") == version]
    verdicts = [d for d in trial if live_decision(d) != "wait"]
    if not verdicts:
        waited = f" for {len(trial)} day{'s' if len(trial) != 1 else ''}" if trial else ""
        return f"{sentence}{waited}; the story ended before live evidence judged it.", None
    judged = verdicts[0]
    live = judged.challenger or {}
    on = day_label(judged.day, monitored)
    metric = live["metric"].upper()
    evidence = (
        f"{metric} {live['challenger_performance']:.4f} vs v{judged.champion_version}'s "
        f"{live['champion_performance']:.4f} on the same {live['judged']:,} labelled requests"
    )
    if live["decision"] != "promote":
        return f"{sentence}; rejected on live evidence on {on} ({evidence}).", None
    return f"{sentence}; promoted on live evidence on {on} ({evidence})", judged


def _served(
    sentence: str, version: str, promoted_on: Day, later: list[Day], monitored: list[str]
) -> str:
    """From when a promoted version served, and how it did against the day it was promoted."""
    served = [d for d in later if d.champion_version == version]
    if not served:
        return f"{sentence}; the story ended before it served a day."
    sentence += f", serving from {day_label(served[0].day, monitored)}"
    before = promoted_on.metrics.get(promoted_on.metric)
    after = [m for d in served if (m := d.metrics.get(d.metric)) is not None]
    if before is not None and after:
        since = (
            f"{after[0]:.4f} on the day v{version} served"
            if len(after) == 1
            else f"{min(after):.4f} to {max(after):.4f} on the {len(after)} days v{version} served"
        )
        sentence += f"; {promoted_on.metric.upper()} {before:.4f} on {promoted_on.day}, {since}"
    return f"{sentence}."
