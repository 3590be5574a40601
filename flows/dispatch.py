"""Run a lifecycle flow where the profile says: in this process (`local`), or on a worker
through its deployment in prefect.yaml (`server`: `run_deployment`, the run visible on the
Prefect server). Either way the caller gets the flow's typed result or its exception."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from mlops.config.settings import Settings

if TYPE_CHECKING:
    from prefect import Flow

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

    deployment = deployment_of(flow)
    run = run_deployment(deployment, parameters=parameters, timeout=DEPLOYED_RUN_TIMEOUT_SECONDS)
    assert isinstance(run, FlowRun)  # called from sync code: not a coroutine
    state = run.state
    if state is not None and state.is_completed():
        return state.result()
    outcome = state.result(raise_on_failure=False) if state is not None else None
    if isinstance(outcome, BaseException):
        raise outcome  # the flow's own exception, as a local run raises it
    where = f"{deployment} run {run.name} ({run.id})"
    raise DeployedRunFailed(
        f"{where} ended {state.name if state else 'without a state'}: "
        f"{state.message if state else ''}"
    )
