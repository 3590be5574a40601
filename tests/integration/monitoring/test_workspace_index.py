"""The Evidently workspace keeps one set of runs per judged window, and finding a window's
earlier runs does not read the project's history: a rerun replaces them through the index, a
replacement that stopped half-way or a workspace an earlier version wrote is read once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from mlops.contracts.tasks import Binary
from monitoring.evidently_reports import WINDOWS_INDEX, add_to_workspace

pytestmark = pytest.mark.integration

PROJECT = "birds"
MONDAY, TUESDAY = "2026-03-03T00:00:00+00:00", "2026-03-04T00:00:00+00:00"


def _snapshots(window_end: str, count: int = 2) -> list:
    from evidently import Dataset, Report
    from evidently.metrics import RowCount

    rows = Dataset.from_pandas(pd.DataFrame({"wingspan": [1.0, 2.0, 3.0]}))
    return [
        Report([RowCount()]).run(rows, None, metadata={"window_end": window_end})
        for _ in range(count)
    ]


def _windows(workspace_dir: Path) -> Counter:
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(workspace_dir))
    (project,) = workspace.search_project(PROJECT)
    runs = [workspace.get_run(project.id, r) for r in workspace.list_runs(project.id)]
    return Counter(run.metadata["window_end"] for run in runs)


def test_a_rerun_replaces_only_its_window_without_reading_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_to_workspace(tmp_path, PROJECT, MONDAY, _snapshots(MONDAY), Binary())
    add_to_workspace(tmp_path, PROJECT, TUESDAY, _snapshots(TUESDAY), Binary())
    with monkeypatch.context() as patched:
        from evidently.ui.workspace import Workspace

        patched.setattr(Workspace, "get_run", _refuse)
        add_to_workspace(tmp_path, PROJECT, MONDAY, _snapshots(MONDAY, count=3), Binary())
    assert _windows(tmp_path) == {MONDAY: 3, TUESDAY: 2}


def test_a_replacement_stopped_half_way_leaves_no_duplicate_after_a_rerun(tmp_path: Path) -> None:
    add_to_workspace(tmp_path, PROJECT, MONDAY, _snapshots(MONDAY), Binary())
    (index_path,) = tmp_path.glob(f"*/{WINDOWS_INDEX}")
    index = json.loads(index_path.read_text())
    # What a stop right after adding the new runs leaves: unrecorded runs, the window pending.
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(tmp_path))
    (project,) = workspace.search_project(PROJECT)
    for snapshot in _snapshots(MONDAY):
        workspace.add_run(project.id, snapshot)
    index[MONDAY]["pending"] = True
    index_path.write_text(json.dumps(index))

    add_to_workspace(tmp_path, PROJECT, MONDAY, _snapshots(MONDAY), Binary())
    assert _windows(tmp_path) == {MONDAY: 2}
    assert "pending" not in json.loads(index_path.read_text())[MONDAY]


def test_a_workspace_without_an_index_is_read_once_then_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_to_workspace(tmp_path, PROJECT, MONDAY, _snapshots(MONDAY), Binary())
    (index_path,) = tmp_path.glob(f"*/{WINDOWS_INDEX}")
    index_path.unlink()  # as an earlier version left it

    add_to_workspace(tmp_path, PROJECT, TUESDAY, _snapshots(TUESDAY), Binary())
    with monkeypatch.context() as patched:
        from evidently.ui.workspace import Workspace

        patched.setattr(Workspace, "get_run", _refuse)
        add_to_workspace(tmp_path, PROJECT, MONDAY, _snapshots(MONDAY), Binary())
    assert _windows(tmp_path) == {MONDAY: 2, TUESDAY: 2}


def _refuse(*_: object) -> None:
    raise AssertionError("read a stored snapshot to find a window's runs")
