"""The closed loop, day by day: what `mlops run` (and `make run`) shows.

    the story's days: generated (seeded), landed from the use case's data files, or replayed
        from the landing zone; the future waits out of the landing zone (see `story_days`)
    bootstrap: land and ingest the first days, train the first champion, start the service
    each later day:
        the day's events are sent to the running service over HTTP    (traffic, prediction log)
        the day's batch lands and is ingested                          (labels arrive, quarantine)
        the monitor flow judges the day against the champion           (none | retrain | alert)
        a retrained model that passed the gates is picked up by the service on its own

Traffic goes before ingestion on purpose: during a day the online store holds what was known
at the previous day's close, exactly what training's point-in-time join gives the same events.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entrypoints.lifecycle_page import write_page
from entrypoints.lifecycle_story import (
    DATA_FILES,
    LANDING_ZONE,
    SIMULATOR,
    Day,
    Lifecycle,
    Scenario,
    what_happened,
)
from mlops.config.errors import UserError
from mlops.config.interrupts import received_signal
from mlops.config.settings import Settings
from mlops.contracts.usecase import Generator, UseCase

if TYPE_CHECKING:
    import pandas as pd

    from flows.monitor import MonitorResult
    from ingestion import IngestResult

SIMULATED_START = date(2026, 1, 1)  # a simulated story's first day
SIMULATED_DAYS = 14  # a simulated story's length unless told otherwise
REPLAY_DIR = "replay"  # MLOPS_HOME/replay/: landed days a replay has not reached yet
# MLOPS_HOME/<this>: what a run that has not finished told so far, for a rerun to continue from.
PROGRESS_FILE = "run-progress.json"
SERVICE_STOP_SECONDS = 3.0  # for `bentoml serve` to stop when the run is interrupted


class LifecycleError(RuntimeError):
    """The run cannot go on (a flow failed where the story needs it to succeed): a platform
    failure, not the user's input."""


@dataclass
class Progress:
    """How far a run got, saved in MLOPS_HOME after the first model and after each day: a run
    stopped midway (Ctrl-C, a crash) is continued by the next `mlops run` of the same story,
    from the day it had not finished (that day is told again: its traffic counts once, its
    batch is ingested once). A finished story leaves none."""

    scenario: dict[str, Any] = field(default_factory=dict)  # the story asked for
    story_days: list[str] = field(default_factory=list)  # its days' batches, in order
    bootstrap_days: int = 0
    bootstrap: dict[str, Any] | None = None  # None until the first model is @champion
    days: list[Day] = field(default_factory=list)  # the monitored days told

    def rerun_note(self) -> str:
        """What was told and what a rerun does: what an interrupted `mlops run` says."""
        rerun = "a rerun (`mlops run` with the same options, without --reset)"
        if self.bootstrap is None:
            return (
                f"the first model is not @champion yet; {rerun} starts the story again "
                "(the days already ingested stay)"
            )
        monitored = self.story_days[self.bootstrap_days :]
        told = (
            f"the first model (v{self.bootstrap['model_version']}) and {len(self.days)} of "
            f"{len(monitored)} monitored days told"
        )
        if len(self.days) >= len(monitored):
            return f"{told}; {rerun} writes the story's page"
        return f"{told}; {rerun} continues from day {monitored[len(self.days)]}"

    def save(self, settings: Settings) -> None:
        path = settings.home / PROGRESS_FILE
        partial = path.with_name(f".{path.name}.partial")
        saved = {**asdict(self), "days": [asdict(d) for d in self.days]}
        partial.write_text(json.dumps(saved, default=str, indent=1), encoding="utf-8")
        os.replace(partial, path)  # whole or not at all: a kill mid-write keeps the last one


def saved_progress(settings: Settings, scenario: Scenario) -> Progress | None:
    """What a run of the same story (`scenario`, as `check_scenario` returns it) that did not
    finish told; None if there is none, or it told another story."""
    try:
        saved = json.loads((settings.home / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if saved.get("scenario") != json.loads(json.dumps(asdict(scenario))):
        return None
    return Progress(**{**saved, "days": [Day(**d) for d in saved["days"]]})


def run_lifecycle(
    settings: Settings,
    use_case: UseCase,
    scenario: Scenario,
    on_day: Callable[[Day], None] = lambda day: None,
    on_progress: Callable[[str], None] = lambda step: None,
    progress: Progress | None = None,
) -> Lifecycle:
    """Tell the story (module docstring); `on_day` gets each monitored day as it ends, and
    `progress` (filled in as the story goes) says how far it got. A run of the same story that
    did not finish is continued (`Progress`)."""
    scenario = check_scenario(use_case, scenario)
    progress = progress or Progress()
    saved = saved_progress(settings, scenario)
    batches = story_days(settings, use_case, scenario, on_progress, continuing=saved is not None)
    progress.scenario = asdict(scenario)
    progress.story_days = [b.name for b in batches]
    progress.bootstrap_days = use_case.card.training.span_days
    if saved is not None and saved.story_days == progress.story_days:
        progress.bootstrap, progress.days = saved.bootstrap, saved.days
    scenario = replace(scenario, days=len(batches))
    moved = scenario.source == LANDING_ZONE
    try:
        return _tell_story(settings, use_case, scenario, batches, on_day, on_progress, progress)
    finally:
        if moved:  # the days the story did not reach go back where `mlops land` put them
            return_set_aside_days(settings)


def _tell_story(
    settings: Settings,
    use_case: UseCase,
    scenario: Scenario,
    batches: list[Path],
    on_day: Callable[[Day], None],
    on_progress: Callable[[str], None],
    progress: Progress,
) -> Lifecycle:
    from serving import free_port, start_service

    bootstrap_days = use_case.card.training.span_days
    moved = scenario.source == LANDING_ZONE
    if progress.bootstrap is None:
        bootstrap = _bootstrap(settings, scenario, batches[:bootstrap_days], on_progress)
        progress.bootstrap = bootstrap
        progress.save(settings)
        on_progress(f"v{bootstrap['model_version']} is @champion; starting the prediction service")
    else:
        bootstrap = progress.bootstrap
        on_progress(
            f"continuing the run that stopped: the first model (v{bootstrap['model_version']}) "
            f"and {len(progress.days)} monitored days were told; starting the prediction service"
        )
        for day in progress.days:
            on_day(day)
    # The service polls for a new champion every second: the next day is served by it. The
    # replay sends one batch at a time: one worker serves it, and swaps models for all of it.
    service = start_service(
        settings,
        port=free_port(),
        overrides={"MLOPS_SERVING__POLL_SECONDS": "1", "MLOPS_SERVING__WORKERS": "1"},
    )
    days = progress.days
    try:
        for batch in batches[bootstrap_days + len(days) :]:
            on_progress(f"{batch.name}: serving its traffic, ingesting its batch, monitoring")
            day = _tell_day(settings, use_case, service, batch, scenario.seed, moved)
            days.append(day)
            progress.save(settings)
            on_day(day)
    finally:
        # Interrupted, the service has seconds to stop (the rest of the way out needs some).
        service.stop(timeout=SERVICE_STOP_SECONDS if received_signal() else 30)
    result = Lifecycle(scenario, bootstrap, days, "")
    first_day = _closed_at(settings.landing_dir / batches[0].name).date() - timedelta(days=1)
    result.summary_html = str(write_page(settings, use_case, result, first_day))
    (settings.home / PROGRESS_FILE).unlink(missing_ok=True)  # told: nothing to continue
    return result


def _bootstrap(
    settings: Settings,
    scenario: Scenario,
    first_days: list[Path],
    on_progress: Callable[[str], None],
) -> dict[str, Any]:
    """Ingest the first days and train the first champion on them."""
    from flows.dispatch import run_flow
    from flows.train import train

    where = (
        "on the worker, through the deployments"
        if settings.profile == "server"
        else "starts a local Prefect server"
    )
    on_progress(f"ingesting the first {len(first_days)} days ({where})")
    moved = scenario.source == LANDING_ZONE
    landed = [deliver_to_landing_zone(b, settings.landing_dir, move=moved) for b in first_days]
    ingested = _ingest_days(settings, landed)
    on_progress("training the first model, then its infra check in a real service")
    trained = run_flow(settings, train, seed=scenario.seed)
    if trained.decision != "promoted":
        raise LifecycleError(f"the first model was not promoted: {trained.reason}")
    return {
        "days": [r.batch_id for r in ingested.batches],
        "quarantined": sum(r.quarantined for r in ingested.batches),
        "model_version": trained.version,
        "metrics": trained.metrics,
        "run_url": trained.run_url,
    }


def _ingest_days(settings: Settings, batch_dirs: list[Path]) -> IngestResult:
    """Every batch's report, whether or not a batch was rejected."""
    from flows.dispatch import run_flow
    from flows.ingest import ingest
    from ingestion import BatchesRejected

    try:
        return run_flow(settings, ingest, batch_dirs=batch_dirs)
    except BatchesRejected as rejected:
        return rejected.result


def story_source(use_case: UseCase) -> str:
    """Where the story's days come from: the use case's simulator, else its data files, else
    the batches `mlops land` put in the landing zone."""
    if use_case.generator is not None:
        return SIMULATOR
    return DATA_FILES if use_case.data_files else LANDING_ZONE


def require_simulator(use_case: UseCase) -> Generator:
    """The use case's simulator; a use case without one is a `UserError` saying what to do."""
    if use_case.generator is None:
        raise UserError(
            f"use case '{use_case.name}' has no simulator (no generator): land its data "
            "with `mlops land FILE...` instead"
        )
    return use_case.generator


def scenario_name(generator: Generator, name: str | None, default: str) -> str:
    """The scenario asked for (`default` when none); one the simulator lacks is a `UserError`
    listing those it has."""
    chosen = default if name is None else name
    if chosen not in generator.scenarios:
        raise UserError(
            f"unknown scenario '{chosen}' (--scenario): this use case's simulator has "
            f"{', '.join(generator.scenarios)}"
        )
    return chosen


def check_scenario(use_case: UseCase, scenario: Scenario) -> Scenario:
    """Refuse, before anything runs, a scenario the story cannot tell; return it with the use
    case's defaults filled in (the number of landed days stays open until they are counted)."""
    bootstrap_days = use_case.card.training.span_days
    source = story_source(use_case)
    if use_case.generator is None:
        asked = [
            flag
            for flag, value in (
                ("--scenario", scenario.scenario),
                ("--events-per-day", scenario.events_per_day),
            )
            if value is not None
        ]
        if asked:
            replays = "its data files" if source == DATA_FILES else "the landing zone's days"
            raise UserError(
                f"{' and '.join(asked)}: use case '{use_case.name}' has no simulator; "
                f"`mlops run` replays {replays} as they are"
            )
        # Real data: no drift to start nor incident to inject.
        resolved = replace(scenario, drift_day=None, incident_day=None, source=source)
    else:
        generator = use_case.generator
        resolved = replace(
            scenario,
            days=scenario.days or SIMULATED_DAYS,
            events_per_day=scenario.events_per_day or generator.events_per_day,
            scenario=scenario_name(generator, scenario.scenario, generator.story),
            source=source,
        )
    if resolved.days is not None and resolved.days <= bootstrap_days:
        raise UserError(f"--days must exceed the {bootstrap_days} days the first model trains on")
    return resolved


def story_days(
    settings: Settings,
    use_case: UseCase,
    scenario: Scenario,
    on_progress: Callable[[str], None] = lambda step: None,
    continuing: bool = False,
) -> list[Path]:
    """The story's day batches, in order, waiting out of the landing zone for their turn (a
    scheduled ingest never takes a day the story has not reached).

    - simulator: generated into MLOPS_HOME/simulation/;
    - data files: landed (`mlops land`'s way) into MLOPS_HOME/simulation/;
    - neither: the landing zone's batches (`mlops land`), moved into MLOPS_HOME/replay/; each
      moves back when the story reaches it, and `return_set_aside_days` returns the rest when
      the run ends.

    The story starts from a platform that knows none of its future: an offline store holding
    data past the first model's days is a `UserError` (the first model would be trained, and
    requests served, with days the story has not reached); days it already holds up to there
    are ingested again, which replaces them; `continuing` a run of the same story that stopped
    midway, the days it told are known and welcome. `scenario.days` of None is every day
    there is."""
    bootstrap_days = use_case.card.training.span_days
    future, replay = settings.home / "simulation", settings.home / REPLAY_DIR
    if scenario.source == SIMULATOR:
        generator = require_simulator(use_case)
        days = scenario.days or SIMULATED_DAYS
        events_per_day = scenario.events_per_day or generator.events_per_day
        on_progress(f"generating {days} days of {events_per_day:,} events")
        batches = generator.generate(
            future,
            start=SIMULATED_START,
            days=days,
            events_per_day=events_per_day,
            seed=scenario.seed,
            scenario=scenario.scenario,
            drift_day=scenario.drift_day,
            incident_day=scenario.incident_day,
        )
    elif scenario.source == DATA_FILES:
        from ingestion import land_files

        on_progress(f"landing {', '.join(p.name for p in use_case.data_files)}")
        shutil.rmtree(future, ignore_errors=True)  # derived from the files: never stale
        landed = land_files(use_case, use_case.data_files, future)
        batches = _days_to_tell(landed, scenario, bootstrap_days, "the use case's data files hold")
    else:
        # A run that stopped midway left its future aside.
        if left := return_set_aside_days(settings):
            raise UserError(
                f"{replay} holds days a run set aside that the landing zone now holds with "
                f"other content ({', '.join(p.name for p in left)}): keep the version you want "
                "in the landing zone, delete the other, and run again"
            )
        where = f"the landing zone ({settings.landing_dir}) holds"
        landed = _landed_batches(settings.landing_dir)
        batches = _days_to_tell(landed, scenario, bootstrap_days, where)
    if not continuing:
        _refuse_a_known_future(settings, batches[bootstrap_days - 1], scenario.source)
    if scenario.source == LANDING_ZONE:
        on_progress(f"replaying {len(batches)} days landed in {settings.landing_dir}")
        replay.mkdir(parents=True, exist_ok=True)
        # All of them, not only the story's: none may be ingested early.
        for batch in _landed_batches(settings.landing_dir):
            os.replace(batch, replay / batch.name)
        batches = [replay / b.name for b in batches]
    return batches


def return_set_aside_days(settings: Settings) -> list[Path]:
    """Return the landed days a replay set aside to the landing zone; return those it cannot
    (the landing zone holds the day again, with other content: someone landed it meanwhile)."""
    from mlops.contracts.batches import same_batch

    replay = settings.home / REPLAY_DIR
    if not replay.exists():
        return []
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    left = []
    for batch in sorted(p for p in replay.iterdir() if p.is_dir()):
        target = settings.landing_dir / batch.name
        if not target.exists():
            os.replace(batch, target)
        elif same_batch(batch, target):
            shutil.rmtree(batch)
        else:
            left.append(batch)
    if not left:
        shutil.rmtree(replay, ignore_errors=True)
    return left


def _landed_batches(landing_dir: Path) -> list[Path]:
    from mlops.contracts.batches import BatchUnreadable, expand_batch_paths

    try:
        return expand_batch_paths([landing_dir])
    except BatchUnreadable:
        return []


def _days_to_tell(
    batches: list[Path], scenario: Scenario, bootstrap_days: int, where: str
) -> list[Path]:
    """The story's first `scenario.days` batches (all of them by default)."""
    if not batches:
        raise UserError(f"{where} no batch: land the use case's data with `mlops land FILE...`")
    if scenario.days is not None and scenario.days > len(batches):
        raise UserError(f"--days {scenario.days}: {where} only {len(batches)} days")
    if len(batches) <= bootstrap_days:
        raise UserError(
            f"{where} {len(batches)} days: the story needs more than the {bootstrap_days} the "
            "first model trains on"
        )
    return batches[: scenario.days or len(batches)]


def _refuse_a_known_future(settings: Settings, last_bootstrap: Path, source: str) -> None:
    from mlops.stores.offline_store import OfflineStore

    known = OfflineStore(settings.offline_dir).watermark()
    bootstrap_end = _closed_at(last_bootstrap)
    if known is not None and known > bootstrap_end:
        keeps = " (it keeps the landed batches)" if source == LANDING_ZONE else ""
        raise UserError(
            f"the platform already holds data up to {known.isoformat()}, past the first "
            f"model's days (to {bootstrap_end.isoformat()}): the story would train and serve "
            "with days it has not reached. Replay on a fresh platform: `mlops run --reset`"
            f"{keeps}, or another MLOPS_HOME"
        )


def deliver_to_landing_zone(batch: Path, landing_dir: Path, move: bool = False) -> Path:
    """A day's batch arrives in the landing zone whole (copied aside, then renamed; or, with
    `move`, renamed: a replayed day goes back where it came from)."""
    target = landing_dir / batch.name
    if not target.exists():
        if move:
            os.replace(batch, target)
            return target
        partial = landing_dir / f".{batch.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(batch, partial)
        os.replace(partial, target)
    return target


def _tell_day(
    settings: Settings, use_case: UseCase, service: Any, batch: Path, seed: int, move: bool
) -> Day:
    from flows.dispatch import run_flow
    from flows.monitor import monitor
    from mlops.contracts.batches import read_batch
    from serving import replay, requests_for

    events = read_batch(batch, use_case.tables).tables[use_case.event_table]
    traffic = replay(service, requests_for(events, use_case))
    landed = deliver_to_landing_zone(batch, settings.landing_dir, move=move)
    (report,) = _ingest_days(settings, [landed]).batches
    monitored = run_flow(settings, monitor, as_of=_closed_at(landed), seed=seed)
    judged, retrained, trial = monitored.judged, monitored.retraining, monitored.challenger
    # The service follows the registry by itself; the story waits for it, so the next day is
    # served (or shadowed) by what the registry says.
    if trial is not None and trial.decision == "promote":
        _wait_for(service.model_version, trial.challenger_version, "serve")
    if retrained and retrained.decision == "promoted":
        _wait_for(service.model_version, retrained.version, "serve")
    elif retrained and retrained.decision == "challenger":
        _wait_for(service.challenger_version, retrained.version, "shadow")
    performance = judged.window["performance"] or {}
    metric = use_case.task.primary
    return Day(
        day=batch.name,
        rows=len(events),
        quarantined=report.quarantined,
        champion_version=traffic.model_versions.most_common(1)[0][0]
        if traffic.model_versions
        else None,
        metric=metric,
        metrics={
            metric: performance.get(metric),
            f"reference_{metric}": judged.signals["reference_performance"],
            f"ceiling_{metric}": _simulated_performance(events, use_case, use_case.ceiling_column),
            f"oracle_{metric}": _simulated_performance(events, use_case, use_case.oracle_column),
            "label_rate": _label_mean(events, use_case),
            "label_coverage": judged.window["label_coverage"],
        },
        drift_share=judged.signals["drift_share"],
        score_drift=judged.signals["score_drift"],
        decision=judged.decision,
        reason=judged.reason,
        served=traffic.served,
        refused=traffic.refused,
        retrained=_retrain_summary(monitored),
        challenger=_trial_summary(monitored),
        links={
            "monitoring_run": judged.run_url,
            "prefect_flow_run": monitored.flow_run_id,
            "evidently_reports": judged.reports,
            "data_docs": report.data_docs,
        },
    )


def _closed_at(batch: Path) -> datetime:
    from mlops.contracts.batches import read_manifest

    return datetime.fromisoformat(read_manifest(batch)["closed_at"])


def _simulated_performance(
    events: pd.DataFrame, use_case: UseCase, column: str | None
) -> float | None:
    """The day's primary metric of a simulation's own prediction in `column`: the oracle's
    (the truth: the best any model could reach) or the ceiling's (the best from what was
    knowable)."""
    if column is None:
        return None
    known = events.dropna(subset=[use_case.label, column])
    if known.empty:
        return None
    task = use_case.task
    return task.score(known[use_case.label].to_numpy(float), known[column].to_numpy(float))[
        task.primary
    ]


def _label_mean(events: pd.DataFrame, use_case: UseCase) -> float | None:
    """The mean of the day's known labels (the day's `label_rate`: a binary label's positive
    share)."""
    labels = events[use_case.label].dropna()
    return float(labels.mean()) if len(labels) else None


def _retrain_summary(monitored: MonitorResult) -> dict[str, Any] | None:
    trained = monitored.retraining
    if trained is None:
        return {"note": monitored.retraining_note} if monitored.retraining_note else None
    return {
        "version": trained.version,
        "decision": trained.decision,
        "reason": trained.reason,
        "run_url": trained.run_url,
        "champion_version": trained.champion_version,
    }


def _trial_summary(monitored: MonitorResult) -> dict[str, Any] | None:
    """The @challenger's day on trial: what live evidence said (`wait` until enough labels)."""
    if monitored.challenger is None:
        return None
    summary = monitored.challenger.to_dict()
    return {
        "version": summary.pop("challenger_version"),
        **{k: v for k, v in summary.items() if k != "champion_version"},
    }


def _wait_for(ask: Callable[[], str | None], version: str, role: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ask() == version:
            return
        time.sleep(0.25)
    raise LifecycleError(f"the service did not {role} v{version} within 60 s")


def reset_home(settings: Settings, keep_landing: bool = False) -> None:
    """Forget every state a run leaves (the whole MLOPS_HOME), so the story replays as told;
    with `keep_landing` (a story replaying the landing zone) all but the landed batches."""
    if settings.profile == "server":
        # The state also lives in PostgreSQL and Redis, and the running services use the home.
        raise UserError(
            "--reset replays from an empty local home; the server profile keeps its state in "
            "PostgreSQL and Redis too: for a fresh replay, `mlops down`, then use a new "
            "MLOPS_HOME and MLOPS_DATABASE_PREFIX (and an empty Redis database) and `mlops up`"
        )
    if not settings.home.exists():
        return
    if not keep_landing:
        shutil.rmtree(settings.home)
        return
    return_set_aside_days(settings)
    for path in settings.home.iterdir():
        if path == settings.landing_dir:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def closing_summary(settings: Settings, result: Lifecycle, log_files: list[str]) -> str:
    """What happened (the page's sentences, from the run's records), and where to look next."""
    lines = ["", f"what happened over {len(result.days)} monitored days:"]
    lines += [f"  {sentence}" for sentence in what_happened(result)]
    lines += [
        "",
        f"the story, day by day: {result.summary_html}",
        "the UIs: make mlflow-ui, make prefect-ui, make evidently-ui (README, 'Opening the UIs')",
        f"state under {settings.home}; logs: {', '.join(log_files)}",
    ]
    return "\n".join(lines)


def story_line(day: Day) -> str:
    """One readable line for a day; one more for a challenger judged on live evidence, and
    for a model retrained."""
    value, reference = day.metrics[day.metric], day.metrics[f"reference_{day.metric}"]
    performance = f"{day.metric.upper()} {value:.4f}" if value is not None else "no labels yet"
    line = (
        f"{day.day}  served {day.served} by v{day.champion_version}, refused {day.refused}, "
        f"quarantined {day.quarantined}; {performance} (ref {reference:.4f}), "
        f"drift {day.drift_share or 0:.0%} -> {day.decision.upper()}: {day.reason}"
    )
    if day.challenger:
        line += f"\n            challenger v{day.challenger['version']}: {day.challenger['reason']}"
    if day.retrained and day.retrained.get("version"):
        line += (
            f"\n            retrained v{day.retrained['version']}: "
            f"{day.retrained['decision']} ({day.retrained['reason']})"
        )
    elif day.retrained:
        line += f"\n            retraining: {day.retrained.get('note')}"
    return line
