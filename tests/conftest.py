"""Shared fixtures: an isolated MLOPS_HOME per test, one Prefect server per session, and one
ingested week of data that training tests copy instead of ingesting again."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from mlops.settings import Settings, get_settings

START = date(2026, 1, 1)
# The card's windows: 5 training days, 1 validation day, 1 test day.
WEEK_DAYS = 7
WEEK_EVENTS_PER_DAY = 8_000


@pytest.fixture(scope="session")
def prefect_api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Prefect server for the whole session (a start costs ~15 s)."""
    home = tmp_path_factory.mktemp("prefect-session")
    # Before Prefect is imported: it reads its settings, logging config included, once.
    os.environ["MLOPS_HOME"] = str(home)
    os.environ.update(Settings(home=home).library_environment())
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


def _settings_at(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLOPS_HOME", str(home))
    # The infra check starts a real service (~20 s) for every promotion; tests/integration/
    # test_serving.py runs it, the other flow tests are about the gate and turn it off.
    monkeypatch.setenv("MLOPS_SERVING__INFRA_CHECK", "false")
    get_settings.cache_clear()
    return get_settings().apply()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings on a fresh MLOPS_HOME; the cached process-wide settings are reset around it."""
    yield _settings_at(tmp_path / "mlops-home", monkeypatch)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def ingested_week(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    """A home with a week of baseline traffic ingested (offline and online stores), once."""
    from flows.ingest import ingest
    from usecases.adclick.generator import generate

    home = tmp_path_factory.mktemp("ingested-week") / "mlops-home"
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = _settings_at(home, monkeypatch)
        batches = generate(
            settings.landing_dir,
            start=START,
            days=WEEK_DAYS,
            events_per_day=WEEK_EVENTS_PER_DAY,
            seed=11,
        )
        ingest(batches)
    get_settings.cache_clear()
    return home


@pytest.fixture
def week_settings(
    ingested_week: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings on a private copy of the ingested week, with an empty model registry."""
    home = tmp_path / "mlops-home"
    shutil.copytree(ingested_week, home, ignore=shutil.ignore_patterns("mlflow", "prefect"))
    yield _settings_at(home, monkeypatch)
    get_settings.cache_clear()


@pytest.fixture
def use_case():
    from mlops.usecase import load_use_case

    return load_use_case("adclick")
