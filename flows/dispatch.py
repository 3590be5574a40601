"""Run a lifecycle flow where the profile says: in this process (`local`), or on a worker
through its deployment in prefect.yaml (`server`: `run_deployment`, the run visible on the
Prefect server). Either way the caller gets the flow's typed result or its exception."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from mlops.config.settings import Settings

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.states import State

T = TypeVar("T")
# A run that has not finished by then is reported, not waited for forever.
DEPLOYED_RUN_TIMEOUT_SECONDS = 3600


class DeployedRunFailed(RuntimeError):
    """A deployment's flow run ended in a state other than Completed."""


def run_flow(settings: Settings, flow: Flow[..., T], **parameters: Any) -> T:
    """`flow(**parameters)`, locally or as a run of the flow's deployment."""
    if settings.profile != "server":
        return flow(**parameters)
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    from flows.deployments import deployment_of
    from flows.results import read_exception, read_result
    from mlops.stores.services import require

    # Asked first: a Prefect API that went away between two runs (`mlops run`'s days, a
    # monitor's retrain) is said in seconds, not after the client's retries of each call.
    require(settings, ("prefect",))

    deployment = deployment_of(flow)
    run = run_deployment(deployment, parameters=parameters, timeout=DEPLOYED_RUN_TIMEOUT_SECONDS)
    assert isinstance(run, FlowRun)  # called from sync code: not a coroutine
    state = run.state
    if state is not None and state.is_completed():
        return read_result(_stored(settings, state), flow.fn)
    if state is not None and state.is_failed() and _stored_key(state) is not None:
        raise read_exception(_stored(settings, state), flow.fn)  # as a local run raises it
    where = f"{deployment} run {run.name} ({run.id})"
    raise DeployedRunFailed(
        f"{where} ended {state.name if state else 'without a state'}: "
        f"{state.message if state else ''}"
    )


def _stored_key(state: State[Any]) -> str | None:
    """Where the run's result (or exception) was stored; None if it was not. A state read from
    the API holds the record's metadata; one from this process, the record itself."""
    data = state.data
    if isinstance(data, dict):
        return data.get("storage_key")
    found = getattr(data, "storage_key", None) or getattr(
        getattr(data, "metadata", None), "storage_key", None
    )
    return found if isinstance(found, str) else None


def _stored(settings: Settings, state: State[Any]) -> bytes:
    """The bytes of a run's stored result, read as a file: never through Prefect's reader,
    which deserializes with whatever the stored record names (pickle included)."""
    from flows.results import stored_bytes

    key = _stored_key(state)
    if key is None:
        raise DeployedRunFailed(f"the run stored no result ({state.name}): {state.message}")
    return stored_bytes(key, settings.prefect_home / "storage")
