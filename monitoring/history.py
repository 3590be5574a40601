"""Verdicts of past windows, one JSON object per window end, rewritten whole on each record:
a rerun of the same window replaces its entry instead of adding a second one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class History:
    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return json.loads(self.path.read_text())

    def drifted_before(self, window_end: str, model_version: str) -> list[bool]:
        """Drift verdicts of the windows before `window_end` judged against the same model,
        oldest first (a new champion brings a new reference, and starts over)."""
        return [
            bool(e["drifted"])
            for e in self.entries()
            if e["window_end"] < window_end and e["model_version"] == model_version
        ]

    def record(self, entry: dict[str, Any]) -> None:
        entries = [e for e in self.entries() if e["window_end"] != entry["window_end"]]
        entries = sorted([*entries, entry], key=lambda e: e["window_end"])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(entries, indent=1, default=str))
        os.replace(partial, self.path)  # atomic: a crash leaves the old file or the new one
