"""The ingest flow as real Prefect flow runs over real GX, DuckDB and Feast stores."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from ingestion.table_validation import REASON_COLUMN
from mlops.stores.feature_store import online_features, open_store
from tests.support.stores import inject_bad_rows, land_days, offline_impressions

pytestmark = pytest.mark.integration


@pytest.fixture
def ingest(prefect_api_url):
    from flows.ingest import ingest as ingest_flow

    def run(batch_dirs) -> tuple[Exception | None, list[dict]]:
        """(what the flow raised, if anything; every batch's report)"""
        try:
            return None, [r.to_dict() for r in ingest_flow(batch_dirs).batches]
        except Exception as error:  # BatchesRejected carries every report; a crash none
            result = getattr(error, "result", None)
            return error, [r.to_dict() for r in result.batches] if result else []

    return run


def _online_snapshot(settings, use_case, pairs) -> list[dict]:
    store = open_store(settings, use_case)
    return [online_features(store, use_case, {"user_id": u, "ad_id": a}) for u, a in pairs]


def test_clean_rows_reach_the_offline_store_and_bad_rows_are_quarantined(
    settings, use_case, ingest
) -> None:
    batches = land_days(settings.landing_dir)
    bad = inject_bad_rows(batches[1])
    landed = pd.concat(pd.read_parquet(b / "impressions.parquet") for b in batches)

    error, reports = ingest(batches)

    assert error is None, error
    assert [r["status"] for r in reports] == ["ingested"] * 3
    offline = offline_impressions(settings.offline_dir)
    assert offline["impression_id"].is_unique
    kept = {i for i, reason in bad.items() if reason == "impression_id:unique"}  # the first
    assert set(offline["impression_id"]) == set(landed["impression_id"]) - set(bad) | kept
    assert reports[-1]["offline_rows"] == len(landed) - len(bad)  # the copy of an id only

    quarantined = pd.read_parquet(settings.quarantine_dir / batches[1].name / "impressions.parquet")
    assert set(quarantined["impression_id"]) == set(bad)
    assert all(
        bad[i] in r.split("; ")
        for i, r in zip(quarantined["impression_id"], quarantined[REASON_COLUMN], strict=True)
    )
    assert reports[1]["quarantined"] == 6 and reports[1]["valid"] == reports[1]["rows"] - 6
    assert reports[1]["quarantined_by_reason"]["impressions.impression_id:unique"] == 1
    assert reports[1]["data_docs"].endswith("index.html")


def test_reingesting_changes_nothing(settings, use_case, ingest) -> None:
    batches = land_days(settings.landing_dir)
    ingest(batches)
    offline_before = offline_impressions(settings.offline_dir).sort_values("impression_id")
    pairs = list(
        offline_before[["user_id", "ad_id"]].drop_duplicates().head(20).itertuples(index=False)
    )
    online_before = _online_snapshot(settings, use_case, pairs)

    error, reports = ingest(batches[-1:])
    error_all, _ = ingest(batches)

    assert error is None and error_all is None
    offline_after = offline_impressions(settings.offline_dir).sort_values("impression_id")
    pd.testing.assert_frame_equal(
        offline_before.reset_index(drop=True), offline_after.reset_index(drop=True)
    )
    assert reports[0]["offline_rows"] == len(offline_before)
    assert _online_snapshot(settings, use_case, pairs) == online_before


def test_a_crash_mid_way_then_a_rerun_leaves_no_duplicates(
    settings, use_case, ingest, monkeypatch
) -> None:
    batches = land_days(settings.landing_dir, days=2)
    ingest(batches[:1])

    def crash(_inputs):
        raise RuntimeError("disk full")

    crashing = dataclasses.replace(use_case, build_features=crash)
    with monkeypatch.context() as patched:  # the flow's use case, for this one run
        patched.setattr("flows.ingest.active_use_case", lambda _settings: crashing)
        error, _ = ingest(batches[1:])
    assert error is not None

    error, reports = ingest(batches[1:])

    assert error is None, error
    offline = offline_impressions(settings.offline_dir)
    assert offline["impression_id"].is_unique
    landed = sum(len(pd.read_parquet(b / "impressions.parquet")) for b in batches)
    assert len(offline) == landed == reports[0]["offline_rows"]


def test_a_batch_over_the_failure_threshold_is_quarantined_whole(
    settings, use_case, ingest
) -> None:
    batches = land_days(
        settings.landing_dir, days=2, scenario="data-incident", drift_day=1, incident_fraction=0.2
    )

    error, reports = ingest(batches)

    assert error is not None
    assert "1 of 2 batch(es) rejected" in str(error)
    good, rejected = reports
    assert good["status"] == "ingested" and rejected["status"] == "rejected"
    assert "max_failing_fraction" in rejected["reason"]
    assert rejected["quarantined"] == rejected["rows"] and rejected["valid"] == 0
    assert rejected["offline_rows"] == good["offline_rows"]
    quarantine = settings.quarantine_dir / batches[1].name
    assert len(pd.read_parquet(quarantine / "impressions.parquet")) == rejected["rows"]
    assert json.loads((quarantine / "rejection.json").read_text())["reason"] == rejected["reason"]
    assert not (
        settings.offline_dir / "tables" / "impressions" / f"batch_id={batches[1].name}"
    ).exists()


def test_an_unreadable_batch_is_recorded_and_nothing_is_half_written(
    settings, use_case, ingest
) -> None:
    batches = land_days(settings.landing_dir, days=2)
    (batches[1] / "users.parquet").write_bytes(b"PAR1 truncated")

    error, reports = ingest(batches)

    assert error is not None
    rejected = reports[1]
    assert rejected["status"] == "rejected"
    assert "users.parquet: not a readable parquet file" in rejected["reason"]
    assert (batches[1] / "users.parquet").exists()  # never deleted
    record = json.loads((settings.quarantine_dir / batches[1].name / "rejection.json").read_text())
    assert record["reason"] == rejected["reason"]
    assert not any(settings.offline_dir.rglob(f"batch_id={batches[1].name}"))
    assert rejected["offline_rows"] == reports[0]["offline_rows"]


def test_the_summary_is_published_as_an_artifact(settings, use_case, ingest) -> None:
    from prefect.artifacts import Artifact

    batches = land_days(settings.landing_dir, days=1)
    ingest(batches)

    artifact = Artifact.get(f"ingest-{batches[0].name}")
    assert artifact is not None
    assert "| impressions |" in artifact.data and "data docs" in artifact.data
