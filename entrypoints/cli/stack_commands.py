"""The server profile's commands: `mlops deploy` the flows' deployments, `mlops up`, `down`
and `status` of the services (`entrypoints.supervisor`), and the `mlops settings` in force."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from entrypoints.cli.conventions import JsonOption, answer, start
from mlops.config.errors import EXIT_FAILURE

if TYPE_CHECKING:
    from mlops.config.settings import Settings


def deploy(as_json: JsonOption = False) -> None:
    """Register the deployments of prefect.yaml (ingest, monitor, train) and their `process`
    work pool with a running Prefect server (PREFECT_API_URL); then start a worker with
    `prefect worker start --pool mlops-process`."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = start(needs=("prefect",))
        from flows.deployments import register

        deployed = register(settings)
        text = "\n".join(
            [f"registered {d['name']} ({d['schedule'] or 'no schedule'})" for d in deployed]
            + [f"start a worker: prefect worker start --pool {deployed[0]['work_pool']}"]
        )
        return {"deployments": deployed}, text, 0

    answer(as_json, work)


def up(as_json: JsonOption = False) -> None:
    """Server profile: start the Prefect server, the deployments' worker, the MLflow server
    and the prediction service as local processes (PostgreSQL and Redis must be running);
    wait until each is healthy. Idempotent: what already runs is left alone."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = start()
        from entrypoints.supervisor import start_services

        found = start_services(settings, on_progress=lambda line: typer.echo(line, err=True))
        return found, _status_text(settings, found), _status_code(found)

    answer(as_json, work)


def down(as_json: JsonOption = False) -> None:
    """Stop the services `mlops up` started (PostgreSQL, Redis and all state stay)."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = start()
        from entrypoints.supervisor import stop_services

        found = stop_services(settings, on_progress=lambda line: typer.echo(line, err=True))
        return found, _status_text(settings, found), 0

    answer(as_json, work)


def status(as_json: JsonOption = False) -> None:
    """Each service's health, address and pid; exit 1 unless all are healthy."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = start()
        from entrypoints.supervisor import service_statuses

        found = service_statuses(settings)
        return found, _status_text(settings, found), _status_code(found)

    answer(as_json, work)


def _status_text(settings: Settings, found: dict[str, Any]) -> str:
    lines = []
    for name, s in found["services"].items():
        health = "healthy" if s["healthy"] else "DOWN"
        pid = f"pid {s['pid']}" if s["pid"] else ""
        detail = f"  ({s['detail']})" if s["detail"] and not s["healthy"] else ""
        lines.append(f"{name:<9} {health:<8} {s['url'] or '':<40} {pid}{detail}")
    lines.append(f"pids: {settings.home / 'services'}; logs: {settings.logs_dir}")
    return "\n".join(lines)


def _status_code(found: dict[str, Any]) -> int:
    return 0 if all(s["healthy"] for s in found["services"].values()) else EXIT_FAILURE


def show_settings(as_json: JsonOption = False) -> None:
    """Print the settings in force (after MLOPS_* variables)."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = start()  # an unknown use case is refused like any bad setting
        values = json.loads(settings.model_dump_json())
        return values, "\n".join(f"{k}: {v}" for k, v in values.items()), 0

    answer(as_json, work)
