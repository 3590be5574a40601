"""`python -m benchmarks [NAME|all] [options] [--json]` (`make bench`: all; NAME is one of
data-path, training, serving, monitoring, detection, cli, scale-out; `python -m benchmarks NAME
--help` lists a benchmark's options).

Each benchmark runs in its own process, so one's imports and memory do not colour the other's.
"""

import importlib
import subprocess
import sys
import time

BENCHMARKS = {
    "data-path": "benchmarks.data_path",
    "training": "benchmarks.training",
    "serving": "benchmarks.serving",
    "monitoring": "benchmarks.monitoring",
    "detection": "benchmarks.detection",
    "cli": "benchmarks.cli",
    "scale-out": "benchmarks.scale_out",
}


def run() -> int:
    args = sys.argv[1:]
    name = args.pop(0) if args and args[0] in (*BENCHMARKS, "all") else "all"
    if name == "all":
        codes = [
            subprocess.call([sys.executable, "-m", "benchmarks", each, *args])
            for each in BENCHMARKS
        ]
        return max(codes)
    # Imported here, timed, so the cost of loading pandas, pyarrow and the project is reported
    # with the other one-time costs instead of vanishing before the benchmark starts.
    started = time.perf_counter()
    module = importlib.import_module(BENCHMARKS[name])
    return module.main(args, base_import_seconds=time.perf_counter() - started)


if __name__ == "__main__":
    sys.exit(run())
