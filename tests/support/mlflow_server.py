"""A real `mlflow server` for drills: started in a process group of its own (it starts
workers), so it can be killed whole, as in a crash, and started again on the same port and
stores."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlops.config.settings import MLFLOW_SERVER_JOBS_OFF, TELEMETRY_OFF
from tests.support.waiting import wait_until

BIN = Path(sys.executable).parent
START_SECONDS = 300  # ~17 s to answer on an idle machine; far more on a busy one


@dataclass
class MlflowServer:
    """`mlflow server` on `backend_uri`, artifacts proxied to `artifacts`, its output in `log`."""

    port: int
    backend_uri: str
    artifacts: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(str(BIN / "mlflow"), "server", "--host", "127.0.0.1"),
                    *("--port", str(self.port), "--workers", "1"),
                    *("--backend-store-uri", self.backend_uri),
                    *("--artifacts-destination", str(self.artifacts), "--serve-artifacts"),
                ],
                env={**os.environ, **TELEMETRY_OFF, **MLFLOW_SERVER_JOBS_OFF},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(
            self._answers,
            f"mlflow server on port {self.port} to answer",
            timeout=START_SECONDS,
            poll_seconds=0.5,
        )

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"mlflow server exited with {self.process.returncode}: {self.log}")
        try:
            return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False
