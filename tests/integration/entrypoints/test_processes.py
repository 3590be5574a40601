"""Processes the CLI starts die with it, `mlops serve` stops on a signal to its own process,
and refuses a port that is taken."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psutil
import pytest

from mlops.config.settings import Settings
from tests.support.service import serving_environment, start_serving

pytestmark = [pytest.mark.integration, pytest.mark.server]  # runs `mlops serve`

MLOPS = str(Path(sys.executable).with_name("mlops"))
ROOT = Path(__file__).resolve().parents[3]
# A command as `entrypoints.cli.conventions.answer` runs it: it starts a child process (as a
# command starts a Prefect server or a service), then works until a signal stops it; with
# `deaf`, the work swallows the interruption (as a library retrying to report it may).
COMMAND = """
import subprocess, sys, time
from entrypoints.cli.conventions import answer

def work():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(child.pid, flush=True)
    while True:
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            if not {deaf}:
                raise

answer(False, work, done_so_far=lambda: "2 of 5 batches committed; a rerun ingests the rest")
"""


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


@pytest.mark.parametrize(
    ("stop", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)], ids=["SIGINT", "SIGTERM"]
)
def test_serve_stops_on_a_signal_to_its_own_process_with_nothing_left(
    champion_settings: Settings, prefect_api_url: str, stop: signal.Signals, expected: int
) -> None:
    """Not only a terminal's Ctrl-C, which reaches the whole process group: `kill -INT` (or
    `-TERM`) of `mlops serve` alone stops the `bentoml serve` it started, and its workers."""
    process, _ = start_serving(serving_environment(champion_settings.home, prefect_api_url))
    started = psutil.Process(process.pid).children(recursive=True)
    assert started, "no `bentoml serve` under `mlops serve`"
    signalled = time.monotonic()
    process.send_signal(stop)
    try:
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    took = time.monotonic() - signalled
    deadline = time.monotonic() + 5  # the init process reaps the orphans of a dead parent
    while (left := [p.pid for p in started if _alive(p.pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code == expected
    assert took < 10, f"stopped {took:.1f} s after {stop.name}"
    assert not left


@pytest.mark.parametrize("deaf", [False, True], ids=["orderly", "deaf-work"])
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_command_says_so_stops_its_children_and_exits_130(
    stop: signal.Signals, deaf: bool
) -> None:
    command = subprocess.Popen(
        [sys.executable, "-c", COMMAND.format(deaf=deaf)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert command.stdout is not None
    child = int(command.stdout.readline())
    signalled = time.monotonic()
    command.send_signal(stop)
    try:
        _, stderr = command.communicate(timeout=60)
    finally:
        command.kill()
    took = time.monotonic() - signalled
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert command.returncode == 130, stderr
    assert took < 10
    interrupted = f"interrupted ({stop.name}): 2 of 5 batches committed; a rerun ingests the rest"
    assert stderr.count(interrupted) == 1, stderr
    assert "Traceback" not in stderr and "failed" not in stderr
    assert not _alive(child)
