"""`mlops deploy` against a real `prefect server start`: prefect.yaml's three deployments and
their process work pool end up on the server, with the schedules the file gives them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops.settings import PROJECT_ROOT
from serving.process import free_port

BIN = Path(sys.executable).parent


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(30)


def test_deploy_registers_the_three_deployments(prefect_server: str, tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "MLOPS_HOME": str(tmp_path / "h")}
    done = subprocess.run(
        [str(BIN / "mlops"), "deploy", "--json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    deployed = {d["name"]: d for d in json.loads(done.stdout)["deployments"]}
    assert set(deployed) == {"ingest/ingest", "monitor/monitor", "train/train"}
    assert {d["work_pool"] for d in deployed.values()} == {"mlops-process"}
    assert deployed["monitor/monitor"]["schedule"] == "45 0 * * *"
    assert deployed["train/train"]["schedule"] is None  # started by monitoring, not a clock


def test_deploy_without_a_server_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["MLOPS_HOME"] = str(tmp_path / "h")
    done = subprocess.run(
        [str(BIN / "mlops"), "deploy"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "PREFECT_API_URL" in done.stderr and "Traceback" not in done.stderr
