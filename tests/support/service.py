"""The prediction service as a real `bentoml serve` process (started by `mlops serve`), and
the limits tests start it with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from mlops.config.settings import Settings
from mlops.stores.prediction_log import read_prediction_log
from tests.support.cli import MLOPS
from tests.support.session import SERVICE_WORKERS
from tests.support.waiting import WAIT_SECONDS, wait_until

if TYPE_CHECKING:
    from mlops.stores.registry import ModelRegistry
    from models.train_report import TrainReport

# Per request, for the client and the service (MLOPS_SERVING__TIMEOUT_SECONDS, 2 s by default,
# then 504): no verdict is about this machine's speed.
REQUEST_TIMEOUT_SECONDS = 30
# The limits of a service `serving_environment` starts: small, for the tests to reach them.
POLL_SECONDS = 1.0
MAX_CONCURRENCY = 4
MAX_BATCH = 50
MAX_BODY_BYTES = 65536


@dataclass
class Served:
    settings: Settings
    report: TrainReport  # the training that made the @champion it started with
    process: subprocess.Popen[str]
    started: dict[str, Any]  # what `mlops serve --json` printed once ready
    client: httpx.Client
    env: dict[str, str]  # what `mlops serve` ran with

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return self.client.post(path, **kwargs)

    @property
    def registry(self) -> ModelRegistry:
        from mlops.stores.registry import ModelRegistry

        return ModelRegistry(self.settings.tracking_uri, self.env["MLOPS_USE_CASE"])

    def champion(self) -> str:
        """The registry's @champion, once the service serves it (it looks for a new one every
        poll): what a test compares answers with, whatever ran before it."""
        version = self.registry.champion()
        wait_until(
            lambda: self.client.get("/model").json()["model_version"] == version,
            f"the service to serve the @champion v{version}",
        )
        return version


def start_serving(env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """`mlops serve --json` on a free port; it prints its first line once /readyz answers 200
    (it polls, up to MLOPS_SERVING__STARTUP_TIMEOUT_SECONDS)."""
    from serving.process import free_port

    process = subprocess.Popen(
        [MLOPS, "serve", "--port", str(free_port()), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a stop that hangs can then kill the service with it
    )
    assert process.stdout is not None
    started = json.loads(process.stdout.readline() or "{}")
    if not started.get("model_version"):
        stop_serving(process)
        pytest.fail("mlops serve did not start; see its stderr")
    return process, started


def stop_serving(process: subprocess.Popen[str]) -> int:
    """SIGTERM, as a user's Ctrl+C: `mlops serve` stops the service cleanly. A stop that hangs
    is killed, with everything it started, and fails the caller."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def serving_environment(home: Path, prefect_api_url: str) -> dict[str, str]:
    """What `mlops serve` runs with on `home`: the limits above, generous request timeouts
    (none of the serving settings a test may have put in this environment)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLOPS_SERVING__")},
        "MLOPS_HOME": str(home),
        "PREFECT_API_URL": prefect_api_url,
        "MLOPS_SERVING__POLL_SECONDS": str(POLL_SECONDS),
        "MLOPS_SERVING__MAX_CONCURRENCY": str(MAX_CONCURRENCY),
        "MLOPS_SERVING__WORKERS": SERVICE_WORKERS,
        "MLOPS_SERVING__MAX_BATCH": str(MAX_BATCH),
        "MLOPS_SERVING__MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "MLOPS_SERVING__TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
    }


@contextmanager
def serving(home: Path, report: TrainReport, env: dict[str, str]) -> Iterator[Served]:
    """`mlops serve` on `home` (its @champion trained by `report`), stopped on the way out."""
    process, started = start_serving(env)
    try:
        with httpx.Client(base_url=started["url"], timeout=REQUEST_TIMEOUT_SECONDS) as client:
            yield Served(Settings(home=home), report, process, started, client, env)
    finally:
        stop_serving(process)


def wait_for_log(
    served: Served, ids: list[str], timeout: float = WAIT_SECONDS, directory: Path | None = None
) -> dict[str, dict]:
    """The log records of `ids` (in the prediction log, or the one in `directory`), once the
    service's batched writer has flushed them."""
    deadline = time.monotonic() + timeout
    directory = directory or served.settings.predictions_dir
    while True:
        records = {r["request_id"]: r for r in read_prediction_log(directory)}
        if all(i in records for i in ids) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def register_again(registry: ModelRegistry, version: str) -> str:
    """The model of `version` under a new version number. The registry registers a run's model
    once (a retried registration gets the same version back), so it goes in with a run of its
    own."""
    import mlflow

    model = registry.client.get_model_version(registry.name, version)
    experiment = registry.client.get_run(model.run_id).info.experiment_id
    run = registry.client.create_run(experiment, run_name=f"test: v{version} again")
    registry.client.set_terminated(run.info.run_id)
    # MLflow looks the `models:/` source up through the process-wide URI, which the flows set
    # (this process may have used another home last).
    mlflow.set_tracking_uri(registry.tracking_uri)
    return registry.register(model.source, run.info.run_id)
