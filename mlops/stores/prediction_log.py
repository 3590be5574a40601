"""Where the prediction log lives and how to read it: the service writes it
(`serving.prediction_logger`), monitoring reads it, so its layout belongs to neither.

One JSON object per line, in `<log dir>/date=YYYY-MM-DD/<process>.jsonl`: the answers the
service gave. A shadowing service also logs the `@challenger`'s scores of the same requests
(same request ids, its own model version) in `<log dir>/shadow/`, laid out the same way:
monitoring of the champion never reads them by mistake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PARTITION = "date"
SHADOW = "shadow"


def shadow_log_dir(directory: Path) -> Path:
    """Where the challenger's shadow scores of the log in `directory` go."""
    return directory / SHADOW


def log_files(directory: Path) -> list[Path]:
    """The prediction log's files, every day and every service process."""
    return sorted(directory.glob(f"{PARTITION}=*/*.jsonl"))


def read_prediction_log(directory: Path) -> list[dict[str, Any]]:
    """Every record in the log, oldest file first (small logs, tests; monitoring uses DuckDB)."""
    records: list[dict[str, Any]] = []
    for path in log_files(directory):
        with path.open(encoding="utf-8") as lines:
            records.extend(json.loads(line) for line in lines if line.strip())
    return records
