"""Shared fixtures: an isolated MLOPS_HOME per test and one Prefect server per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from mlops.settings import Settings, get_settings

START = date(2026, 1, 1)


@pytest.fixture(scope="session")
def prefect_api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Prefect server for the whole session (a start costs ~15 s)."""
    home = tmp_path_factory.mktemp("prefect-session")
    os.environ.update(Settings(home=home).library_environment())
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings on a fresh MLOPS_HOME; the cached process-wide settings are reset around it."""
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "mlops-home"))
    get_settings.cache_clear()
    yield get_settings().apply()
    get_settings.cache_clear()


@pytest.fixture
def use_case():
    from mlops.usecase import load_use_case

    return load_use_case("adclick")
