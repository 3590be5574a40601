"""Asking a service before deciding: a probe with a few bounded tries, then `ServiceUnreachable`
naming the service and its URL; and a failure that happened anyway, read back as the outage
it was, from the clients' own exceptions (real clients against a port nobody listens on)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from mlops.config.errors import ServiceUnreachable
from mlops.config.settings import Settings
from mlops.stores import services
from mlops.stores.services import Endpoint, check, endpoints, require, unreachable_in

LIBRARY_WORDS = ("MlflowException", "HTTPConnectionPool", "Max retries", "Traceback", "Errno")


SERVICES = ("prefect", "mlflow", "postgres", "redis")


@pytest.fixture
def closed_ports() -> dict[str, int]:
    """A port nobody listens on for each service: bound together (so they differ), closed."""
    sockets = [socket.socket() for _ in SERVICES]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = {name: sock.getsockname()[1] for name, sock in zip(SERVICES, sockets, strict=True)}
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "PROBE_WAITS_SECONDS", (0.0, 0.0))


def _server_profile(ports: dict[str, int], monkeypatch: pytest.MonkeyPatch, tmp_path) -> Settings:
    """The server profile with its services at `ports`; nothing exported to this process."""
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{ports['prefect']}/api")
    return Settings(
        home=tmp_path,
        profile="server",
        mlflow_tracking_uri=f"http://127.0.0.1:{ports['mlflow']}",
        postgres_dsn=SecretStr(f"postgresql://postgres:s3cret@127.0.0.1:{ports['postgres']}/x"),
        redis_url=SecretStr(f"redis://:s3cret@127.0.0.1:{ports['redis']}/0"),
    )


def test_the_local_profile_asks_no_service(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert endpoints(Settings(home=tmp_path)) == {}  # SQLite files, an ephemeral Prefect


def test_each_probe_of_a_refusing_service_says_so_and_shows_no_password(
    closed_ports, monkeypatch, tmp_path
) -> None:
    found = endpoints(_server_profile(closed_ports, monkeypatch, tmp_path))

    assert set(found) == set(SERVICES)
    for name, endpoint in found.items():
        assert endpoint.probe() == "connection refused", endpoint.service
        assert f"127.0.0.1:{closed_ports[name]}" in endpoint.url
        assert "s3cret" not in endpoint.url


def test_a_hung_service_is_no_answer_in_time(hung_port, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(services, "PROBE_TIMEOUT_SECONDS", 0.3)
    ports = dict.fromkeys(SERVICES, hung_port)
    found = endpoints(_server_profile(ports, monkeypatch, tmp_path))
    assert found["mlflow"].probe().startswith("no answer in time")
    assert found["prefect"].probe().startswith("no answer in time")


def test_require_tries_three_times_then_names_the_service_and_its_url(no_waits) -> None:
    answers = iter(["connection refused", "connection refused", None])
    check(Endpoint("MLflow", "http://mlflow:5000", lambda: next(answers)))  # the third answers

    tries = []

    def refused() -> str:
        tries.append(1)
        return "connection refused"

    with pytest.raises(ServiceUnreachable) as raised:
        check(Endpoint("MLflow", "http://mlflow:5000", refused))
    assert len(tries) == 3
    assert str(raised.value) == (
        "MLflow at http://mlflow:5000 does not answer (connection refused): is it up? "
        "`mlops status`"
    )


def test_require_fails_at_the_first_service_that_does_not_answer(
    closed_ports, monkeypatch, tmp_path, no_waits
) -> None:
    settings = _server_profile(closed_ports, monkeypatch, tmp_path)
    began = time.monotonic()
    with pytest.raises(ServiceUnreachable) as raised:
        require(settings, ("redis", "mlflow"))
    assert time.monotonic() - began < 30  # tries without waits: seconds, not minutes
    assert raised.value.service == "Redis"
    assert raised.value.url == f"redis://127.0.0.1:{closed_ports['redis']}/0"


def _mlflow_refused(port: int) -> BaseException:
    """What MLflow's REST client raises for a refused connection (no retries)."""
    from mlflow.utils.rest_utils import MlflowHostCreds, http_request

    from mlops.config.runtime import skip_feast_runtime_type_checks

    skip_feast_runtime_type_checks()  # MLflow's first request imports Feast (a plugin)
    try:
        path = "/api/2.0/mlflow/registered-models/search"
        http_request(MlflowHostCreds(f"http://127.0.0.1:{port}"), path, "GET", max_retries=0)
    except Exception as err:
        return err
    raise AssertionError("nothing listens there")


def test_a_library_failure_from_a_refused_connection_names_the_service(
    closed_ports, monkeypatch, tmp_path
) -> None:
    settings = _server_profile(closed_ports, monkeypatch, tmp_path)
    mlflow_error = _mlflow_refused(closed_ports["mlflow"])
    try:  # as a flow run's failure carries it
        raise RuntimeError("train flow failed") from mlflow_error
    except RuntimeError as err:
        wrapped = err

    outage = unreachable_in(wrapped, settings)

    assert outage is not None and outage.service == "MLflow"
    assert str(outage) == (
        f"MLflow at http://127.0.0.1:{closed_ports['mlflow']} does not answer (connection "
        "refused): "
        "is it up? `mlops status`"
    )
    assert not any(words in str(outage) for words in LIBRARY_WORDS)


def test_the_clients_own_errors_are_read_as_their_services(
    closed_ports, monkeypatch, tmp_path
) -> None:
    import httpx
    import psycopg
    import redis

    settings = _server_profile(closed_ports, monkeypatch, tmp_path)

    def error_of(call) -> BaseException:
        try:
            call()
        except Exception as err:
            return err
        raise AssertionError("nothing listens there")

    postgres = error_of(lambda: psycopg.connect(settings.postgres_dsn.get_secret_value()))
    redis_error = error_of(
        lambda: redis.Redis.from_url(settings.redis_url.get_secret_value()).ping()
    )
    # Not PREFECT_API_URL's own path: an error about any request to that address.
    prefect_api = f"http://127.0.0.1:{closed_ports['prefect']}/api/flow_runs/"
    prefect = error_of(lambda: httpx.get(prefect_api))

    assert unreachable_in(postgres, settings).service == "PostgreSQL"
    assert unreachable_in(redis_error, settings).service == "Redis"
    assert unreachable_in(prefect, settings).service == "the Prefect API"
    for error in (postgres, redis_error, prefect):
        assert unreachable_in(error, settings).cause == "connection refused"


def test_an_error_of_another_kind_is_no_outage(tmp_path) -> None:
    assert unreachable_in(KeyError("no such key"), Settings(home=tmp_path)) is None
    assert unreachable_in(ValueError("bad value"), None) is None


def test_a_refused_connection_to_an_unknown_address_still_names_it(tmp_path) -> None:
    try:
        raise RuntimeError("request to http://elsewhere:8080/x failed") from ConnectionRefusedError(
            111, "Connection refused"
        )
    except RuntimeError as err:
        outage = unreachable_in(err, Settings(home=tmp_path))
    assert outage is not None and outage.url == "http://elsewhere:8080"
    assert outage.cause == "connection refused"


def test_a_service_unreachable_anywhere_in_the_chain_is_itself(tmp_path) -> None:
    reason = ServiceUnreachable("the Prefect API", "http://127.0.0.1:4200/api", "no answer")
    try:
        try:
            raise reason
        except ServiceUnreachable as err:
            raise RuntimeError("flow run failed") from err
    except RuntimeError as err:
        assert unreachable_in(err, Settings(home=tmp_path)) is reason


def test_each_probe_asks_with_its_own_services_credentials(monkeypatch, tmp_path) -> None:
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mlops.config.settings import AuthSettings

    asked: dict[str, str] = {}

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            token = (self.headers.get("Authorization") or "").removeprefix("Basic ")
            asked[self.path] = base64.b64decode(token).decode()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("PREFECT_API_URL", f"{url}/api")
    settings = Settings(
        home=tmp_path,
        mlflow_tracking_uri=url,
        auth=AuthSettings(
            prefect_auth_string=SecretStr("prefect:pw"),
            mlflow_admin_password=SecretStr("mlflow-password"),
        ),
    )
    try:
        found = endpoints(settings)
        assert found["prefect"].probe() is None and found["mlflow"].probe() is None
    finally:
        server.shutdown()
        server.server_close()
    assert asked == {"/api/health": "prefect:pw", "/health": "admin:mlflow-password"}
