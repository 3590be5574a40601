"""The fault drill "two ingests at once": two `mlops ingest` processes on one MLOPS_HOME,
started together on disjoint batches, lose and duplicate nothing. Every store (offline
partitions, ledger, quarantine, online values) must end as one sequential ingest of the same
batches leaves it.

What makes it pass: the GX lock (`ingestion.gx_project.gx_lock`: without it both processes
register the same suite and one fails with "Store already has the following key"), and the
offline store's writer lock (`OfflineStore.lock`), held from the duplicate check to the
materialization, so commits, feature rebuilds, the ledger and Feast's registry see one writer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion.table_validation import REASON_COLUMN
from mlops.config.settings import get_settings
from mlops.stores.offline_store import OfflineStore
from tests.support.session import settings_at
from tests.support.stores import assert_same_stores, land_days, offline_impressions, store_snapshot

pytestmark = pytest.mark.integration

MLOPS = str(Path(sys.executable).with_name("mlops"))
DAYS, EVENTS_PER_DAY = 4, 2_000
INCIDENT_DAY = 1  # broken rows (3%, under the card's limit): quarantined, the batch goes on


def test_two_ingests_at_once_end_as_one_sequential_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_case, prefect_api_url: str
) -> None:
    settings = settings_at(tmp_path / "concurrent", monkeypatch)
    batches = land_days(
        settings.landing_dir, days=DAYS, events_per_day=EVENTS_PER_DAY, incident_day=INCIDENT_DAY
    )
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    # Days 0-1 against days 2-3, in the same instant: day 0 and 1 are late for day 2 and 3
    # when those commit first, whose features are then rebuilt.
    half = DAYS // 2
    runs = [
        subprocess.Popen(
            [MLOPS, "ingest", *map(str, part), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for part in (batches[:half], batches[half:])
    ]
    try:
        # Meanwhile, the reference: the same batches, one after the other, in this process.
        expected = _sequential_ingest(tmp_path / "sequential", batches, monkeypatch, use_case)
        done = [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:
            run.kill()  # no-op once it exited
    for run, (stdout, stderr) in zip(runs, done, strict=True):
        assert run.returncode == 0, stderr[-3000:]
        assert {b["status"] for b in json.loads(stdout)["batches"]} == {"ingested"}

    settings = settings_at(tmp_path / "concurrent", monkeypatch)
    actual = store_snapshot(settings, use_case)
    offline = OfflineStore(settings.offline_dir)
    # What the snapshots' comparison says, spelled out: per table and batch, the same rows...
    for name, frame in expected["offline"].items():
        counts = actual["offline"][name].groupby("batch_id").size()
        assert counts.to_dict() == frame.groupby("batch_id").size().to_dict(), name
    events = offline_impressions(settings.offline_dir)
    assert events["impression_id"].is_unique  # ...no event twice...
    assert len(events) == offline.count_rows("impressions")
    # ...the incident's rows quarantined for the same reasons...
    quarantined = actual["quarantine"][f"{batches[INCIDENT_DAY].name}/impressions.parquet"]
    assert len(quarantined) == int(EVENTS_PER_DAY * 0.03)
    reasons = expected["quarantine"][f"{batches[INCIDENT_DAY].name}/impressions.parquet"]
    assert quarantined[REASON_COLUMN].value_counts().to_dict() == (
        reasons[REASON_COLUMN].value_counts().to_dict()
    )
    # ...every batch committed and materialized, nothing left mid-commit...
    ledger = offline.committed_batches()
    assert sorted(r["batch_id"] for r in ledger) == [b.name for b in batches]
    assert all(r.get("materialized_at") for r in ledger)
    assert not list((settings.offline_dir / "staging").glob("*"))
    # ...and every user and ad online.
    for column, values in actual["online"].items():
        assert None not in values, column
    assert_same_stores(actual, expected, parts=("offline", "quarantine", "ledger", "online"))


def _sequential_ingest(
    home: Path, batches: list[Path], monkeypatch: pytest.MonkeyPatch, use_case
) -> dict:
    from flows.ingest import ingest

    settings = settings_at(home, monkeypatch)
    landed = [shutil.copytree(b, settings.landing_dir / b.name) for b in batches]
    ingest(landed)
    snapshot = store_snapshot(settings, use_case)
    get_settings.cache_clear()
    return snapshot
