"""The fault drill "the MLflow server goes away mid-training": a real `mlflow server`
(PostgreSQL backend, proxied artifacts) is killed once the training run has begun logging, kept
down 20 s and started again on the same port. The train flow's MLflow tasks retry, the flow
succeeds, and the registry holds one version with one decision; the run the failed attempt left
is marked FAILED.

`mlops train` runs in the server profile, as a deployment would: that profile is what caps
MLflow's own HTTP retries (Settings.library_environment), so one attempt fails fast and
Prefect's retries are what recover. Its Feast registry goes to a PostgreSQL database of a unique
prefix (training reads the offline store's files; nothing is written to Redis DB 14).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from mlops.config.settings import Settings
from mlops.stores.mlflow_runs import LOGGED_BY, RUN_NOTE
from mlops.stores.registry import CHAMPION, ModelRegistry
from tests.support.mlflow_server import MlflowServer
from tests.support.ports import restartable_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
OUTAGE_SECONDS = 20
WAIT_SECONDS = 300  # for a state to be reached (a busy machine); the flow's retries span ~2 min
REDIS_URL = "redis://127.0.0.1:6379/14"


@dataclass
class ServerHome:
    settings: Settings
    server: MlflowServer


@pytest.fixture
def server_home(week_settings: Settings, prefect_api_url: str) -> Iterator[ServerHome]:
    """The ingested week in the server profile, its databases under a prefix of its own, and
    an MLflow server on them; all dropped at the end."""
    from mlops.stores.databases import drop_databases, ensure_databases

    port = restartable_port()
    settings = Settings(
        home=week_settings.home,
        profile="server",
        database_prefix=f"t{secrets.token_hex(5)}",
        redis_url=SecretStr(REDIS_URL),
        prefect_api_url=prefect_api_url,
        mlflow_tracking_uri=f"http://127.0.0.1:{port}",
    )
    ensure_databases(settings)
    server = MlflowServer(
        port,
        settings.database_url("mlflow", "psycopg2"),
        settings.home / "mlflow-server" / "artifacts",
        settings.logs_dir / "mlflow-server.log",
    )
    server.artifacts.mkdir(parents=True)
    try:
        server.start()
        yield ServerHome(settings, server)
    finally:
        server.kill()
        drop_databases(settings)


def test_a_20_s_mlflow_outage_mid_training_is_retried_and_decided_once(
    server_home: ServerHome, use_case, prefect_api_url: str
) -> None:
    from mlflow import MlflowClient

    settings, server = server_home.settings, server_home.server
    env = {
        **os.environ,
        **settings.environment(),
        "PREFECT_API_URL": prefect_api_url,
        "PREFECT_HOME": str(settings.prefect_home),
        "MLOPS_SERVING__INFRA_CHECK": "false",  # its own tests start a service
    }
    # The server profile decides how fast one MLflow request gives up.
    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        env.pop(key, None)
    started = time.monotonic()
    train = subprocess.Popen(
        [str(BIN / "mlops"), "train", "--search-trials", "1", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Its registry named too: MLflow's process-wide registry URI may still be another test's.
    client = MlflowClient(server.url, registry_uri=server.url)
    try:

        def logging_started() -> bool:
            if train.poll() is not None:
                pytest.fail(f"train exited early: {train.communicate()[1][-3000:]}")
            experiment = client.get_experiment_by_name(use_case.name)
            return experiment is not None and bool(client.search_runs([experiment.experiment_id]))

        wait_until(
            logging_started,
            "the training run to start logging",
            timeout=WAIT_SECONDS,
            poll_seconds=0.5,
        )
        server.kill()
        down = time.monotonic()
        time.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for a state
        server.start()
        back = time.monotonic()
        stdout, stderr = train.communicate(timeout=WAIT_SECONDS)
    finally:
        train.kill()  # no-op once it exited
    finished = time.monotonic()

    assert train.returncode == 0, stderr[-3000:]
    report = json.loads(stdout)
    registry = ModelRegistry(server.url, use_case.model_name)
    [version] = registry.versions()  # registered once
    assert version.version == report["version"] == "1"
    assert version.decision == report["decision"]
    description = client.get_model_version(use_case.model_name, "1").description
    assert description.count(" by gate, ") == 1, description  # decided once
    if report["decision"] == "promoted":
        assert registry.alias(CHAMPION) == "1" and version.aliases == (CHAMPION,)

    experiment = client.get_experiment_by_name(use_case.name).experiment_id
    runs = client.search_runs([experiment])
    done = [r for r in runs if r.info.status == "FINISHED"]
    assert [r.info.run_id for r in done] == [report["run_id"]] == [version.run_id]
    assert done[0].data.tags["decision"] == report["decision"]
    flow_run_id = done[0].data.tags[LOGGED_BY]
    assert {r.data.tags[LOGGED_BY] for r in runs} == {flow_run_id}
    # The run the failed attempt began (the one seen before the kill) is closed, not left
    # RUNNING, and so is any model it had begun to log.
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(runs) == 1 + len(failed) and len(failed) <= 1
    # A FAILED run is the failed attempt's, closed by the retried one (the only writer of its
    # note): the retry itself, whatever Prefect's task records say (their run counts were
    # seen behind under the suite's load).
    retried = _retried_tasks(flow_run_id)
    # The outage reaches the run as a retried task, or, when it struck a registry call, as
    # the registry asking again within its own bounds (a busy machine decides which).
    log = settings.home / "logs" / "mlops.log"
    asked_again = log.exists() and "MLflow did not answer" in log.read_text()
    if not (failed or retried or asked_again):
        # Under the whole suite's load the flow can finish its MLflow calls before the kill
        # lands: what follows still holds, and tests/integration/flows/test_mlflow_drills.py
        # fails each call deterministically.
        warnings.warn("the outage struck no MLflow call of the run", stacklevel=1)
    for run in failed:
        assert run.data.tags[RUN_NOTE].startswith("Abandoned"), run.data.tags
        models = client.search_logged_models(
            [experiment], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        assert {str(m.status) for m in models} <= {"FAILED"}
    print(
        f"\ntrain started; logging seen after {down - started:.0f} s; server down "
        f"{back - down:.0f} s (restart included); flow done {finished - back:.0f} s later; "
        f"retried: {retried}; runs: {sorted(r.info.status for r in runs)}"
    )


def _retried_tasks(flow_run_id: str) -> dict[str, int]:
    """Task run name -> attempts, for the flow run's tasks that ran more than once."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {t.name: t.run_count for t in task_runs if t.run_count > 1}
