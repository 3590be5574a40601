"""Shared fixtures: an isolated MLOPS_HOME per test, one Prefect server per session, and one
ingested week of data that training tests copy instead of ingesting again.

`make test` runs the suite on four pytest-xdist workers, a module at a time each (`--dist
loadfile`): the controller starts the one Prefect server before the workers start, and what is
built once (`built_once`) is built by the first worker that needs it and read by the others.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from mlops.config.runtime import skip_feast_runtime_type_checks
from mlops.config.settings import Settings, get_settings
from tests.support.session import (
    PINNED_USE_CASE,
    SERVICE_WORKERS,
    START,
    WEEK_DAYS,
    WEEK_EVENTS_PER_DAY,
    built_once,
    settings_at,
)

# The controller's Prefect server, for its workers (set before they start).
SHARED_PREFECT_API_URL = "MLOPS_TESTS_PREFECT_API_URL"
# Modules that take a minute or more, longest first (wall time beside the suite, 2026-12-06):
# they start first so that the rest of the suite runs beside them instead of after them.
LONGEST_FIRST = (
    "tests/e2e/test_server_profile.py",
    "tests/benchmarks/test_smoke.py",
    "tests/e2e/test_lifecycle.py",
    "tests/integration/flows/test_mlflow_drills.py",  # mostly waiting: its faults time out
    "tests/e2e/test_onboarding.py",
    "tests/integration/flows/test_train_flow.py",
    "tests/integration/models/test_ray_engine.py",
    "tests/integration/flows/test_data_path_drills.py",
    "tests/integration/flows/test_mlflow_outage.py",
    "tests/integration/usecases/test_bundled_use_cases.py",
    "tests/integration/serving/test_serving_drills.py",
    "tests/integration/serving/test_serving.py",
    "tests/integration/serving/test_serving_server_profile.py",
    "tests/integration/serving/test_infra_check.py",
    "tests/e2e/test_cli.py",
    "tests/integration/flows/test_ingest_flow.py",
    "tests/integration/entrypoints/test_processes.py",
    "tests/integration/project/test_feast_cli.py",
    "tests/integration/project/test_ui_targets.py",
    "tests/integration/serving/test_bentoml_client.py",
    "tests/integration/monitoring/test_monitoring_names.py",
    "tests/integration/flows/test_concurrent_ingest.py",
)
# Fixtures that start or reach a server process: a test that uses one is in the `server` tier.
SERVER_FIXTURES = frozenset({"prefect_api_url"})


def _module(item: pytest.Item) -> str:
    return item.nodeid.partition("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One long module per worker first. xdist hands every worker two modules at the start: the
    second is a unit-test module, so that no two long ones queue on one worker. Then the other
    long ones, then the rest; pytest-randomly's order within each rank."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    modules = dict.fromkeys(_module(item) for item in items)
    fillers = [m for m in modules if m.startswith("tests/unit/")][:workers]
    order = [*LONGEST_FIRST[:workers], *fillers, *LONGEST_FIRST[workers:]]

    def rank(item: pytest.Item) -> int:
        module = _module(item)
        return order.index(module) if module in order else len(order)

    items.sort(key=rank)  # stable
    for item in items:  # `make test-fast` leaves these out
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) or "/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.server)


_PREFECT_SERVER = ExitStack()


def _start_prefect_server(home: Path) -> str:
    """A real Prefect server on `home` until the session ends (a start costs ~15 s)."""
    # Before Prefect is imported: it reads its settings, logging config included, once.
    os.environ["MLOPS_HOME"] = str(home)
    os.environ.update(Settings(home=home).library_environment())
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    _PREFECT_SERVER.enter_context(prefect_test_harness(server_startup_timeout=120))
    return PREFECT_API_URL.value()


@pytest.hookimpl(trylast=True)  # after the tmpdir and xdist plugins have configured
def pytest_configure(config: pytest.Config) -> None:
    """The suite pins its use case; the xdist controller starts the session's Prefect server
    for its workers."""
    skip_feast_runtime_type_checks()  # as every entry point does (mlops.config.runtime.setup)
    os.environ["MLOPS_USE_CASE"] = PINNED_USE_CASE
    os.environ["MLOPS_SERVING__WORKERS"] = SERVICE_WORKERS
    os.environ.pop("MLOPS_USE_CASES_ROOT", None)
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        home = Path(config._tmp_path_factory.mktemp("prefect-session"))  # type: ignore[attr-defined]
        os.environ[SHARED_PREFECT_API_URL] = _start_prefect_server(home)
        config.add_cleanup(_PREFECT_SERVER.close)


@pytest.fixture(scope="session")
def prefect_api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's real Prefect server: the controller's, or started here on first use."""
    shared = os.environ.get(SHARED_PREFECT_API_URL)
    if shared:
        home = tmp_path_factory.mktemp("prefect-client")
        os.environ["MLOPS_HOME"] = str(home)
        os.environ.update(Settings(home=home).library_environment())
        os.environ["PREFECT_API_URL"] = shared
        yield shared
        return
    with _PREFECT_SERVER:
        yield _start_prefect_server(tmp_path_factory.mktemp("prefect-session"))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings on a fresh MLOPS_HOME; the cached process-wide settings are reset around it."""
    yield settings_at(tmp_path / "mlops-home", monkeypatch)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def ingested_week(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    """A home with a week of baseline traffic ingested (offline and online stores), once."""

    def build(directory: Path) -> None:
        from flows.ingest import ingest
        from mlops.contracts.usecase import load_use_case

        generator = load_use_case(PINNED_USE_CASE).generator
        assert generator is not None
        with pytest.MonkeyPatch.context() as monkeypatch:
            settings = settings_at(directory / "mlops-home", monkeypatch)
            batches = generator.generate(
                settings.landing_dir,
                start=START,
                days=WEEK_DAYS,
                events_per_day=WEEK_EVENTS_PER_DAY,
                seed=11,
            )
            ingest(batches)
        get_settings.cache_clear()

    directory, _ = built_once(tmp_path_factory, "ingested-week", build)
    return directory / "mlops-home"


@pytest.fixture
def week_settings(
    ingested_week: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings on a private copy of the ingested week, with an empty model registry."""
    home = tmp_path / "mlops-home"
    shutil.copytree(ingested_week, home, ignore=shutil.ignore_patterns("mlflow", "prefect"))
    yield settings_at(home, monkeypatch)
    get_settings.cache_clear()


@pytest.fixture
def use_case():
    from mlops.contracts.usecase import load_use_case

    return load_use_case(PINNED_USE_CASE)
