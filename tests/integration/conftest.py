"""Expensive setup the integration modules share, made once per session: a week with a first
@champion trained on it (through the infra check), one running service on a copy of it, and
the first champion of each use case that ships its data (diagnosis, deliveries, tickets).

Nothing here is changed by a test: a test that needs a registry, a store or a service of its
own copies the trained week (`copy_home`, under a second) instead of training again (~10 s),
and starts its own service (~17 s) when it promotes, breaks a store or stops the service.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from mlops.config.settings import Settings, get_settings
from mlops.contracts.usecase import load_use_case
from models.train_report import TrainReport
from tests.support.service import Served, serving, serving_environment
from tests.support.session import TrainedWeek, built_once, settings_at
from tests.support.stores import copy_home, use_case_days

# The infra check's SLO in the shared training: the mechanism is under test, not this machine's
# speed (benchmarks/serving.py is; tests/integration/serving/test_infra_check.py judges the
# card's SLO).
INFRA_CHECK_P99_MS = "50"


@pytest.fixture(scope="session")
def trained_week(
    ingested_week: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str
) -> TrainedWeek:
    """The ingested week with v1 trained on it (one search trial) and promoted through the
    gate and the infra check (a real service, SLO 50 ms), once per run."""

    def build(directory: Path) -> TrainReport:
        from flows.train import train

        home = copy_home(ingested_week, directory / "mlops-home")
        with pytest.MonkeyPatch.context() as monkeypatch:
            settings_at(home, monkeypatch)
            monkeypatch.setenv("MLOPS_SERVING__INFRA_CHECK", "true")
            monkeypatch.setenv("MLOPS_SERVING__INFRA_CHECK_P99_MS", INFRA_CHECK_P99_MS)
            get_settings.cache_clear()
            get_settings().apply()
            report = train(search_trials=1)
        get_settings.cache_clear()
        assert report.decision == "promoted", report.reason
        return report

    directory, report = built_once(tmp_path_factory, "trained-week", build)
    return TrainedWeek(directory / "mlops-home", report)


@pytest.fixture
def champion_settings(
    trained_week: TrainedWeek, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings on a private copy of the trained week: v1 is @champion in its own registry."""
    home = copy_home(trained_week.home, tmp_path / "mlops-home")
    yield settings_at(home, monkeypatch)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def shared_service(
    trained_week: TrainedWeek, tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str
) -> Iterator[Served]:
    """`mlops serve` on a copy of the trained week, for tests that only send requests and
    read: it serves v1 the whole session (nothing promotes in its registry)."""
    home = copy_home(trained_week.home, tmp_path_factory.mktemp("shared-service") / "mlops-home")
    with serving(home, trained_week.report, serving_environment(home, prefect_api_url)) as served:
        yield served


def _trained_from_its_files(name: str, tmp_path_factory: pytest.TempPathFactory) -> TrainedWeek:
    """A bundled use case's shipped files landed, ingested and trained on (v1 promoted), once
    per run. Without the infra check's service (tests/integration/usecases/ start one)."""

    def build(directory: Path):
        from flows.ingest import ingest
        from flows.train import train

        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setenv("MLOPS_USE_CASE", name)
            settings = settings_at(directory / "mlops-home", monkeypatch)
            use_case = load_use_case(name)
            days = use_case.card.training.span_days  # what its first model trains on
            ingest(use_case_days(use_case, settings.landing_dir, days=days))
            report = train(search_trials=1)
        get_settings.cache_clear()
        assert report.decision == "promoted", report.reason
        return report

    directory, report = built_once(tmp_path_factory, f"trained-{name}", build)
    return TrainedWeek(directory / "mlops-home", report)


@pytest.fixture(scope="session")
def diagnosis_trained(
    tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str
) -> TrainedWeek:
    """diagnosis (binary, a public table) trained on its shipped examinations."""
    return _trained_from_its_files("diagnosis", tmp_path_factory)


@pytest.fixture(scope="session")
def tickets_trained(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> TrainedWeek:
    """tickets (multiclass) trained on its shipped tickets."""
    return _trained_from_its_files("tickets", tmp_path_factory)


@pytest.fixture(scope="session")
def deliveries_trained(
    tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str
) -> TrainedWeek:
    """deliveries (regression) trained on its shipped orders."""
    return _trained_from_its_files("deliveries", tmp_path_factory)


@pytest.fixture(scope="session")
def scratch_postgres() -> Iterator[str]:
    """A PostgreSQL database of its own on the machine's server (127.0.0.1), dropped at the end:
    its URL, as `Settings.database_url` gives one."""
    from psycopg import sql

    from mlops.stores.databases import connect

    dsn = Settings().postgres_dsn.get_secret_value()
    name = f"t{secrets.token_hex(6)}_scratch"
    with connect(dsn) as admin:
        admin.autocommit = True
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = urlsplit(dsn)
        yield urlunsplit(("postgresql+psycopg", url.netloc, f"/{name}", url.query, ""))
    finally:
        with connect(dsn) as admin:
            admin.autocommit = True
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))
