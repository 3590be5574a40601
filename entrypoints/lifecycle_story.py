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
    verdicts and their challengers, from when a promoted challenger served, how it did, and
    what serves at the end."""
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
        if day.decision != "retrain":
            continue
        if not trained.get("version"):
            note = f": {trained['note']}" if trained.get("note") else ""
            sentences.append(f"{label}: retrain ({_kind(day.reason)}), no challenger{note}.")
            continue
        version = str(trained["version"])
        sentence = (
            f"{label}: retrain ({_kind(day.reason)}); challenger v{version} {trained['decision']}"
        )
        if trained["decision"] != "promoted":
            sentences.append(f"{sentence}; v{day.champion_version} kept serving.")
            continue
        served = [d for d in days[i + 1 :] if d.champion_version == version]
        if not served:
            sentences.append(f"{sentence}; the story ended before it served a day.")
            continue
        sentence += f", serving from {day_label(served[0].day, monitored)}"
        before = day.metrics.get(day.metric)
        after = [m for d in served if (m := d.metrics.get(d.metric)) is not None]
        if before is not None and after:
            sentence += (
                f"; {day.metric.upper()} {before:.4f} on {day.day}, {min(after):.4f} to "
                f"{max(after):.4f} on the {len(after)} days v{version} served"
            )
        sentences.append(f"{sentence}.")
    if not any(d.decision == "alert" for d in days):
        sentences.append("No alert.")
    if not any(d.decision == "retrain" for d in days):
        sentences.append(f"No retraining: v{first} served every day.")
    promoted = [
        str(d.retrained["version"])
        for d in days
        if d.retrained and d.retrained.get("decision") == "promoted"
    ]
    champion = (promoted or [first])[-1]
    sentences.append(f"At the end v{champion} is @champion (the first was v{first}).")
    return sentences
