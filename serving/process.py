"""Run the prediction service as a real `bentoml serve` process: for `mlops serve`, the infra
check, the tests and the benchmark."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlops.config.errors import UserError
from mlops.config.runtime import open_private
from mlops.config.settings import PROJECT_ROOT, Settings, client_host
from serving.auth import auth_headers, require_api_key_beyond_loopback

SERVICE = "serving.service:PredictionService"
# `SomeError: message`, as a Python traceback ends.
ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit)\b.*:")


class ServiceFailed(RuntimeError):
    """The service did not become ready; the message ends with its log's last lines."""


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    # Sent with every request but the probes: the API key, when one is set.
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    def post(self, path: str, body: Any, timeout: float = 10) -> tuple[int, Any]:
        """(status, parsed JSON body); a plain client, so callers need no HTTP library."""
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **self.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def model_version(self) -> str | None:
        """The @champion version the service answers with."""
        return self._model().get("model_version")

    def challenger_version(self) -> str | None:
        """The @challenger version the service scores in the shadow (or a canary), if any."""
        return self._model().get("challenger_version")

    def _model(self) -> dict[str, Any]:
        request = urllib.request.Request(self.url + "/model", headers=self.headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))

    def stop(self, timeout: float = 30) -> int:
        """Stop cleanly (SIGTERM: BentoML runs the shutdown hooks); kill if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants: a `bentoml serve` and its workers."""
    import psutil

    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error as err:
        raise OSError(f"cannot list the service's processes: {err}") from err


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time the processes have used so far, all their threads, ended ones too. To the
    nanosecond through Linux's per-process CPU clock (the clock id clock_getcpuclockid(3) gives:
    ~pid << 3 | 2); elsewhere to psutil's 10 ms tick."""
    if sys.platform == "linux":
        return sum(time.clock_gettime(((~pid) << 3) | 2) for pid in pids)
    import psutil

    try:
        return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)
    except psutil.Error as err:
        raise OSError(f"cannot read the service's CPU time: {err}") from err


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(
    settings: Settings,
    *,
    port: int | None = None,
    overrides: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> ServiceProcess:
    """Start `bentoml serve` on the settings' home and wait until /readyz answers 200.
    `overrides` are extra environment variables (e.g. `MLOPS_SERVING__MODEL_VERSION`).
    Refused at once (UserError) where the service would refuse to start: beyond loopback
    without an API key."""
    require_api_key_beyond_loopback(settings)
    port = port or settings.serving.port
    host = settings.serving.host
    if not port_is_free(host, port):
        # Otherwise the new service would fail to bind while the old one answers /readyz.
        raise UserError(
            f"{host}:{port} is already in use (another `mlops serve`?): stop it or use --port"
        )
    log_path = log_path or settings.logs_dir / f"serving-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **settings.library_environment(),
        "MLOPS_HOME": str(settings.home),
        "MLOPS_USE_CASE": settings.use_case,
        "MLOPS_USE_CASES_ROOT": str(settings.use_cases_root),
        **(overrides or {}),
    }
    bentoml = Path(sys.executable).parent / "bentoml"
    log: IO[bytes] = open_private(log_path)
    process = subprocess.Popen(
        [str(bentoml), "serve", SERVICE, "--host", host, "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://{client_host(host)}:{port}"
    service = ServiceProcess(process, url, log_path, auth_headers(settings))
    wait_ready(service, settings.serving.startup_timeout_seconds)
    return service


def wait_ready(service: ServiceProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise ServiceFailed(
                f"the service exited with code {service.process.returncode}" + _tail(service)
            )
        try:
            with urllib.request.urlopen(service.url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    service.stop()
    raise ServiceFailed(f"the service was not ready within {timeout:.0f} s" + _tail(service))


def _tail(service: ServiceProcess) -> str:
    """The log's last error line (a traceback's last line names the cause), and where the
    whole log is: one paragraph for the user, not the traceback."""
    lines = [line.strip() for line in service.log_path.read_text(errors="replace").splitlines()]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    cause = errors[-1] if errors else next((line for line in reversed(lines) if line), "")
    return f": {cause[:500]} (full log: {service.log_path})"
