"""`mlops run`: the closed loop, day by day (the story itself: `entrypoints.lifecycle`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from entrypoints.cli.conventions import ALL_SERVICES, JsonOption, answer, start


def run(
    days: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Days in the story, the first week included (default: 14 simulated, or "
            "every landed day).",
        ),
    ] = None,
    events_per_day: Annotated[
        int | None, typer.Option(min=100, help="Simulated only; default: the simulator's.")
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help="Simulated only: one of the simulator's (`mlops use-cases`)."),
    ] = None,
    drift_day: Annotated[
        int,
        typer.Option(
            min=0,
            help="Simulated only: the day the scenario starts, counted from the first day as 0 "
            "(10: 2026-01-11).",
        ),
    ] = 10,
    incident_day: Annotated[
        int,
        typer.Option(
            min=-1,
            help="Simulated only: the day of a data incident, counted from the first day as 0 "
            "(8: 2026-01-09; -1: none).",
        ),
    ] = 8,
    seed: int = 7,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Delete MLOPS_HOME first (landed days a replay tells stay): replay from scratch.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The main job, the closed loop: bootstrap a champion on the first week, then each day
    send traffic through the real service, ingest the day, monitor, and retrain and promote
    when the gate says so. A simulated story starts on 2026-01-01 and has by default a data
    incident on 2026-01-09 and the simulator's story scenario from 2026-01-11 on; a use case
    without a simulator replays its data files, or the days `mlops land` put in the landing
    zone. Stopped midway (Ctrl-C, SIGTERM, a crash), the next run of the same story continues
    it."""
    progress: list[Any] = []  # how far the story got, once it started: for an interruption

    def work() -> tuple[dict[str, Any], str, int]:
        from entrypoints.lifecycle import (
            Progress,
            check_scenario,
            closing_summary,
            reset_home,
            run_lifecycle,
            story_line,
            story_source,
        )
        from entrypoints.lifecycle_story import LANDING_ZONE, Scenario

        settings, use_case = start(needs=ALL_SERVICES)
        chosen = Scenario(
            days=days,
            events_per_day=events_per_day,
            scenario=scenario,
            drift_day=drift_day,
            incident_day=incident_day if incident_day >= 0 else None,
            seed=seed,
        )
        check_scenario(use_case, chosen)
        if reset:  # a replay of the landing zone keeps what `mlops land` put there
            reset_home(settings, keep_landing=story_source(use_case) == LANDING_ZONE)
            settings, use_case = start()  # the state folders again, and a fresh log file

        def tell(day: Any) -> None:
            if not as_json:
                typer.echo(story_line(day))

        def step(text: str) -> None:
            if not as_json:
                typer.echo(f"{text} ...")

        progress.append(Progress())
        result = run_lifecycle(
            settings, use_case, chosen, on_day=tell, on_progress=step, progress=progress[0]
        )
        logs = sorted(str(p) for p in settings.logs_dir.glob("*.log"))
        return result.to_dict(), closing_summary(settings, result, logs), 0

    def done_so_far() -> str:
        if not progress:  # stopped before the story started: nothing to continue
            return "nothing was told yet; run it again"
        return str(progress[0].rerun_note())

    answer(as_json, work, done_so_far=done_so_far)
