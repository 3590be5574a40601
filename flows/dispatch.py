"""Run a lifecycle flow where the profile says: in this process (`local`), or on a worker
through its deployment in prefect.yaml (`server`: `run_deployment`, the run visible on the
Prefect server). Either way the caller gets the flow's typed result or its exception, and a
caller that stops waiting (Ctrl-C, SIGTERM, the server not answering its polls) cancels the run
it was waiting for: nothing it started goes on running on the worker."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar

from mlops.config.interrupts import Interrupted, stop_signals_held
from mlops.config.settings import Settings

if TYPE_CHECKING:
    from uuid import UUID

    from prefect import Flow
    from prefect.client.schemas.objects import FlowRun
    from prefect.states import State

T = TypeVar("T")
# A run that has not finished by then is reported, not waited for forever.
DEPLOYED_RUN_TIMEOUT_SECONDS = 3600
POLL_SECONDS = 1.0  # run_deployment's own default is 5 s, added to every deployed run

log = logging.getLogger(__name__)


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
    # A worker polling every 2 s started the run before `run_deployment` had returned its id,
    # and an interruption in between left it running: the run created must be known first.
    with stop_signals_held() as held:
        created = run_deployment(deployment, parameters=parameters, timeout=0)
    assert isinstance(created, FlowRun)  # called from sync code: not a coroutine
    if held:
        _cancel(created.id)
        raise Interrupted(held[0])
    try:
        run = _finished(created.id)
    except BaseException:  # Ctrl-C or SIGTERM (mlops.config.interrupts), or no answer to a poll
        # A caller that stops waiting, for whatever reason, leaves nothing running behind it:
        # its result would reach nobody, and a rerun would start the step a second time.
        _cancel(created.id)
        raise
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


def _finished(run_id: UUID) -> FlowRun:
    """The run once it reached a final state, or as it is after DEPLOYED_RUN_TIMEOUT_SECONDS."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + DEPLOYED_RUN_TIMEOUT_SECONDS
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run_id)
            if (run.state is not None and run.state.is_final()) or time.monotonic() > deadline:
                return run
            time.sleep(POLL_SECONDS)


def _cancel(run_id: UUID) -> None:
    """Ask the worker to stop the run (it kills the run's process on `Cancelling`). Best effort
    within the interrupted command's last seconds: a server that does not answer is logged."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(
                run_id, Cancelling(message="the command that started it was interrupted")
            )
    except Exception:
        log.warning("could not ask the Prefect server to cancel flow run %s", run_id, exc_info=True)


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
