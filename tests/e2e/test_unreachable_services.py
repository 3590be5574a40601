"""The server profile with every service at a port nobody listens on: each command that needs
a service fails within a minute with one paragraph naming the service and its URL (exit 1),
never in a library's words; `mlops status` reports each service down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.cli import MLOPS

pytestmark = [pytest.mark.e2e, pytest.mark.server]  # subprocesses, each its own CLI

SERVICES = ("prefect", "mlflow", "postgres", "redis", "serving")
LIBRARY_WORDS = ("Traceback", "MlflowException", "HTTPConnectionPool", "Max retries", "Errno")
BOUND_SECONDS = 60
# A few at a time: on two busy cores, thirteen CLIs at once would measure the machine.
PARALLEL = 4


@pytest.fixture(scope="module")
def outage(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """The server profile's environment with each service at a closed port of its own, and
    each service's URL as messages show it."""
    sockets = [socket.socket() for _ in SERVICES]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))  # all bound at once: five different ports
    port = {name: sock.getsockname()[1] for name, sock in zip(SERVICES, sockets, strict=True)}
    for sock in sockets:
        sock.close()
    home = tmp_path_factory.mktemp("unreachable")
    (home / "landing").mkdir()
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLOPS_", "PREFECT_", "MLFLOW_", "BENTOML_"))
    }
    env = {
        **inherited,
        "MLOPS_PROFILE": "server",
        "MLOPS_HOME": str(home),
        "MLOPS_UI__PREFECT_PORT": str(port["prefect"]),
        "MLOPS_UI__MLFLOW_PORT": str(port["mlflow"]),
        # A password that must not be shown.
        "MLOPS_POSTGRES_DSN": f"postgresql://postgres:s3cret@127.0.0.1:{port['postgres']}/postgres",
        "MLOPS_REDIS_URL": f"redis://127.0.0.1:{port['redis']}/0",
        "MLOPS_SERVING__PORT": str(port["serving"]),
    }
    urls = {
        "the Prefect API": f"http://127.0.0.1:{port['prefect']}/api",
        "MLflow": f"http://127.0.0.1:{port['mlflow']}",
        "PostgreSQL": f"postgresql://127.0.0.1:{port['postgres']}/postgres",
        "Redis": f"redis://127.0.0.1:{port['redis']}/0",
    }
    yield env, urls
    if any((home / "services").glob("*.json")):  # `up` got further than it should have
        subprocess.run([MLOPS, "down"], env=env, capture_output=True, timeout=120, check=False)


# Each command that needs a service, and the services it may name (the first it needs that
# does not answer: here all of them).
COMMANDS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "models": (["models"], ("MLflow",)),
    "train": (["train"], ("the Prefect API", "MLflow", "PostgreSQL", "Redis")),
    "monitor": (["monitor"], ("the Prefect API", "MLflow", "PostgreSQL", "Redis")),
    "promote": (["promote", "1", "--reason", "drill"], ("MLflow", "the Prefect API")),
    "rollback": (["rollback", "--reason", "drill"], ("MLflow", "the Prefect API")),
    "ingest": (["ingest", "{home}/landing"], ("the Prefect API", "PostgreSQL", "Redis")),
    "serve": (["serve"], ("MLflow", "Redis")),
    "deploy": (["deploy"], ("the Prefect API",)),
    "features": (["features", "--user-id", "1", "--ad-id", "2"], ("PostgreSQL", "Redis")),
    "package": (["package"], ("MLflow",)),
    "predict": (["predict"], ("the Prefect API", "MLflow", "PostgreSQL")),
    "run": (["run"], ("the Prefect API", "MLflow", "PostgreSQL", "Redis")),
    "up": (["up"], ("PostgreSQL", "Redis")),
}


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    began = time.monotonic()
    done = subprocess.run(
        [MLOPS, *(a.format(home=env["MLOPS_HOME"]) for a in args), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3 * BOUND_SECONDS,  # a hang fails the test instead of holding the suite
        check=False,
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - began


def test_every_command_against_refusing_services_fails_within_a_minute_naming_one(
    outage,
) -> None:
    env, urls = outage
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {name: pool.submit(_run, args, env) for name, (args, _) in COMMANDS.items()}
        ran = {name: future.result() for name, future in futures.items()}

    took = {name: round(elapsed, 1) for name, (_, _, _, elapsed) in ran.items()}
    print(f"seconds to exit, {PARALLEL} at a time: {took}")
    for name, (code, stdout, stderr, elapsed) in ran.items():
        named = [service for service in COMMANDS[name][1] if f"{service} at " in stderr]
        assert code == 1, f"{name}: exit {code}: {stderr}"
        assert elapsed < BOUND_SECONDS, f"{name} took {elapsed:.0f} s"
        assert len(named) == 1, f"{name} names none of {COMMANDS[name][1]}: {stderr}"
        service = named[0]
        assert f"{service} at {urls[service]} does not answer (connection refused)" in stderr
        assert stderr.count("\n") == 1, f"{name}: more than one paragraph: {stderr}"
        assert "s3cret" not in stderr + stdout
        assert not [w for w in LIBRARY_WORDS if w in stderr], f"{name}: {stderr}"
        assert json.loads(stdout)["error"] in stderr  # --json: the same paragraph


def test_status_reports_each_service_down_within_a_minute(outage) -> None:
    env, urls = outage

    code, stdout, stderr, elapsed = _run(["status"], env)

    services = json.loads(stdout)["services"]
    assert code == 1 and elapsed < BOUND_SECONDS
    assert not any(s["healthy"] for s in services.values())
    assert services["postgres"]["url"] == urls["PostgreSQL"]
    assert services["redis"]["url"] == urls["Redis"]
    assert services["postgres"]["detail"] == services["redis"]["detail"] == "connection refused"
    assert services["mlflow"]["url"] == urls["MLflow"]
    assert urls["the Prefect API"].removesuffix("/api") == services["prefect"]["url"]
    assert "s3cret" not in stdout + stderr and "Traceback" not in stderr
