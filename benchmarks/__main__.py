"""`python -m benchmarks [--events N] [--json]`: the data-path benchmark."""

import importlib
import sys
import time


def run() -> int:
    # Imported here, timed, so the cost of loading pandas, pyarrow and the project is reported
    # with the other one-time costs instead of vanishing before the benchmark starts.
    started = time.perf_counter()
    data_path = importlib.import_module("benchmarks.data_path")
    return data_path.main(sys.argv[1:], base_import_seconds=time.perf_counter() - started)


if __name__ == "__main__":
    sys.exit(run())
