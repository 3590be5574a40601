"""Processes the CLI starts die with it, and `mlops serve` refuses a port that is taken."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.server]  # runs `mlops serve`

MLOPS = str(Path(sys.executable).with_name("mlops"))


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_cli_leaves_no_prefect_server_behind(tmp_path: Path, use_case) -> None:
    env = {**os.environ, "MLOPS_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)  # the CLI starts its own ephemeral server
    # A day to ingest (in this process: `mlops generate` is not under test here).
    use_case.generator.generate(
        tmp_path / "home" / "landing", start=date(2026, 1, 1), days=1, events_per_day=200
    )
    cli = subprocess.Popen(
        [MLOPS, "ingest", str(tmp_path / "home" / "landing")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not (server := _children(cli.pid)) and time.monotonic() < deadline:
            assert cli.poll() is None, "the ingest ended before its Prefect server was seen"
            time.sleep(0.2)
        assert server, "no child process (the ephemeral Prefect server) appeared"
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in server)


def test_serve_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [MLOPS, "serve", "--port", str(port), "--json"],
            env={
                **os.environ,
                "MLOPS_HOME": str(tmp_path / "home"),
                "MLOPS_SERVING__MODEL_VERSION": "1",
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert "Traceback" not in done.stderr
