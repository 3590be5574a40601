"""The reliability drills "nothing lost, nothing let in", as real Prefect flow runs over
real GX, DuckDB and Feast stores: unsafe batch ids, a re-landed copy, a reused batch id, a
batch closing in the future, a late batch, and a SIGKILL at chosen points of an ingest. Each
drill ends by comparing every store (offline partitions, quarantine, ledger, online values)
with a clean in-order ingest of the same days, or with the stores before the drill."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from ingestion.table_validation import ALREADY_INGESTED, REASON_COLUMN
from mlops.config.errors import EXIT_BAD_INPUT, UserError
from mlops.config.settings import get_settings
from mlops.contracts.batches import MANIFEST
from mlops.stores.offline_store import OfflineStore
from tests.support.session import settings_at
from tests.support.stores import assert_same_stores, land_days, offline_impressions, store_snapshot

pytestmark = pytest.mark.integration

DAYS, EVENTS_PER_DAY = 2, 300


def _land(settings) -> list[Path]:
    return land_days(settings.landing_dir, days=DAYS, events_per_day=EVENTS_PER_DAY)


@pytest.fixture(scope="module")
def in_order(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> dict:
    """Every store after a clean, in-order ingest of the drills' days: where each drill must end."""
    from flows.ingest import ingest
    from mlops.contracts.usecase import load_use_case

    home = tmp_path_factory.mktemp("in-order") / "mlops-home"
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = settings_at(home, monkeypatch)
        ingest(_land(settings))
        snapshot = store_snapshot(settings, load_use_case("adclick"))
    get_settings.cache_clear()
    return snapshot


@pytest.fixture
def ingest(prefect_api_url):
    from flows.ingest import ingest as ingest_flow

    return ingest_flow


def test_unsafe_batch_ids_are_refused_before_anything_is_written(
    settings, use_case, ingest, tmp_path
) -> None:
    from typer.testing import CliRunner

    from entrypoints.cli import app

    (day,) = land_days(settings.landing_dir, days=1, events_per_day=EVENTS_PER_DAY)
    outside = tmp_path / "outside" / "x"
    crafted = {"dotdot": "../../x", "absolute": str(outside), "quote": "it's"}
    batches = {}
    for name, batch_id in crafted.items():
        batches[name] = shutil.copytree(day, settings.landing_dir / f"crafted-{name}")
        manifest = json.loads((day / MANIFEST).read_text())
        (batches[name] / MANIFEST).write_text(json.dumps({**manifest, "batch_id": batch_id}))
    quote_dir = shutil.copytree(day, settings.landing_dir / "it's")  # the id is its name
    (quote_dir / MANIFEST).unlink()
    crafted["quote-dir"], batches["quote-dir"] = "it's", quote_dir

    for name, batch_id in crafted.items():
        cli = CliRunner().invoke(app, ["ingest", str(batches[name])])
        assert cli.exit_code == EXIT_BAD_INPUT, cli.output
        assert f"batch id {batch_id!r}" in cli.output and "is refused" in cli.output
        with pytest.raises(UserError, match="is refused"):
            ingest([day, batches[name]])  # the good batch is not ingested either
    with pytest.raises(UserError, match="is refused"):
        ingest()  # the scheduled form: the landing zone holds them

    assert sorted(p.name for p in tmp_path.iterdir()) == [settings.home.name]
    assert not OfflineStore(settings.offline_dir).committed_batches()
    assert not offline_impressions(settings.offline_dir).size
    assert not settings.quarantine_dir.exists() or not any(settings.quarantine_dir.iterdir())


def test_a_relanded_copy_is_quarantined_whole_and_changes_nothing(
    settings, use_case, ingest
) -> None:
    from ingestion import BatchesRejected

    batches = _land(settings)
    ingest()
    before = store_snapshot(settings, use_case)
    # The same day again, without its manifest: a new id (its folder name), closed now.
    copy = shutil.copytree(batches[0], settings.landing_dir / "resent")
    (copy / MANIFEST).unlink()

    with pytest.raises(BatchesRejected) as rejected:
        ingest()

    [report] = rejected.value.result.batches
    assert report.batch_id == "resent" and report.status == "rejected"
    assert f"already ingested by batch(es) {batches[0].name}" in report.reason
    landed = pd.read_parquet(batches[0] / "impressions.parquet")
    assert report.quarantined == report.rows == len(landed)
    for table in ("impressions", "users", "ads"):
        quarantined = pd.read_parquet(settings.quarantine_dir / "resent" / f"{table}.parquet")
        assert len(quarantined) == len(pd.read_parquet(batches[0] / f"{table}.parquet"))
        assert set(quarantined[REASON_COLUMN]) == {ALREADY_INGESTED}, table
    assert_same_stores(store_snapshot(settings, use_case), before)
    assert ingest().batches == []  # recorded: the schedule does not try it again


def test_a_reused_batch_id_over_other_rows_is_refused_and_changes_nothing(
    settings, use_case, ingest, tmp_path
) -> None:
    from typer.testing import CliRunner

    from entrypoints.cli import app
    from ingestion import BatchesRejected
    from mlops.config.errors import EXIT_REJECTED

    first, second = _land(settings)
    ingest([first])
    offline = OfflineStore(settings.offline_dir)
    source = offline.record(first.name)["source"]
    before = store_snapshot(settings, use_case)
    # The next day's rows under the committed day's id.
    reused = shutil.copytree(second, tmp_path / "reused")
    manifest = json.loads((reused / MANIFEST).read_text())
    (reused / MANIFEST).write_text(json.dumps({**manifest, "batch_id": first.name}))

    cli = CliRunner().invoke(app, ["ingest", str(reused)])
    assert cli.exit_code == EXIT_REJECTED, cli.output
    assert "already committed" in cli.output
    with pytest.raises(BatchesRejected) as rejected:
        ingest([reused])

    [report] = rejected.value.result.batches
    assert report.status == "rejected" and report.quarantined == 0
    assert f"already committed, from {source}" in report.reason
    assert str(reused) in report.reason
    everything = ("offline", "quarantine", "ledger", "online")
    assert_same_stores(store_snapshot(settings, use_case), before, parts=everything)
    assert offline.record(first.name)["source"] == source
    assert ingest([first]).batches[0].status == "ingested"  # the same content: a no-op


def test_a_batch_closing_in_the_future_is_refused_and_moves_no_watermark(
    settings, use_case, ingest
) -> None:
    from ingestion import BatchesRejected

    _, second = _land(settings)
    ingest()
    offline = OfflineStore(settings.offline_dir)
    watermark = offline.watermark()
    before = store_snapshot(settings, use_case)
    # Events from 2030 in a batch that says it closes in 2999: the suites' "not after the
    # close" would let them in.
    future = shutil.copytree(second, settings.landing_dir / "far-future")
    manifest = json.loads((future / MANIFEST).read_text())
    closes = "2999-01-01T00:00:00+00:00"
    (future / MANIFEST).write_text(
        json.dumps({**manifest, "batch_id": "far-future", "closed_at": closes})
    )
    events = pd.read_parquet(future / "impressions.parquet")
    events["event_timestamp"] = pd.Timestamp("2030-01-01", tz="UTC")
    events.to_parquet(future / "impressions.parquet")

    with pytest.raises(BatchesRejected) as rejected:
        ingest()

    [report] = rejected.value.result.batches
    assert report.batch_id == "far-future" and report.status == "rejected"
    assert closes in report.reason and "MLOPS_MAX_CLOSE_AHEAD_MINUTES" in report.reason
    assert report.quarantined == report.rows == len(events)
    assert offline.watermark() == watermark
    assert_same_stores(store_snapshot(settings, use_case), before)  # offline, ledger, online
    assert (settings.quarantine_dir / "far-future" / "rejection.json").exists()
    assert ingest().batches == []  # recorded: the schedule does not try it again


def test_a_late_batch_leaves_the_stores_an_in_order_ingest_leaves(
    settings, use_case, ingest, in_order
) -> None:
    first, second = _land(settings)
    ingest([second])
    stale = store_snapshot(settings, use_case)["offline"]["features/user_activity"]

    ingest([first])  # closes before the committed `second`: its features are rebuilt

    after = store_snapshot(settings, use_case)
    rebuilt = after["offline"]["features/user_activity"]
    rebuilt = rebuilt[rebuilt["batch_id"] == second.name].reset_index(drop=True)
    assert len(rebuilt) > len(stale)  # the late day's users are active in the later window
    assert_same_stores(after, in_order, parts=("offline", "quarantine", "ledger", "online"))
    assert OfflineStore(settings.offline_dir).record(second.name)["rebuilt_at"]


KILLED_INGEST = """
import os, signal
from mlops.config.settings import get_settings
get_settings().apply()

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handler: a crash

{patch}
from flows.ingest import ingest
ingest()
"""

KILL_POINTS = {
    # Every partition of the batch written (staged), the commit not started.
    "after-offline-write": """
        from ingestion import ingest_steps
        ingest_steps.commit = die
    """,
    # Committed; Feast has flipped the first view to MATERIALIZING and writes online rows.
    "during-materialization": """
        from feast.infra.online_stores.sqlite import SqliteOnlineStore
        SqliteOnlineStore.online_write_batch = die
    """,
}


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_an_ingest_killed_then_rerun_on_schedule_ends_as_a_clean_run(
    settings, use_case, ingest, in_order, prefect_api_url, kill_point
) -> None:
    first, second = _land(settings)
    ingest([first])
    offline = OfflineStore(settings.offline_dir)
    day_one_rows = offline.count_rows("impressions")
    script = KILLED_INGEST.format(patch=textwrap.dedent(KILL_POINTS[kill_point]))
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PREFECT_API_URL": prefect_api_url},
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr.decode()[-3000:]

    committed = [r["batch_id"] for r in offline.committed_batches()]
    if kill_point == "after-offline-write":
        assert committed == [first.name]
        _assert_readers_see_only(offline, day_one_rows)
        assert not any(settings.offline_dir.glob(f"*/*/batch_id={second.name}"))  # Feast's too
    else:
        assert committed == [first.name, second.name]
        assert not offline.record(second.name).get("materialized_at")
        assert _materializing_views(settings, use_case)

    rerun = ingest()  # the scheduled form finishes the killed batch, or redoes it

    redone = [second.name] if kill_point == "after-offline-write" else []
    assert [r.batch_id for r in rerun.batches] == redone
    _assert_ends_as_a_clean_run(settings, use_case, in_order)


def test_an_ingest_that_dies_mid_commit_is_finished_by_the_next_run(
    settings, use_case, ingest, in_order, monkeypatch
) -> None:
    """Past the commit point (staging/<id>/_commit.json), partitions published, the ledger
    record not written. The same state a SIGKILL leaves, raised in-process (a third child
    process would cost ~20 s of imports)."""
    from mlops.stores import offline_store

    first, second = _land(settings)
    ingest([first])
    offline = OfflineStore(settings.offline_dir)
    day_one_rows = offline.count_rows("impressions")
    write_json = offline_store._write_json

    def crash_before_the_ledger(path: Path, content: dict) -> None:
        if path.parent.name == "batches":
            raise RuntimeError("killed")
        write_json(path, content)

    with monkeypatch.context() as patched:
        patched.setattr(offline_store, "_write_json", crash_before_the_ledger)
        with pytest.raises(RuntimeError, match="killed"):
            ingest()

    assert (settings.offline_dir / "staging" / second.name / "_commit.json").exists()
    assert [r["batch_id"] for r in offline.committed_batches()] == [first.name]
    _assert_readers_see_only(offline, day_one_rows)  # published, but mid-commit: skipped

    rerun = ingest()

    assert rerun.batches == []  # nothing to redo: the commit is rolled forward
    _assert_ends_as_a_clean_run(settings, use_case, in_order)


def _assert_readers_see_only(offline: OfflineStore, rows: int) -> None:
    assert offline.count_rows("impressions") == rows
    con = offline.connect(["impressions"])
    try:
        assert con.execute("SELECT count(*) FROM impressions").fetchone()[0] == rows
    finally:
        con.close()


def _assert_ends_as_a_clean_run(settings, use_case, in_order: dict) -> None:
    offline = OfflineStore(settings.offline_dir)
    assert offline_impressions(settings.offline_dir)["impression_id"].is_unique
    assert not _materializing_views(settings, use_case)
    assert not list((settings.offline_dir / "staging").glob("*"))
    assert all(r.get("materialized_at") for r in offline.committed_batches())
    everything = ("offline", "quarantine", "ledger", "online")
    assert_same_stores(store_snapshot(settings, use_case), in_order, parts=everything)


def _materializing_views(settings, use_case) -> list[str]:
    """Views the registry says are MATERIALIZING, read without `open_store` (which repairs)."""
    from feast import FeatureStore
    from feast.feature_view import FeatureViewState

    from mlops.stores.feature_store import repo_config

    store = FeatureStore(config=repo_config(settings, use_case))
    return [
        v.name
        for v in store.registry.list_feature_views(store.project, allow_cache=False)
        if v.state == FeatureViewState.MATERIALIZING
    ]
