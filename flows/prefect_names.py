"""Names of what a flow leaves in Prefect: its run's name and its artifacts' keys.

Every flow run is named by what it works on, so the Prefect UI's list of runs reads as the
platform's history: `ingest-2026-01-08`, `train-2026-01-07`, `monitor-2026-01-11`,
`promote-v3`, `rollback-v3-to-v2`. A name known from the run's parameters is given at its
start (`flow_run_name`); one the flow learns as it runs (the pending batches, the day trained
on) replaces it then (`name_flow_run`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def name_flow_run(name: str) -> None:
    """Give the running flow run (a subflow too) the name its MLflow run has; outside a flow
    run (`train.fn(...)`), nothing."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if flow_run.id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, name=name)


def from_parameters(name: Callable[[dict[str, Any]], str]) -> Callable[[], str]:
    """A `flow_run_name` for `@flow`: Prefect calls it without arguments when the run starts;
    it names the run by the run's parameters."""

    def flow_run_name() -> str:
        from prefect.runtime import flow_run

        return name(flow_run.parameters)

    return flow_run_name


def batches_run_name(action: str, batch_ids: Sequence[str]) -> str:
    """A run over landed batches: `ingest-2026-01-08` for one, `ingest-2026-01-01-to-2026-01-07`
    for several (the first and the last in the order they run), `ingest-no-batch` for none."""
    if not batch_ids:
        return f"{action}-no-batch"
    if len(batch_ids) == 1:
        return f"{action}-{batch_ids[0]}"
    return f"{action}-{batch_ids[0]}-to-{batch_ids[-1]}"


def batch_dirs_run_name(action: str) -> Callable[[dict[str, Any]], str]:
    """The name of a run of a flow taking `batch_dirs` (each batch named by its folder, its id
    unless its manifest says otherwise); without them, every pending batch: `<action>-pending`
    until the flow knows which."""

    def name(parameters: dict[str, Any]) -> str:
        batch_dirs = parameters.get("batch_dirs")
        if batch_dirs is None:
            return f"{action}-pending"
        return batches_run_name(action, [Path(d).name for d in batch_dirs])

    return name


def promote_run_name(parameters: dict[str, Any]) -> str:
    """`promote-v3`: the version made champion by hand."""
    return f"promote-v{parameters['version']}"


# A rollback's versions are known once the registry answered; until then, what it works on.
def reject_run_name(parameters: dict[str, Any]) -> str:
    """`reject-v4`: the version rejected by hand."""
    return f"reject-v{parameters['version']}"


ROLLBACK_RUN_NAME = "rollback-champion"


def rollback_run_name(rolled_back: str, restored: str) -> str:
    """`rollback-v3-to-v2`: from the rolled-back version to the restored one."""
    return f"rollback-v{rolled_back}-to-v{restored}"


def artifact_key(*parts: str) -> str:
    """`parts` as a Prefect artifact key: lowercase letters, digits and dashes only."""
    text = "-".join(parts).lower()
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")
