"""The Makefile's UI targets as a person runs them, on ports that are not the tools' defaults.

- `make prefect-ui`, opened in a real browser (headless Chromium) after `mlops` ran flows
  against it: the UI finds its API (no "Can't connect to Server API") and lists the flow runs by
  what they worked on. The home is a copy of the session's trained week with one more day
  landed and a second model version promoted; `mlops ingest` and `mlops rollback` run against
  the UI's server (the session's flow runs live on the session's server, not under the home).
- `make mlflow-ui`: MLflow runs without its job runners, as everywhere in the platform.

`-o`: the venv counts as installed (a test never syncs it); VENV: the one running the tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from mlops.config.settings import MLFLOW_SERVER_JOBS_OFF, PROJECT_ROOT
from tests.support.cli import cli_runner
from tests.support.session import TrainedWeek
from tests.support.stores import copy_home
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

VENV = Path(sys.executable).parent.parent
NEW_DAY = date(2026, 1, 8)  # the day after the trained week


@dataclass(frozen=True)
class PrefectUi:
    url: str
    home: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


@contextmanager
def _make(target: str, home: Path, log: Path, *variables: str) -> Iterator[subprocess.Popen]:
    """`make <target>` over `home` until the block ends; make and what it started are stopped
    as one process group. What a user's shell may hold must not decide the outcome: the
    target's own settings do."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_UI_API_URL", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION")
    }
    env["MLOPS_HOME"] = str(home)
    make = ["make", "--no-print-directory", "-o", f"{VENV}/.installed", f"VENV={VENV}"]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*make, target, *variables],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def prefect_ui(
    trained_week: TrainedWeek, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectUi]:
    """`make prefect-ui PREFECT_UI_PORT=<free port>` over a copy of the trained week."""
    root = tmp_path_factory.mktemp("prefect-ui")
    home = copy_home(trained_week.home, root / "mlops-home")
    port, log = _free_port(), root / "prefect-ui.log"
    url = f"http://127.0.0.1:{port}"
    with _make("prefect-ui", home, log, f"PREFECT_UI_PORT={port}") as server:
        wait_until(
            lambda: server.poll() is None and _answers(f"{url}/api/health"),
            f"make prefect-ui on port {port} ({log})",
            timeout=180,
            ignoring=(OSError,),
        )
        yield PrefectUi(url, home, log)


def _promote_a_second_version(home: Path, model_name: str) -> None:
    """v2 as @champion and v1 as @previous in the copy's registry, something to roll back: v1's
    model registered again and promoted (training one would cost a fit and an infra check)."""
    from mlflow import MlflowClient

    from mlops.stores.registry import ModelRegistry

    tracking_uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    first = client.get_model_version(model_name, "1")
    # By the logged model's files: a `models:/m-...` source is looked up in the process's
    # default tracking store, not this client's.
    files = client.get_logged_model(first.source.removeprefix("models:/")).artifact_location
    second = client.create_model_version(model_name, files, first.run_id)
    ModelRegistry(tracking_uri, model_name).promote(second.version, "the browser test")


def _render(url: str, screenshot: Path) -> str:
    """The page's DOM once its scripts ran and its API answered (virtual time waits for
    pending fetches), and a screenshot. Remote requests go to a closed port (loopback is
    reached directly): the UI needs nothing from the internet."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is missing: `make browser` installs it (Debian's chromium).")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--proxy-server=127.0.0.1:9",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--window-size=1400,900",
                f"--screenshot={screenshot}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return done.stdout


def test_the_prefect_ui_on_another_port_lists_the_runs_by_what_they_worked_on(
    prefect_ui: PrefectUi, use_case, tmp_path: Path
) -> None:
    (day,) = use_case.generator.generate(
        prefect_ui.home / "landing", start=NEW_DAY, days=1, events_per_day=1_000, seed=3
    )
    _promote_a_second_version(prefect_ui.home, use_case.model_name)
    mlops = cli_runner(prefect_ui.home, f"{prefect_ui.url}/api")
    for command in (("ingest", str(day)), ("rollback", "--reason", "the browser test")):
        code, _, stderr = mlops(*command)
        assert code == 0, stderr[-3000:]
    expected = {f"ingest-{NEW_DAY}", "rollback-v2-to-v1"}

    # The UI asks its own server where the API is: the port it was opened on.
    settings = urllib.request.urlopen(f"{prefect_ui.url}/ui-settings", timeout=10).read()
    assert b'"api_url":"/api"' in settings, settings

    # What a person opens (the default UI, Prefect's v2) and the classic one.
    for page in ("v2/runs", "runs"):
        shot = tmp_path / f"prefect-{page.replace('/', '-')}.png"

        def listed(page: str = page, shot: Path = shot) -> str | None:
            dom = _render(f"{prefect_ui.url}/{page}", shot)
            assert "Can't connect to Server API" not in dom, shot
            return dom if all(name in dom for name in expected) else None

        wait_until(listed, f"the runs {sorted(expected)} listed on /{page} ({shot})", timeout=300)


def test_make_mlflow_ui_runs_mlflow_without_its_job_runners(tmp_path: Path) -> None:
    """The job runner and its seven consumers start with the server unless the platform's
    MLFLOW_SERVER_JOBS_OFF is in its environment; the check needs no request served."""
    import psutil

    (tmp_path / "mlflow").mkdir()
    port, log = _free_port(), tmp_path / "mlflow-ui.log"
    with _make("mlflow-ui", tmp_path, log, f"MLFLOW_UI_PORT={port}") as make:

        def mlflow_process() -> psutil.Process | None:
            for child in psutil.Process(make.pid).children(recursive=True):
                try:
                    command = child.cmdline()
                except psutil.Error:  # one of make's short-lived helpers, gone or a zombie now
                    continue
                if "ui" in command and any("mlflow" in part for part in command):
                    return child
            return None

        mlflow = wait_until(mlflow_process, f"make mlflow-ui starting mlflow ({log})")
        environment = mlflow.environ()
        command = mlflow.cmdline()
    assert {k: environment.get(k) for k in MLFLOW_SERVER_JOBS_OFF} == MLFLOW_SERVER_JOBS_OFF
    assert command[command.index("--port") + 1] == str(port)
    assert command[command.index("--workers") + 1] == "1"  # MLflow's default: four
