"""`python -m benchmarks cli`: how long the command line takes to answer what needs no flow.

Each command runs as a subprocess, interleaved with two baselines in the same rounds, so a busy
machine slows all of them alike: `python -c pass` (the interpreter alone) and `import typer`
(the CLI library alone). The report gives the median of the rounds and the ratio to the
interpreter's start; the target is `mlops --help` under 1.5 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import parse_options, run_in_fresh_home, target

MLOPS = str(Path(sys.executable).with_name("mlops"))
TARGET_HELP_SECONDS = 1.5
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import typer'": [sys.executable, "-c", "import typer"],
    "mlops --help": [MLOPS, "--help"],
    "mlops train --bogus (argument error)": [MLOPS, "train", "--bogus"],
    "mlops settings (unknown use case)": [MLOPS, "settings"],
    "mlops train (nothing ingested)": [MLOPS, "train"],
    "mlops promote 9 (no such version)": [MLOPS, "promote", "9", "--reason", "x"],
}
ENV = {"mlops settings (unknown use case)": {"MLOPS_USE_CASE": "no-such-case"}}


def main(argv: list[str], base_import_seconds: float = 0.0) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cli")
    parser.add_argument("--rounds", type=int, default=7)
    args = parse_options(parser, argv, smoke={"rounds": 1})
    run_in_fresh_home("cli", lambda: measure(args.rounds), render, args)
    return 0


def measure(rounds: int) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
    codes: dict[str, int] = {}
    for _ in range(rounds):
        for name, command in COMMANDS.items():  # interleaved: load hits every command alike
            started = time.perf_counter()
            done = subprocess.run(
                command, env={**os.environ, **ENV.get(name, {})}, capture_output=True, check=False
            )
            seconds[name].append(time.perf_counter() - started)
            codes[name] = done.returncode
    floor = statistics.median(seconds["python -c pass"])
    help_seconds = statistics.median(seconds["mlops --help"])
    return {
        "rounds": rounds,
        "targets": [target("mlops --help, seconds", help_seconds, "<=", TARGET_HELP_SECONDS)],
        "commands": {
            name: {
                "median_s": statistics.median(times),
                "max_s": max(times),
                "ratio_to_python": statistics.median(times) / floor,
                "exit_code": codes[name],
            }
            for name, times in seconds.items()
        },
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"median of {report['rounds']} interleaved rounds; ratio to `python -c pass`",
        f"{'command':<40} {'median s':>9} {'max s':>7} {'ratio':>7} {'exit':>5}",
    ]
    for name, row in report["commands"].items():
        lines.append(
            f"{name:<40} {row['median_s']:>9.2f} {row['max_s']:>7.2f} "
            f"{row['ratio_to_python']:>7.1f} {row['exit_code']:>5}"
        )
    return "\n".join(lines)
