"""A caller that stops waiting for its deployed run, whatever stopped it, cancels the run: its
result would reach nobody, and a rerun would start the same step a second time beside it."""

from __future__ import annotations

from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr

from flows import dispatch
from mlops.config.interrupts import Interrupted
from mlops.config.settings import Settings


@pytest.mark.parametrize(
    "stopped_by",
    [Interrupted(2), httpx.ConnectError("the Prefect server went away mid-poll")],
    ids=["ctrl-c", "no answer to a poll"],
)
def test_a_caller_that_stops_waiting_cancels_the_run_it_started(
    stopped_by: BaseException, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from prefect import flow
    from prefect.client.schemas.objects import FlowRun

    created = FlowRun(id=uuid4(), name="uber-oryx", flow_id=uuid4())
    cancelled = []
    monkeypatch.setattr("mlops.stores.services.require", lambda settings, services: None)
    monkeypatch.setattr("flows.deployments.deployment_of", lambda flow: "train/train")
    monkeypatch.setattr("prefect.deployments.run_deployment", lambda *args, **kwargs: created)

    def stop_waiting(run_id):
        raise stopped_by

    monkeypatch.setattr(dispatch, "_finished", stop_waiting)
    monkeypatch.setattr(dispatch, "_cancel", cancelled.append)
    settings = Settings(
        home=tmp_path,
        profile="server",
        postgres_dsn=SecretStr("postgresql://postgres@127.0.0.1:5432/x"),
        redis_url=SecretStr("redis://127.0.0.1:6379/0"),
    )

    with pytest.raises(type(stopped_by)):
        dispatch.run_flow(settings, flow(lambda: None, name="train"))
    assert cancelled == [created.id]
