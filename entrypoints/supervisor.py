"""`mlops up`, `mlops down`, `mlops status`: the server profile's services as local processes.

    PostgreSQL, Redis      already running (probed, never started here)
    prefect                `prefect server start` on PostgreSQL
    mlflow                 `mlflow server` on PostgreSQL, artifacts proxied to MLOPS_HOME
    serving                the prediction service (`bentoml serve`), following @champion
    worker                 `prefect worker start` on the deployments' work pool

Each started process runs in its own session (it outlives the command that started it), with
its pid in MLOPS_HOME/services/<name>.json and its output in MLOPS_HOME/logs/<name>.log. `up` is
idempotent: a service that answers its health check is left alone. Services that do not need
each other start at the same time (`WAVES`).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flows.deployments import work_pool
from mlops.config.errors import UserError
from mlops.config.runtime import open_private
from mlops.config.settings import MLFLOW_SERVER_JOBS_OFF, PROJECT_ROOT, Settings, is_loopback
from mlops.stores.databases import ensure_databases, postgres_problem, redis_problem
from mlops.stores.services import require

BIN = Path(sys.executable).parent
WORK_POOL = work_pool()
STOP_SECONDS = 20
PROBE_SECONDS = 3
MLFLOW_LOCAL_HOSTS = "localhost,localhost:*,127.0.0.1,127.0.0.1:*"
# Started together, wave by wave: each needs only the waves before it (the worker needs the
# deployments on the Prefect server; the service, the MLflow registry).
WAVES = (("prefect", "mlflow"), ("serving", "worker"))
WORKER_POLL_SECONDS = 2  # how often the worker asks the Prefect server for runs to start


@dataclass(frozen=True)
class ServiceStatus:
    healthy: bool
    url: str | None
    pid: int | None
    detail: str = ""  # why not healthy, or what a healthy service says about itself

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Service:
    """A process this module starts: how, where it answers, and how to tell it is healthy."""

    name: str
    url: str
    command: list[str]
    env: dict[str, str]
    problem: Callable[[], str | None]  # None: healthy
    startup_seconds: float


def services(settings: Settings) -> list[Service]:
    """The started services, in start order (each needs the ones before it)."""
    env = {**os.environ, **settings.library_environment(), **settings.environment()}
    home = settings.home
    prefect_api = settings.prefect_api_url or f"{settings.ui.prefect_url}/api"
    mlflow_url = settings.mlflow_tracking_uri or settings.ui.mlflow_url
    serving_url = f"http://{_client_host(settings.serving.host)}:{settings.serving.port}"
    auth = settings.auth
    prefect_auth = auth.prefect_auth_string.get_secret_value() if auth.prefect_auth_string else None
    mlflow_auth = (
        f"{auth.mlflow_admin_user}:{auth.mlflow_admin_password.get_secret_value()}"
        if auth.mlflow_admin_password
        else None
    )
    prefect_env = {
        **env,
        "PREFECT_API_DATABASE_CONNECTION_URL": settings.database_url("prefect", "asyncpg"),
        "PREFECT_UI_API_URL": prefect_api,
    }
    if prefect_auth:
        prefect_env["PREFECT_SERVER_API_AUTH_STRING"] = prefect_auth
    mlflow_command = [
        str(BIN / "mlflow"), "server",
        "--host", settings.ui.host, "--port", str(settings.ui.mlflow_port),
        "--artifacts-destination", str(home / "mlflow" / "artifacts"),
        "--serve-artifacts", "--workers", "1",
    ]  # fmt: skip
    # The backend URI carries the database password: in the environment (readable by this
    # user only, /proc/<pid>/environ), never on the command line every local user can read.
    mlflow_env = {
        **env,
        **MLFLOW_SERVER_JOBS_OFF,
        "MLFLOW_BACKEND_STORE_URI": settings.database_url("mlflow", "psycopg2"),
    }
    if mlflow_auth:
        mlflow_command += ["--app-name", "basic-auth"]
        mlflow_env.update(_mlflow_auth_env(settings))
    if settings.ui.mlflow_allowed_hosts:
        # The list replaces MLflow's default (localhost and private IPs): keep this machine in.
        allowed = f"{settings.ui.mlflow_allowed_hosts},{MLFLOW_LOCAL_HOSTS}"
        mlflow_command += ["--allowed-hosts", allowed]
    worker_name = f"mlops-{socket.gethostname()}"
    prefect_command = [
        str(BIN / "prefect"), "server", "start",
        "--host", settings.ui.host, "--port", str(settings.ui.prefect_port),
    ]  # fmt: skip
    worker_command = [
        str(BIN / "prefect"), "worker", "start",
        "--pool", WORK_POOL, "--type", "process", "--name", worker_name,
    ]  # fmt: skip
    serving_command = [
        str(BIN / "bentoml"), "serve", "serving.service:PredictionService",
        "--host", settings.serving.host, "--port", str(settings.serving.port),
    ]  # fmt: skip
    return [
        Service(
            "prefect",
            settings.ui.prefect_url,
            prefect_command,
            prefect_env,
            lambda: _http_problem(f"{prefect_api}/health", prefect_auth),
            settings.prefect_startup_timeout_seconds,
        ),
        Service(
            "mlflow",
            mlflow_url,
            mlflow_command,
            mlflow_env,
            lambda: _http_problem(f"{mlflow_url}/health", mlflow_auth),
            120,
        ),
        Service(
            "serving",
            serving_url,
            serving_command,
            env,
            lambda: _http_problem(f"{serving_url}/livez", None),
            settings.serving.startup_timeout_seconds,
        ),
        Service(
            "worker",
            f"{settings.ui.prefect_url}/work-pools/work-pool/{WORK_POOL}",
            worker_command,
            # Flow runs start from this checkout (prefect.yaml's pull step). The worker asks
            # for runs every WORKER_POLL_SECONDS, not Prefect's 10: `mlops run` dispatches a
            # run per lifecycle step and waited ~5 s for each to be picked up.
            {
                **env,
                "MLOPS_PROJECT_DIR": str(PROJECT_ROOT),
                "PREFECT_WORKER_QUERY_SECONDS": str(WORKER_POLL_SECONDS),
            },
            lambda: _worker_problem(prefect_api, prefect_auth, worker_name),
            90,
        ),
    ]


def start_services(
    settings: Settings, on_progress: Callable[[str], None] = lambda line: None
) -> dict:
    """Start what is not running (idempotent) and wait for each to be healthy."""
    _require_server_profile(settings)
    _require_credentials_beyond_loopback(settings)
    # Never started here (see docs/server.md): not answering, they fail `up` within seconds.
    require(settings, ("postgres", "redis"))
    created = ensure_databases(settings)
    if created:
        on_progress(f"created databases {', '.join(created)}")
    everything = services(settings)
    for wave in WAVES:
        launched = []
        for service in (s for s in everything if s.name in wave):
            if service.name == "worker":
                _register_deployments(settings, on_progress)
                crashed = crash_orphaned_runs(settings)
                if crashed:
                    on_progress(f"marked {len(crashed)} flow run(s) of a dead worker crashed")
            pid = _running_pid(settings, service.name)
            if pid is not None and service.problem() is None:
                on_progress(f"{service.name:<8} already up (pid {pid}) at {service.url}")
                continue
            if pid is not None:  # running but not healthy: restart it
                _stop(settings, service.name)
            on_progress(f"{service.name:<8} starting")
            launched.append((service, _launch(settings, service)))
        for service, process in launched:
            _wait_healthy(service, process, settings.logs_dir / f"{service.name}.log")
            on_progress(f"{service.name:<8} up at {service.url}")
    return service_statuses(settings)


def stop_services(
    settings: Settings, on_progress: Callable[[str], None] = lambda line: None
) -> dict:
    """Stop the started services, last started first (PostgreSQL and Redis stay up)."""
    for service in reversed(services(settings)):
        if _stop(settings, service.name):
            on_progress(f"{service.name:<8} stopped")
    return service_statuses(settings)


def service_statuses(settings: Settings) -> dict[str, dict[str, dict[str, Any]]]:
    """`{"services": {name: {"healthy", "url", "pid", "detail"}}}` for every service."""
    dsn, redis = settings.postgres_dsn.get_secret_value(), settings.redis_url.get_secret_value()
    found = {
        "postgres": _probe_status(postgres_problem(settings), _redact(dsn)),
        "redis": _probe_status(redis_problem(settings), _redact(redis)),
    }
    for service in services(settings):
        pid = _running_pid(settings, service.name)
        problem = service.problem() if pid is not None else "not running"
        found[service.name] = ServiceStatus(problem is None, service.url, pid, problem or "")
    return {"services": {name: s.to_dict() for name, s in found.items()}}


def crash_orphaned_runs(settings: Settings) -> list[str]:
    """Flow runs a dead process worker on this machine left RUNNING or PENDING: marked
    Crashed, so their state says what happened and a rerun is not mistaken for a duplicate.
    A process worker records the run's process id as the run's infrastructure pid (Prefect 3.8:
    the bare pid; older releases `<host>:<pid>`). The pool is `mlops up`'s own: a worker on
    another machine should poll a pool of its own, or its runs' pids would be read as ours."""
    import asyncio

    return asyncio.run(_crash_orphaned_runs())


async def _crash_orphaned_runs() -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    host = socket.gethostname()
    crashed = []
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
                )
            ),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[WORK_POOL])),
        )
        for run in runs:
            where, _, pid = (run.infrastructure_pid or "").rpartition(":")
            if where not in ("", host) or not pid.isdigit() or _alive(int(pid)):
                continue
            await client.set_flow_run_state(
                run.id,
                Crashed(message=f"its process ({pid}) died with the worker that ran it"),
                force=True,
            )
            crashed.append(str(run.id))
    return crashed


def _register_deployments(settings: Settings, on_progress: Callable[[str], None]) -> None:
    from flows.deployments import register

    on_progress("worker   registering the deployments (prefect.yaml)")
    register(settings)


def _launch(settings: Settings, service: Service) -> subprocess.Popen[bytes]:
    log_path = settings.logs_dir / f"{service.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open_private(log_path) as log:
        process = subprocess.Popen(
            service.command,
            cwd=PROJECT_ROOT,
            env=service.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `mlops up`; `down` stops its whole group
        )
    record = {"pid": process.pid, "command": service.command, "log": str(log_path)}
    with open_private(_pid_file(settings, service.name), "w") as pid_file:
        pid_file.write(json.dumps(record))
    return process


def _wait_healthy(service: Service, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + service.startup_seconds
    problem: str | None = "not probed"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(
                f"{service.name} exited with code {process.returncode} at start: "
                f"{_last_line(log_path)} (full log: {log_path})"
            )
        problem = service.problem()
        if problem is None:
            return
        time.sleep(0.5)
    raise UserError(
        f"{service.name} was not healthy within {service.startup_seconds:.0f} s ({problem}); "
        f"it keeps running: see {log_path}, or `mlops down`"
    )


def _stop(settings: Settings, name: str) -> bool:
    """SIGTERM the service's process group, SIGKILL it after STOP_SECONDS; True if it ran."""
    pid = _running_pid(settings, name)
    _pid_file(settings, name).unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _group_alive(pid):
                return True
            time.sleep(0.2)
    return True


def _running_pid(settings: Settings, name: str) -> int | None:
    """The service's pid if its recorded process still runs its command (not a reused pid)."""
    path = _pid_file(settings, name)
    try:
        record = json.loads(path.read_text())
        cmdline = Path(f"/proc/{record['pid']}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ValueError, KeyError):
        return None
    expected = Path(record["command"][0]).name.encode()
    if not any(Path(part.decode(errors="replace")).name.encode() == expected for part in cmdline):
        return None
    return int(record["pid"])


def _services_folder(settings: Settings) -> Path:
    """Where the services' records and state live: owner-only as a whole, since MLflow creates
    its auth database there with the default mode (it holds password hashes)."""
    folder = settings.home / "services"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def _pid_file(settings: Settings, name: str) -> Path:
    return _services_folder(settings) / f"{name}.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    return state != "Z"  # a zombie has exited; its parent has not collected it yet


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(
        _alive(int(entry.name))
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _pgid(int(entry.name)) == pgid
    )


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _http_problem(url: str, basic_auth: str | None) -> str | None:
    request = urllib.request.Request(url)
    if basic_auth:
        token = base64.b64encode(basic_auth.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_SECONDS) as response:
            return None if response.status == 200 else f"{url} answered {response.status}"
    except urllib.error.HTTPError as err:
        return f"{url} answered {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return f"{url}: {getattr(err, 'reason', err)}"


def _worker_problem(api_url: str, basic_auth: str | None, worker_name: str) -> str | None:
    """None once the server lists the worker ONLINE in the pool (it heartbeats)."""
    request = urllib.request.Request(
        f"{api_url}/work_pools/{WORK_POOL}/workers/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
    )
    if basic_auth:
        token = base64.b64encode(basic_auth.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_SECONDS) as response:
            workers = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as err:
        return f"the Prefect server does not list workers: {getattr(err, 'reason', err)}"
    if any(w.get("name") == worker_name and w.get("status") == "ONLINE" for w in workers):
        return None
    return f"no ONLINE worker {worker_name} in pool {WORK_POOL}"


def _mlflow_auth_env(settings: Settings) -> dict[str, str]:
    """MLflow's basic-auth app: its user store beside the other state, the admin account it
    creates on first start, and the session key."""
    auth = settings.auth
    folder = _services_folder(settings)
    config = folder / "mlflow-auth.ini"
    with open_private(config, "w") as ini:
        ini.write(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{folder / 'mlflow-auth.db'}\n"
            f"admin_username = {auth.mlflow_admin_user}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "grant_default_workspace_access = false\n"
            f"auth_cache_ttl_seconds = {auth.mlflow_auth_cache_seconds}\n"
        )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_USERNAME": auth.mlflow_admin_user,
        "MLFLOW_AUTH_ADMIN_PASSWORD": auth.mlflow_admin_password.get_secret_value()
        if auth.mlflow_admin_password
        else "",
    }
    env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = (
        auth.mlflow_secret_key.get_secret_value()
        if auth.mlflow_secret_key
        else _generated_secret(folder / "mlflow-secret-key")
    )
    return env


def _generated_secret(path: Path) -> str:
    """A random secret kept in `path` (owner-only), the same on every start."""
    import secrets

    if not path.exists():
        with open_private(path, "w") as secret:
            secret.write(secrets.token_hex(32))
    return path.read_text().strip()


def _require_server_profile(settings: Settings) -> None:
    if settings.profile != "server":
        raise UserError(
            "`mlops up` starts the server profile's services: set MLOPS_PROFILE=server "
            "(in the environment or .env; see .env.example)"
        )


def _require_credentials_beyond_loopback(settings: Settings) -> None:
    """Bound beyond loopback, a service without its credential would be open to the network."""
    auth = settings.auth
    missing = []
    if not is_loopback(settings.ui.host):
        if not auth.prefect_auth_string:
            missing.append("MLOPS_AUTH__PREFECT_AUTH_STRING")
        if not auth.mlflow_admin_password:
            missing.append("MLOPS_AUTH__MLFLOW_ADMIN_PASSWORD")
    if not is_loopback(settings.serving.host) and not auth.serving_api_key:
        missing.append("MLOPS_AUTH__SERVING_API_KEY")
    if missing:
        raise UserError(
            "services bound beyond loopback need credentials: set " + ", ".join(missing)
        )


def _probe_status(problem: str | None, url: str) -> ServiceStatus:
    return ServiceStatus(problem is None, url, None, problem or "")


def _client_host(host: str) -> str:
    from mlops.config.settings import client_host

    return client_host(host)


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"
