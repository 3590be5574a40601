"""`mlops deploy`: the work pool, then `prefect deploy --all` on prefect.yaml, then a check of
what the server now holds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mlops.errors import UserError
from mlops.settings import DATA_ROOT, PROJECT_ROOT, Settings

PREFECT_FILE = DATA_ROOT / "prefect.yaml"


class DeployFailed(UserError):
    """No Prefect server to deploy to, or `prefect deploy` refused: the message says why."""


def register(settings: Settings) -> list[dict[str, Any]]:
    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        raise DeployFailed(
            "no Prefect server: set PREFECT_API_URL (or MLOPS_PROFILE=server and "
            "MLOPS_PREFECT_API_URL), e.g. after `prefect server start`"
        )
    spec = yaml.safe_load(PREFECT_FILE.read_text())
    pools = {d["work_pool"]["name"] for d in spec["deployments"]}
    prefect = str(Path(sys.executable).parent / "prefect")
    env = {**os.environ, "MLOPS_PROJECT_DIR": str(PROJECT_ROOT)}
    for pool in sorted(pools):
        _call([prefect, "work-pool", "create", pool, "--type", "process", "--overwrite"], env)
    _call([prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_FILE)], env)
    return asyncio.run(_registered([d["name"] for d in spec["deployments"]]))


def _call(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise DeployFailed(f"`{' '.join(command[1:])}` failed: {done.stdout}{done.stderr}"[-2000:])


async def _registered(names: list[str]) -> list[dict[str, Any]]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        found = []
        for deployment in await client.read_deployments():
            if deployment.name not in names:
                continue
            flow = await client.read_flow(deployment.flow_id)
            crons = [getattr(s.schedule, "cron", None) for s in deployment.schedules or []]
            found.append(
                {
                    "name": f"{flow.name}/{deployment.name}",
                    "work_pool": deployment.work_pool_name,
                    "schedule": ", ".join(c for c in crons if c) or None,
                }
            )
    return sorted(found, key=lambda d: d["name"])
