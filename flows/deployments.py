"""The lifecycle flows' deployments, read from prefect.yaml, the one place their names, flows,
schedules and work pool are written; and `mlops deploy` (`register`): the work pool, then
`prefect deploy --all` on prefect.yaml, then a check of what the server now holds."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import yaml

from mlops.config.errors import UserError
from mlops.config.settings import DATA_ROOT, PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from prefect import Flow

PREFECT_FILE = DATA_ROOT / "prefect.yaml"


@dataclass(frozen=True)
class Deployment:
    """One deployment of prefect.yaml."""

    name: str
    entrypoint: str  # `module:function` (or `path/to/file.py:function`) of its flow
    cron: str | None  # None: no clock starts it (the monitor flow starts training)
    work_pool: str

    @property
    def flow_function(self) -> tuple[str, str]:
        """The flow's module and function, whichever way the entrypoint names the module."""
        module, _, function = self.entrypoint.partition(":")
        return module.removesuffix(".py").replace("/", "."), function

    def load_flow(self) -> Flow[..., Any]:
        module, function = self.flow_function
        return cast("Flow[..., Any]", getattr(importlib.import_module(module), function))


@cache
def deployments() -> tuple[Deployment, ...]:
    """prefect.yaml's deployments, in the file's order."""
    spec = yaml.safe_load(PREFECT_FILE.read_text())
    return tuple(
        Deployment(
            name=d["name"],
            entrypoint=d["entrypoint"],
            cron=next((s["cron"] for s in d.get("schedules") or [] if "cron" in s), None),
            work_pool=d["work_pool"]["name"],
        )
        for d in spec["deployments"]
    )


def deployment_of(flow: Flow[..., Any]) -> str:
    """`<flow>/<deployment>`, as `run_deployment` names the deployment that runs `flow`."""
    here = (flow.fn.__module__, flow.fn.__name__)
    found = [d.name for d in deployments() if d.flow_function == here]
    if not found:
        raise UserError(f"no deployment of the flow {flow.name} in {PREFECT_FILE}")
    return f"{flow.name}/{found[0]}"


def work_pool() -> str:
    """The work pool the deployments run on: the server profile starts one worker, on it."""
    pools = {d.work_pool for d in deployments()}
    if len(pools) != 1:
        raise UserError(f"{PREFECT_FILE}: one work pool for every deployment, not {sorted(pools)}")
    return pools.pop()


class DeployFailed(UserError):
    """No Prefect server to deploy to, or `prefect deploy` refused: the message says why."""


def register(settings: Settings) -> list[dict[str, Any]]:
    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        raise DeployFailed(
            "no Prefect server: set PREFECT_API_URL (or MLOPS_PROFILE=server and "
            "MLOPS_PREFECT_API_URL), e.g. after `prefect server start`"
        )
    pools = {d.work_pool for d in deployments()}
    prefect = str(Path(sys.executable).parent / "prefect")
    env = {**os.environ, "MLOPS_PROJECT_DIR": str(PROJECT_ROOT)}
    for pool in sorted(pools):
        _call([prefect, "work-pool", "create", pool, "--type", "process", "--overwrite"], env)
    _call([prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_FILE)], env)
    asyncio.run(_alert_automation(settings.alert_notification_block))
    return asyncio.run(_registered([d.name for d in deployments()]))


ALERT_AUTOMATION = "mlops-monitoring-alert"


async def _alert_automation(notification_block: str | None) -> None:
    """An automation on the monitor flow's alert event (`flows.monitor.announce`): it sends
    the verdict to the notification block `MLOPS_ALERT_NOTIFICATION_BLOCK` names
    (`<block type>/<name>`, e.g. `slack-webhook/ops`), or, without one, only records that it
    fired (Prefect UI, Automations) until you point it at a block. Replaced on every deploy."""
    from prefect.automations import (
        Automation,
        DoNothing,
        EventTrigger,
        Posture,
        SendNotification,
    )
    from prefect.blocks.core import Block
    from prefect.client.orchestration import get_client
    from prefect.events.actions import ActionTypes

    actions: list[ActionTypes] = [DoNothing()]
    if notification_block:
        try:
            block: Block = await Block.aload(notification_block)
        except ValueError as missing:
            raise DeployFailed(f"MLOPS_ALERT_NOTIFICATION_BLOCK: {missing}") from None
        body = (
            "{{ event.resource['prefect.resource.name'] }}: monitoring alert on "
            "{{ event.payload.window_end }} (v{{ event.payload.model_version }}): "
            "{{ event.payload.reason }}"
        )
        actions = [
            SendNotification(
                block_document_id=cast(UUID, block._block_document_id),
                subject="MLOps monitoring alert",
                body=body,
            )
        ]
    async with get_client() as client:
        for existing in await client.read_automations_by_name(ALERT_AUTOMATION):
            await client.delete_automation(existing.id)
    await Automation(
        name=ALERT_AUTOMATION,
        description="The monitor flow judged a window a data incident (decision `alert`).",
        trigger=EventTrigger(
            expect={"mlops.monitor.alert"},
            match={"prefect.resource.id": "mlops.model.*"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=actions,
    ).acreate()


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
