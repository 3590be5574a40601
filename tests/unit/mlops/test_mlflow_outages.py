""" "Absent" against "could not ask": how the platform reads MLflow's errors, asks again, and
fails closed. The drills with a real server behind a faulty proxy are in
tests/integration/flows/test_mlflow_drills.py."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Literal

import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

from mlops.config.errors import ServiceUnreachable
from mlops.config.settings import MLFLOW_HTTP_BOUNDS, Settings
from mlops.stores.mlflow_runs import (
    Retries,
    ask_mlflow,
    naming_outage,
    outage_cause,
    server_unreachable,
    without_credentials,
)
from mlops.stores.registry import absent

QUICK = Retries(attempts=3, delays_seconds=(0.01,), budget_seconds=30)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def refused() -> MlflowException:
    """What MLflow's client raises for a refused connection, caught from a real one."""
    try:
        requests.get(f"http://127.0.0.1:{closed_port()}/api", timeout=5)
    except requests.ConnectionError as err:
        try:
            raise MlflowException(f"API request to ... failed with exception {err}") from err
        except MlflowException as wrapped:
            return wrapped
    raise AssertionError("the closed port answered")


def test_a_refused_connection_is_an_outage_and_never_absent() -> None:
    error = refused()
    assert server_unreachable(error)
    assert outage_cause(error) == "connection refused"
    assert not absent(error)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Registered model alias champion not found.", INVALID_PARAMETER_VALUE),
        ("Registered Model with name=adclick not found", RESOURCE_DOES_NOT_EXIST),
    ],
)
def test_mlflow_saying_there_is_no_such_thing_is_absent(message: str, code: int) -> None:
    error = MlflowException(message, error_code=code)
    assert absent(error)
    assert not server_unreachable(error)


def test_other_answers_are_neither_absent_nor_an_outage() -> None:
    error = MlflowException("Invalid value 'x' for parameter 'name'", INVALID_PARAMETER_VALUE)
    assert not absent(error) and not server_unreachable(error)
    assert not server_unreachable(ValueError("a bug"))


def test_5xx_answers_without_an_mlflow_body_are_outages() -> None:
    proxy_503 = MlflowException(
        "API request to endpoint /api/2.0/mlflow/registered-models/alias failed with error "
        "code 503 != 200. Response body: 'Service Unavailable'"
    )
    assert outage_cause(proxy_503) == "HTTP 503"
    unavailable = MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE)
    assert outage_cause(unavailable) == "HTTP 503"
    assert outage_cause(MlflowException("Run 'x' not found")) is None


def test_an_artifact_download_mlflow_reports_as_text_is_an_outage_too() -> None:
    error = MlflowException(
        "The following failures occurred while downloading one or more artifacts from "
        "http://mlflow:5000/api/2.0/mlflow-artifacts/artifacts/1/x:\n##### File r.parquet "
        "#####\nAPI request to http://mlflow:5000/... failed with exception "
        "HTTPConnectionPool(host='mlflow', port=5000): Max retries exceeded with url: /x "
        "(Caused by ResponseError('too many 503 error responses'))"
    )
    assert outage_cause(error) == "HTTP 5xx"
    assert not absent(error)


def test_asking_again_until_mlflow_answers() -> None:
    answers: Iterator[str | Exception] = iter([refused(), refused(), "2"])

    def call() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert ask_mlflow("http://mlflow:5000", "@champion", call, QUICK) == "2"


def test_could_not_ask_ends_in_one_clean_failure_naming_mlflow() -> None:
    calls = []

    def call() -> None:
        calls.append(1)
        raise refused()

    with pytest.raises(ServiceUnreachable) as raised:
        ask_mlflow("http://admin:secret@mlflow:5000", "@champion", call, QUICK)
    assert len(calls) == QUICK.attempts
    assert str(raised.value) == (
        "MLflow at http://mlflow:5000 does not answer (connection refused): is it up? "
        "`mlops status`"
    )
    assert server_unreachable(raised.value)  # the flows' task retries still see an outage


def test_an_answer_is_never_asked_again() -> None:
    calls = []

    def call() -> None:
        calls.append(1)
        raise MlflowException("Registered model alias x not found", INVALID_PARAMETER_VALUE)

    with pytest.raises(MlflowException):
        ask_mlflow("http://mlflow:5000", "@x", call, QUICK)
    assert len(calls) == 1


def test_the_time_budget_stops_asking_before_the_attempts_run_out() -> None:
    calls = []

    def call() -> None:
        calls.append(1)
        raise refused()

    slow = Retries(attempts=10, delays_seconds=(0.2,), budget_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable):
        ask_mlflow("http://mlflow:5000", "@champion", call, slow)
    assert len(calls) < 10
    assert time.monotonic() - started < 10


def test_naming_an_outage_leaves_other_errors_alone() -> None:
    outage = refused()
    with (
        pytest.raises(ServiceUnreachable, match="at http://mlflow:5000"),
        naming_outage("http://mlflow:5000"),
    ):
        raise outage
    with pytest.raises(KeyError), naming_outage("http://mlflow:5000"):
        raise KeyError("x")


def test_urls_are_printed_without_credentials() -> None:
    assert without_credentials("http://u:p@host:5000/x") == "http://host:5000/x"
    assert without_credentials("sqlite:////home/mlflow.db") == "sqlite:////home/mlflow.db"


@pytest.mark.parametrize("profile", ["local", "server"])
def test_one_mlflow_request_is_bounded_in_every_profile(
    tmp_path, profile: Literal["local", "server"]
) -> None:
    env = Settings(home=tmp_path, profile=profile).library_environment()
    for key, value in MLFLOW_HTTP_BOUNDS.items():
        assert env[key] == value
    retries = int(env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    timeout = int(env["MLFLOW_HTTP_REQUEST_TIMEOUT"])
    assert retries <= 2 and timeout <= 30
