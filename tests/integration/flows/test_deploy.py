"""`mlops deploy` against a real Prefect server (the session's): prefect.yaml's three
deployments and their process work pool end up on it, with the schedules the file gives them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.config.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def test_deploy_registers_every_deployment(prefect_api_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "MLOPS_HOME": str(tmp_path / "h")}
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
    assert set(deployed) == {"ingest/ingest", "predict/predict", "monitor/monitor", "train/train"}
    assert {d["work_pool"] for d in deployed.values()} == {"mlops-process"}
    assert deployed["predict/predict"]["schedule"] == "30 0 * * *"  # after ingestion
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
