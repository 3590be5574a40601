"""`python -m benchmarks [NAME|all] [options] [--json] [--smoke]` (`make bench`: all; NAME is one
of data-path, training, model-quality, serving, shadow, monitoring, detection, live-evidence, cli,
scale-out; `python -m benchmarks NAME --help` lists a benchmark's options; `--smoke`: each at a
tiny size, to check that it still runs).

Each benchmark runs in its own process, so one's imports and memory do not colour the other's.
"""

import importlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

BENCHMARKS = {
    "data-path": "benchmarks.data_path",
    "training": "benchmarks.training",
    "model-quality": "benchmarks.model_quality",
    "serving": "benchmarks.serving",
    "shadow": "benchmarks.shadow",
    "monitoring": "benchmarks.monitoring",
    "detection": "benchmarks.detection",
    "live-evidence": "benchmarks.live_evidence",
    "cli": "benchmarks.cli",
    "scale-out": "benchmarks.scale_out",
}
# Much of a smoke run is waiting (servers starting, flows polling) and single-threaded imports:
# two at a time keep a 2-core machine busy.
SMOKE_PROCESSES = 2


def run() -> int:
    args = sys.argv[1:]
    name = args.pop(0) if args and args[0] in (*BENCHMARKS, "all") else "all"
    if name == "all":
        return run_all(args)
    # Imported here, timed, so the cost of loading pandas, pyarrow and the project is reported
    # with the other one-time costs instead of vanishing before the benchmark starts.
    started = time.perf_counter()
    # As every entry point of the platform does before Feast is imported: a benchmark measures
    # what a user's command costs, not typeguard instrumenting Feast (~3 s of CPU a process).
    from mlops.config.runtime import skip_feast_runtime_type_checks

    skip_feast_runtime_type_checks()
    module = importlib.import_module(BENCHMARKS[name])
    return module.main(args, base_import_seconds=time.perf_counter() - started)


def run_all(args: list[str]) -> int:
    """Every benchmark, one after the other; in a smoke run, whose timings mean nothing, side by
    side, each one's output printed whole, in the same order."""
    commands = [[sys.executable, "-m", "benchmarks", each, *args] for each in BENCHMARKS]
    if "--smoke" not in args:
        return max(subprocess.call(command) for command in commands)
    run_captured = partial(subprocess.run, capture_output=True, text=True, check=False)
    codes = []
    with ThreadPoolExecutor(max_workers=SMOKE_PROCESSES) as pool:
        for done in pool.map(run_captured, commands):
            sys.stderr.write(done.stderr)
            sys.stdout.write(done.stdout)
            sys.stdout.flush()
            codes.append(done.returncode)
    return max(codes)


if __name__ == "__main__":
    sys.exit(run())
