"""Running `mlops` as a user does: a subprocess, one JSON object on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# The console script of the venv that runs the tests.
MLOPS = str(Path(sys.executable).with_name("mlops"))


def cli_runner(home: Path, prefect_api_url: str, env: dict[str, str] | None = None):
    """Run `mlops ... --json` against `home` and the session's Prefect server."""
    # The infra check has its own tests (tests/integration/serving/test_serving.py).
    base_env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "PREFECT_API_URL": prefect_api_url,
        "MLOPS_SERVING__INFRA_CHECK": "false",
        **(env or {}),
    }

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> tuple[int, dict, str]:
        done = subprocess.run(
            [MLOPS, *args, "--json"],
            env={**base_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return done.returncode, json.loads(done.stdout), done.stderr  # one JSON object only

    run.home = home
    run.env = base_env  # for a command the test runs itself (`mlops serve` keeps running)
    return run
