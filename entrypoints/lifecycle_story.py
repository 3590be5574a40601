"""What a lifecycle run tells, as data: the story asked for (`Scenario`), each monitored day
(`Day`) and the whole run (`Lifecycle`). `entrypoints.lifecycle` tells it, and
`entrypoints.lifecycle_page` draws it."""

from __future__ import annotations

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
    metrics: dict[str, float | None]
    drift_share: float | None
    score_drift: float | None
    decision: str  # none | retrain | alert
    reason: str
    served: int = 0
    refused: int = 0
    retrained: dict[str, Any] | None = None
    links: dict[str, Any] = field(default_factory=dict)


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
