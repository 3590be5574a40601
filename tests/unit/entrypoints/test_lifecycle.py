"""The lifecycle run's own checks, before it touches anything."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from entrypoints.lifecycle import (
    Progress,
    check_scenario,
    deliver_to_landing_zone,
    require_simulator,
    reset_home,
    return_set_aside_days,
    run_lifecycle,
    saved_progress,
    story_days,
)
from entrypoints.lifecycle_story import Day, Scenario
from mlops.config.errors import UserError
from mlops.config.settings import Settings
from mlops.contracts.batches import read_batch, write_batch
from mlops.contracts.usecase import UseCase, load_use_case
from tests.support.session import PINNED_USE_CASE

USE_CASE = load_use_case(PINNED_USE_CASE)


def test_a_run_shorter_than_the_bootstrap_is_refused(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(UserError, match="must exceed the 7 days"):
        run_lifecycle(settings, USE_CASE, Scenario(days=5))
    assert not settings.home.exists()  # refused before any state was written


def test_a_batch_lands_whole_and_only_once(tmp_path) -> None:
    batch = tmp_path / "future" / "2026-01-08"
    batch.mkdir(parents=True)
    (batch / "impressions.parquet").write_bytes(b"x")
    landing = tmp_path / "landing"
    landing.mkdir()
    landed = deliver_to_landing_zone(batch, landing)
    assert landed == landing / "2026-01-08" and (landed / "impressions.parquet").exists()
    (landed / "impressions.parquet").write_bytes(b"already ingested")
    assert deliver_to_landing_zone(batch, landing) == landed
    assert (landed / "impressions.parquet").read_bytes() == b"already ingested"
    assert [p.name for p in landing.iterdir()] == ["2026-01-08"]  # no partial copy left


# Where the story's days come from, checked without running a flow.


def _without_simulator(**changes) -> UseCase:
    return replace(USE_CASE, generator=None, **changes)


def _land_days(landing: Path, days: int, first: date = date(2026, 1, 1)) -> list[Path]:
    frame = pd.DataFrame({"x": [1]})
    batches = []
    for i in range(days):
        day = first + timedelta(days=i)
        closed = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        tables = {t.name: frame for t in USE_CASE.tables}
        batches.append(write_batch(landing / day.isoformat(), tables, closed_at=closed))
    return batches


def test_the_simulator_fills_in_what_was_not_asked() -> None:
    generator = USE_CASE.generator
    told = check_scenario(USE_CASE, Scenario())
    assert (told.scenario, told.events_per_day, told.days, told.source) == (
        generator.story,
        generator.events_per_day,
        14,
        "simulator",
    )
    with pytest.raises(UserError, match=", ".join(generator.scenarios)):
        check_scenario(USE_CASE, Scenario(scenario="heatwave"))


def test_a_use_case_without_simulator_refuses_what_only_a_simulation_has() -> None:
    use_case = _without_simulator()
    told = check_scenario(use_case, Scenario())
    assert told.source == "landing zone" and told.days is None
    assert told.drift_day is None and told.incident_day is None  # real data: nothing injected
    refused = f"--scenario and --events-per-day: use case '{PINNED_USE_CASE}' has"
    with pytest.raises(UserError, match=refused):
        check_scenario(use_case, Scenario(scenario="concept-drift", events_per_day=100))
    assert check_scenario(_without_simulator(data_files=(Path("x.csv"),)), Scenario()).source == (
        "data files"
    )


def test_a_replay_takes_the_landed_days_aside_and_puts_back_what_it_did_not_reach(
    tmp_path,
) -> None:
    settings = Settings(home=tmp_path / "home")
    use_case = _without_simulator()
    _land_days(settings.landing_dir, 9)
    told = check_scenario(use_case, Scenario(days=8))

    batches = story_days(settings, use_case, told)

    assert [b.parent.name for b in batches] == ["replay"] * 8
    assert [b.name for b in batches] == [f"2026-01-0{i}" for i in range(1, 9)]
    assert not any(settings.landing_dir.iterdir())  # no scheduled ingest takes the future
    deliver_to_landing_zone(batches[0], settings.landing_dir, move=True)  # the story reaches day 1
    assert return_set_aside_days(settings) == []
    assert len(list(settings.landing_dir.iterdir())) == 9
    assert not (settings.home / "replay").exists()


@pytest.mark.parametrize(
    ("landed", "days", "message"),
    [
        (0, None, "holds no batch: land the use case's data with `mlops land FILE...`"),
        (9, 12, "--days 12: the landing zone"),
        (9, 12, "holds only 9 days"),
        (7, None, "holds 7 days: the story needs more than the 7 the first model trains on"),
    ],
)
def test_a_replay_needs_enough_landed_days(tmp_path, landed, days, message) -> None:
    settings = Settings(home=tmp_path / "home")
    _land_days(settings.landing_dir, landed)
    use_case = _without_simulator()
    with pytest.raises(UserError, match=re.escape(message)):
        story_days(settings, use_case, check_scenario(use_case, Scenario(days=days)))
    assert len(list(settings.landing_dir.glob("*"))) == landed  # nothing moved


def test_a_platform_that_knows_the_future_is_refused_and_reset_keeps_the_landed_days(
    tmp_path,
) -> None:
    settings = Settings(home=tmp_path / "home")
    use_case = _without_simulator()
    _land_days(settings.landing_dir, 9)
    ledger = settings.offline_dir / "batches" / "2026-01-09.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(json.dumps({"batch_id": "2026-01-09", "closed_at": "2026-01-10T00:00:00Z"}))
    known = r"already holds data up to 2026-01-10.*--reset` \(it keeps the landed batches\)"
    with pytest.raises(UserError, match=known):
        story_days(settings, use_case, check_scenario(use_case, Scenario()))

    (settings.home / "replay").mkdir()  # a run that stopped midway set a day aside
    (settings.landing_dir / "2026-01-09").rename(settings.home / "replay" / "2026-01-09")
    reset_home(settings, keep_landing=True)
    assert sorted(p.name for p in settings.home.iterdir()) == ["landing"]
    assert len(list(settings.landing_dir.iterdir())) == 9
    assert len(story_days(settings, use_case, check_scenario(use_case, Scenario()))) == 9


def test_the_use_cases_data_files_land_as_the_story_days(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    source = tmp_path / "source"
    batches = USE_CASE.generator.generate(source, start=date(2026, 1, 1), days=8, events_per_day=20)
    files = []
    for table in USE_CASE.tables:
        frame = pd.concat([read_batch(b, USE_CASE.tables).tables[table.name] for b in batches])
        files.append(tmp_path / f"{table.name}.csv")
        frame.drop_duplicates(table.id_column).to_csv(files[-1], index=False)
    use_case = _without_simulator(data_files=tuple(files))

    days = story_days(settings, use_case, check_scenario(use_case, Scenario()))

    assert [d.name for d in days] == [b.name for b in batches]
    assert all(d.parent == settings.home / "simulation" for d in days)
    assert [read_batch(d, USE_CASE.tables).rows["impressions"] for d in days] == [20] * 8


def test_generating_without_a_simulator_points_to_mlops_land() -> None:
    with pytest.raises(UserError, match=r"has no simulator .*`mlops land FILE\.\.\.` instead"):
        require_simulator(_without_simulator())


def _told_day(name: str) -> Day:
    return Day(
        day=name, rows=10, quarantined=0, champion_version="1",
        metrics={"nce": 0.9, "reference_nce": 0.91}, drift_share=0.0, score_drift=None,
        decision="none", reason="healthy", links={"evidently_reports": ["a.html"]},
    )  # fmt: skip


def test_a_run_that_stopped_is_continued_only_by_the_same_story(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    settings.home.mkdir()
    asked = check_scenario(USE_CASE, Scenario(days=10, events_per_day=200))
    progress = Progress(
        scenario=asdict(asked),
        story_days=[f"2026-01-{d:02d}" for d in range(1, 11)],
        bootstrap_days=7,
        bootstrap={"model_version": "1", "days": ["2026-01-01"]},
        days=[_told_day("2026-01-08")],
    )
    progress.save(settings)

    assert saved_progress(settings, asked) == progress
    assert saved_progress(settings, replace(asked, seed=8)) is None  # another story
    assert saved_progress(Settings(home=tmp_path / "other"), asked) is None


@pytest.mark.parametrize(
    ("bootstrap", "told", "note"),
    [
        (None, 0, "the first model is not @champion yet; a rerun (`mlops run` with the same "
         "options, without --reset) starts the story again (the days already ingested stay)"),
        ({"model_version": "1"}, 0, "the first model (v1) and 0 of 3 monitored days told; a "
         "rerun (`mlops run` with the same options, without --reset) continues from day "
         "2026-01-08"),
        ({"model_version": "2"}, 2, "and 2 of 3 monitored days told; a rerun (`mlops run` with "
         "the same options, without --reset) continues from day 2026-01-10"),
        ({"model_version": "2"}, 3, "3 of 3 monitored days told; a rerun (`mlops run` with the "
         "same options, without --reset) writes the story's page"),
    ],
)  # fmt: skip
def test_an_interrupted_run_says_what_was_told_and_where_a_rerun_goes_on(
    bootstrap, told, note
) -> None:
    progress = Progress(
        story_days=[f"2026-01-{d:02d}" for d in range(1, 11)],
        bootstrap_days=7,
        bootstrap=bootstrap,
        days=[_told_day(f"2026-01-{8 + i:02d}") for i in range(told)],
    )
    assert note in progress.rerun_note()
