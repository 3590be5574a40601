"""A command's process session, seen from outside as a terminal sees it: its output as it comes,
every process it started, and what starting one costs right now (a floor for time bounds)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import psutil


class Output:
    """A process's merged output, read as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.arrived: list[float] = []  # time.monotonic() when each line was read
        self._reader = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._reader.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.arrived.append(time.monotonic())
            self.lines.append(line)

    def wait_for(self, text: str, process: subprocess.Popen[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert process.poll() is None, f"ended before {text!r}:\n{self.text[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s"
            time.sleep(0.2)

    @property
    def text(self) -> str:
        self._reader.join(timeout=5)  # the rest of the output, once the process ended
        return "".join(self.lines)


def session_processes(pid: int) -> list[psutil.Process]:
    """Every live process of the session `pid` leads (its children and theirs, the ephemeral
    Prefect server and `bentoml serve` among them), and their descendants in other sessions
    (`bentoml serve`'s workers start their own)."""
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == pid and process.pid != pid:
                found[process.pid] = process
                found.update({c.pid: c for c in process.children(recursive=True)})
        except (OSError, psutil.Error):
            continue
    return [p for p in found.values() if alive(p)]


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def described(processes: list[psutil.Process]) -> list[str]:
    """Each process as "pid command line", whole: what tells one server from another (uvicorn's
    `--factory prefect...`) can come after a long path."""
    lines = []
    for process in processes:
        try:
            lines.append(f"{process.pid} {' '.join(process.cmdline())}")
        except psutil.Error:
            continue
    return lines


def process_floor() -> float:
    """What starting and reaping a bare interpreter takes now: the median of three."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.monotonic() - started)
    return sorted(times)[1]
