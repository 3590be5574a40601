"""The server profile end to end, as a user runs it: `mlops up` starts a Prefect server and an
MLflow server on the machine's PostgreSQL, a process worker and the prediction service, all
bound beyond loopback with their credentials; `mlops run` then drives the lifecycle through
the worker's deployments, with features in Redis. One stack for the module (a start costs
about a minute); the lifecycle runs once, the other tests read what it left.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.session import SERVICE_WORKERS

pytestmark = pytest.mark.e2e
MLOPS = str(Path(sys.executable).with_name("mlops"))
PREFECT = str(Path(sys.executable).with_name("prefect"))
# Days 0-6 train the first champion; day 7 is served, ingested and monitored.
DAYS, EVENTS_PER_DAY = 8, 1_500
# The machine's Redis is shared (another checkout's tests may run at the same time): the
# module claims an empty database of its own and empties it afterwards.
REDIS_CLAIM = "mlops-tests:claimed"
PREFECT_AUTH = "mlops:" + secrets.token_hex(8)
MLFLOW_PASSWORD = secrets.token_hex(12)
API_KEY = secrets.token_hex(16)
# PostgreSQL here trusts local connections: any password works, and this one must show
# nowhere another local user can read it.
DATABASE_PASSWORD = secrets.token_hex(12)


class Stack:
    """The running server profile: its environment and clients for what the tests read."""

    def __init__(self, home: Path, ports: dict[str, int], prefix: str, redis_db: int) -> None:
        self.home = home
        self.prefix = prefix
        self.redis = redis_db
        self.prefect_api = f"http://127.0.0.1:{ports['prefect']}/api"
        self.mlflow_url = f"http://127.0.0.1:{ports['mlflow']}"
        self.serving_url = f"http://127.0.0.1:{ports['serving']}"
        self.redis_url = f"redis://127.0.0.1:6379/{redis_db}"
        # Only what a user would set: the rest comes from the settings' defaults.
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PREFECT_"))
        }
        self.env = {
            **inherited,
            "MLOPS_PROFILE": "server",
            "MLOPS_HOME": str(home),
            "MLOPS_DATABASE_PREFIX": prefix,
            "MLOPS_POSTGRES_DSN": f"postgresql://postgres:{DATABASE_PASSWORD}@127.0.0.1:5432/postgres",
            "MLOPS_REDIS_URL": self.redis_url,
            "MLOPS_UI__HOST": "0.0.0.0",
            "MLOPS_UI__PREFECT_PORT": str(ports["prefect"]),
            "MLOPS_UI__MLFLOW_PORT": str(ports["mlflow"]),
            "MLOPS_SERVING__HOST": "0.0.0.0",
            "MLOPS_SERVING__PORT": str(ports["serving"]),
            "MLOPS_SERVING__POLL_SECONDS": "1",
            "MLOPS_SERVING__WORKERS": SERVICE_WORKERS,  # see tests/conftest.py
            # The infra check has its own tests; here it would add a service start per model.
            "MLOPS_SERVING__INFRA_CHECK": "false",
            "MLOPS_AUTH__PREFECT_AUTH_STRING": PREFECT_AUTH,
            "MLOPS_AUTH__MLFLOW_ADMIN_PASSWORD": MLFLOW_PASSWORD,
            "MLOPS_AUTH__MLFLOW_SECRET_KEY": secrets.token_hex(16),
            "MLOPS_AUTH__SERVING_API_KEY": API_KEY,
        }

    def mlops(self, *args: str, timeout: float = 600) -> tuple[int, Any, str]:
        done = subprocess.run(
            [MLOPS, *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return done.returncode, json.loads(done.stdout or "null"), done.stderr

    def prefect(self, path: str, body: dict | None = None) -> Any:
        return _json(self.prefect_api + path, body, basic=PREFECT_AUTH)

    def mlflow(self, path: str, body: dict | None = None) -> Any:
        return _json(self.mlflow_url + path, body, basic=f"admin:{MLFLOW_PASSWORD}")


def _json(
    url: str, body: dict | None = None, *, basic: str | None = None, bearer: str | None = None
) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    if basic:
        request.add_header("Authorization", "Basic " + base64.b64encode(basic.encode()).decode())
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _status(url: str, body: dict | None = None, **auth: str) -> int:
    try:
        _json(url, body, **auth)
    except urllib.error.HTTPError as err:
        return err.code
    except json.JSONDecodeError:  # answered, with a body that is not JSON (/livez)
        pass
    return 200


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _claim_redis_database() -> int:
    """An empty Redis database, claimed with a key no other test run can take."""
    import redis

    for db in range(15, 0, -1):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if client.dbsize() == 0 and client.set(REDIS_CLAIM, "1", nx=True, ex=7200):
            return db
    raise RuntimeError("no empty Redis database to claim")


def _release_redis_database(db: int) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()


def _redis_keys(db: int) -> int:
    import redis

    return redis.Redis(host="127.0.0.1", port=6379, db=db).dbsize() - 1  # less the claim


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mlops.config.settings import Settings
    from mlops.stores.databases import drop_databases

    prefect, mlflow, serving = _free_ports(3)
    prefix = f"t{secrets.token_hex(4)}"
    stack = Stack(
        tmp_path_factory.mktemp("server") / "home",
        {"prefect": prefect, "mlflow": mlflow, "serving": serving},
        prefix,
        _claim_redis_database(),
    )
    try:
        code, _, stderr = stack.mlops("up")
        assert code == 0, stderr[-3000:]
        yield stack
    finally:
        stack.mlops("down")
        drop_databases(Settings(database_prefix=prefix))
        _release_redis_database(stack.redis)


@pytest.fixture(scope="module")
def lifecycle(stack: Stack) -> dict:
    code, result, stderr = stack.mlops(
        "run", "--days", str(DAYS), "--events-per-day", str(EVENTS_PER_DAY), timeout=1800
    )
    assert code == 0, stderr[-3000:]
    return result


def test_up_reports_every_service_healthy_and_is_idempotent(stack: Stack) -> None:
    code, status, _ = stack.mlops("status")
    assert code == 0
    services = status["services"]
    assert set(services) >= {"postgres", "redis", "prefect", "mlflow", "worker", "serving"}
    assert all(s["healthy"] for s in services.values()), services
    pids = {name: s["pid"] for name, s in services.items()}

    code, again, _ = stack.mlops("up")
    assert code == 0
    assert {name: s["pid"] for name, s in again["services"].items()} == pids  # nothing restarted


def test_the_lifecycle_runs_through_the_worker_and_reports_to_the_servers(
    stack: Stack, lifecycle: dict
) -> None:
    # Flow runs: on the Prefect server, started from the deployments, run by the worker.
    runs = stack.prefect("/flow_runs/filter", {"limit": 200})
    flows = {f["id"]: f["name"] for f in stack.prefect("/flows/filter", {})}
    completed = [r for r in runs if r["state_type"] == "COMPLETED" and r["deployment_id"]]
    assert {"ingest", "train", "monitor"} <= {flows[r["flow_id"]] for r in completed}

    # MLflow: the runs and the model version live in the server's PostgreSQL store.
    import psycopg

    from mlops.config.settings import Settings

    url = Settings(database_prefix=stack.prefix).database_url("mlflow", "psycopg")
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as db:
        versions = db.execute("SELECT count(*) FROM model_versions").fetchone()[0]
        runs_logged = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert versions >= 1 and runs_logged >= 1
    version = lifecycle["bootstrap"]["model_version"]
    model = stack.mlflow("/api/2.0/mlflow/registered-models/search", None)
    assert any(
        v["version"] == version
        for m in model["registered_models"]
        for v in m.get("latest_versions", [])
    ) or versions >= int(version)

    # Redis holds the online features; the day's traffic was served from them.
    assert _redis_keys(stack.redis) > 0
    (day,) = lifecycle["days"]
    assert day["served"] > 0 and day["refused"] == 0


def test_each_cron_schedule_has_its_next_runs_scheduled(stack: Stack, lifecycle: dict) -> None:
    """prefect.yaml's schedules reach the server's scheduler, which creates their runs ahead
    (it once could not: SQLAlchemy 2.1 broke its insert, and no schedule ever fired)."""
    from flows.deployments import deployment_of, deployments

    scheduled = [deployment_of(d.load_flow()) for d in deployments() if d.cron]
    assert scheduled
    waiting: dict[str, int] = {}
    deadline = time.monotonic() + 180  # the scheduler looks every 60 s; the lifecycle took longer
    while time.monotonic() < deadline:
        for name in scheduled:
            deployment = stack.prefect(f"/deployments/name/{name}")
            query = {
                "deployments": {"id": {"any_": [deployment["id"]]}},
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
            }
            waiting[name] = len(stack.prefect("/flow_runs/filter", query))
        if all(waiting.values()):
            return
        time.sleep(2)
    raise AssertionError(f"scheduled runs per deployment: {waiting}")


def test_predictions_are_served_from_redis_with_the_api_key(
    stack: Stack, lifecycle: dict, use_case
) -> None:
    response = _json(stack.serving_url + "/predict", {"user_id": 1, "ad_id": 1}, bearer=API_KEY)
    assert 0 < response[use_case.score_name] < 1
    # A known entity: every stored feature came from Redis; only the request's own context
    # (not sent here) is missing.
    assert set(response["missing_features"]) <= set(use_case.request_columns), response


def test_every_service_bound_wider_refuses_requests_without_credentials(stack: Stack) -> None:
    # Prefect and MLflow: basic auth; the prediction service: a bearer token.
    assert _status(stack.prefect_api + "/flows/filter", {}) == 401
    assert _status(stack.prefect_api + "/flows/filter", {}, basic="mlops:wrong") == 401
    assert isinstance(stack.prefect("/flows/filter", {}), list)

    search = stack.mlflow_url + "/api/2.0/mlflow/experiments/search"
    assert _status(search, {"max_results": 1}) == 401
    assert _status(search, {"max_results": 1}, basic="admin:wrong") == 401
    assert "experiments" in stack.mlflow("/api/2.0/mlflow/experiments/search", {"max_results": 1})

    predict = stack.serving_url + "/predict"
    assert _status(predict, {"user_id": 1, "ad_id": 1}) == 401
    assert _status(predict, {"user_id": 1, "ad_id": 1}, bearer="wrong") == 401
    assert _status(stack.serving_url + "/livez") == 200  # probes stay open


def test_up_bound_wider_without_credentials_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PREFECT_"))} | {
        "MLOPS_PROFILE": "server",
        "MLOPS_HOME": str(tmp_path),
        "MLOPS_UI__HOST": "0.0.0.0",
    }
    done = subprocess.run(
        [MLOPS, "up"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert "MLOPS_AUTH__PREFECT_AUTH_STRING" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_killed_worker_leaves_its_run_crashed_and_a_rerun_completes(
    stack: Stack, lifecycle: dict, use_case
) -> None:
    from datetime import date
    from uuid import uuid4

    # A new day lands; the scheduled ingest (no parameters: every pending batch) takes it.
    use_case.generator.generate(
        stack.home / "landing", start=date(2026, 3, 1), days=1, events_per_day=500
    )
    # Asked before the run starts: a CLI call between "running" and the kill gave a busy
    # machine time to finish the run first (it completed instead of crashing, once in CI).
    _, status, _ = stack.mlops("status")
    worker_pid = status["services"]["worker"]["pid"]
    deployment = stack.prefect("/deployments/name/ingest/ingest")
    run = stack.prefect(
        f"/deployments/{deployment['id']}/create_flow_run", {"name": f"drill-{uuid4().hex[:6]}"}
    )
    running = _wait_for(stack, run["id"], {"RUNNING"})
    infrastructure_pid = running["infrastructure_pid"]  # the run's process id
    os.killpg(worker_pid, signal.SIGKILL)  # the worker and the run it started, at once
    run_pid = int(infrastructure_pid.rpartition(":")[2])
    with contextlib.suppress(ProcessLookupError):  # in case it ran in a group of its own
        os.kill(run_pid, signal.SIGKILL)

    code, _, stderr = stack.mlops("up")  # restarts the worker; finds the orphaned run
    assert code == 0, stderr[-2000:]
    crashed = stack.prefect(f"/flow_runs/{run['id']}")
    assert crashed["state_type"] == "CRASHED", crashed["state"]
    assert "died" in crashed["state"]["message"]

    # The rerun as a user starts one, from Prefect's CLI: no parameter, every pending batch.
    rerun = subprocess.run(
        [PREFECT, "deployment", "run", "ingest/ingest", "--watch"],
        env={
            **stack.env,
            "PREFECT_HOME": str(stack.home / "prefect"),
            "PREFECT_API_URL": stack.prefect_api,
            "PREFECT_API_AUTH_STRING": PREFECT_AUTH,
        },
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]  # 0: Completed
    rerun_id = re.search(r"UUID: ([0-9a-f-]{36})", rerun.stdout)
    assert rerun_id, rerun.stdout[-3000:]
    # Named by its batch (none left if the killed run had committed it before dying).
    named = stack.prefect(f"/flow_runs/{rerun_id.group(1)}")["name"]
    assert named in ("ingest-2026-03-01", "ingest-no-batch"), named


# What `mlops run` does for each lifecycle step in this profile (flows.dispatch.run_flow): the
# run goes to the worker through the step's deployment, and this process waits for it. The
# settings are applied before Prefect is imported, as every command applies them. A thousand
# trials keep the run busy until the cancellation reaches it (a busy machine once finished the
# card's 6 before); the card's time budget (900 s) would stop it, with a message, if that failed.
DISPATCH_TRAIN = (
    "from mlops.config.runtime import setup; settings = setup(); "
    "from flows.dispatch import run_flow; from flows.train import train; "
    "run_flow(settings, train, search_trials=1000)"
)


def test_an_interrupted_caller_cancels_the_run_it_started_on_the_worker(
    stack: Stack, lifecycle: dict
) -> None:
    deployment = stack.prefect("/deployments/name/train/train")
    caller = subprocess.Popen(
        [sys.executable, "-c", DISPATCH_TRAIN],
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running = _wait_for_a_run(stack, deployment["id"], "RUNNING", caller)
        caller.send_signal(signal.SIGINT)
        # How fast the bare caller then exits is not the point (`mlops run` bounds its own way
        # out: tests/e2e/test_lifecycle.py): the run it left must not go on.
        ended = _wait_for(stack, running["id"], {"CANCELLED", "COMPLETED", "FAILED", "CRASHED"})
    except AssertionError as failed:
        raise AssertionError(f"{failed}; the caller {_stopped(caller)}") from None
    finally:
        _stopped(caller)
    # The cancellation reached the server while the run went on (Prefect records a Cancelling
    # state only on a run not yet final), and the run did not complete. The worker's kill
    # usually ends it CANCELLED; under load the killed process sometimes reports FAILED first.
    states = stack.prefect(f"/flow_run_states/?flow_run_id={running['id']}")
    assert any(s["type"] == "CANCELLING" for s in states), [s["type"] for s in states]
    assert ended["state_type"] in ("CANCELLED", "FAILED", "CRASHED"), ended["state"]


def _stopped(command: subprocess.Popen[str]) -> str:
    """How the command ended, and what it said on stderr: killed first if it still runs."""
    command.kill()  # no-op once it exited
    if command.stderr is None or command.stderr.closed:  # already read
        return f"exited {command.wait()}"
    told = command.communicate()[1]
    return f"exited {command.returncode}: {told[-3000:]}"


def _wait_for_a_run(
    stack: Stack, deployment_id: str, state_type: str, command: subprocess.Popen[str]
) -> dict:
    """The newest run of a deployment, once it is in `state_type` with its process started,
    while the `command` that asked for it still runs."""
    query = {
        "deployments": {"id": {"any_": [deployment_id]}},
        "sort": "EXPECTED_START_TIME_DESC",
        "limit": 1,
    }
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if command.poll() is not None:
            raise AssertionError(f"exited {command.returncode}: {command.communicate()[1][-3000:]}")
        for run in stack.prefect("/flow_runs/filter", query):
            if run["state_type"] == state_type and run.get("infrastructure_pid"):
                return run
        time.sleep(0.5)
    raise AssertionError(f"no {state_type} run of deployment {deployment_id} within 600 s")


def _wait_for(stack: Stack, run_id: str, types: set[str], timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = stack.prefect(f"/flow_runs/{run_id}")
        if run["state_type"] in types and (
            run["state_type"] != "RUNNING" or run.get("infrastructure_pid")
        ):
            return run
        time.sleep(0.5)
    raise AssertionError(f"flow run {run_id} not in {types} within {timeout} s: {run['state']}")


def test_no_secret_on_a_command_line_or_in_a_file_other_users_can_read(
    stack: Stack, lifecycle: dict
) -> None:
    """After `mlops up` and a lifecycle run: `ps` (what every local user sees) shows no
    password, and no file under MLOPS_HOME that others may read holds one; the services'
    records and logs are the owner's alone."""
    secret_values = [DATABASE_PASSWORD, MLFLOW_PASSWORD, PREFECT_AUTH.split(":", 1)[1], API_KEY]
    processes = subprocess.run(
        ["ps", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout
    assert stack.home.as_posix() in processes or "mlflow" in processes  # the stack is up
    assert not [s for s in secret_values if s in processes]

    exposed = []
    for path in stack.home.rglob("*"):
        if path.is_symlink() or not path.is_file() or not path.stat().st_mode & 0o044:
            continue
        content = path.read_bytes()
        exposed += [
            f"{path}: secret {i}" for i, s in enumerate(secret_values) if s.encode() in content
        ]
    assert not exposed

    private = [*(stack.home / "services").glob("*.json"), *(stack.home / "logs").glob("*.log")]
    assert private
    assert not [p for p in private if p.stat().st_mode & 0o077], "readable by others"
    # MLflow creates its auth database (password hashes) there with the default mode.
    assert not (stack.home / "services").stat().st_mode & 0o077
    records = [json.loads(p.read_text()) for p in (stack.home / "services").glob("*.json")]
    assert all("--backend-store-uri" not in r["command"] for r in records)

    # The workers hand their flow results back as JSON (nothing is unpickled).
    stored = list((stack.home / "prefect" / "storage").glob("*"))
    assert stored
    for path in stored:
        json.loads(path.read_bytes())
