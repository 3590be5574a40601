"""Where the prediction log lives and how to read it: the service writes it
(`serving.prediction_logger`), monitoring reads it, so its layout belongs to neither.

One JSON object per line, in `<log dir>/date=YYYY-MM-DD/<process>.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PARTITION = "date"


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
