"""Real Great Expectations suites against landed batches (no Prefect needed)."""

import pandas as pd
import pytest

from ingestion.data_gate import decide_batch
from ingestion.gx_validation import validate_batch
from ingestion.table_validation import REASON_COLUMN
from mlops.contracts.batches import read_batch
from tests.support.stores import INJECTED, inject_bad_rows, land_days

pytestmark = pytest.mark.integration


def test_injected_bad_rows_are_exactly_the_rows_quarantined(settings, use_case) -> None:
    (batch_dir,) = land_days(settings.landing_dir, days=1)
    expected = inject_bad_rows(batch_dir)
    batch = read_batch(batch_dir, use_case.tables)

    results = validate_batch(batch, use_case, settings)

    impressions = results["impressions"]
    quarantined = impressions.quarantined
    assert len(quarantined) == len(INJECTED)
    assert set(quarantined["impression_id"]) == set(expected)
    for _, row in quarantined.iterrows():
        assert expected[row["impression_id"]] in row[REASON_COLUMN].split("; ")
    assert len(impressions.clean) + len(quarantined) == batch.rows["impressions"]
    assert not set(impressions.clean["impression_id"]) & set(expected)
    assert results["users"].quarantined.empty and results["ads"].quarantined.empty
    assert decide_batch(results, use_case).passed


def test_a_missing_column_makes_the_table_unusable(settings, use_case) -> None:
    (batch_dir,) = land_days(settings.landing_dir, days=1)
    path = batch_dir / "ads.parquet"
    pd.read_parquet(path).drop(columns=["category"]).to_parquet(path)

    results = validate_batch(read_batch(batch_dir, use_case.tables), use_case, settings)
    decision = decide_batch(results, use_case)

    assert not decision.passed
    assert "ads: missing column(s) category" in decision.reason


def test_a_wrong_type_makes_the_table_unusable(settings, use_case) -> None:
    (batch_dir,) = land_days(settings.landing_dir, days=1)
    path = batch_dir / "users.parquet"
    users = pd.read_parquet(path)
    users["signup_at"] = users["signup_at"].astype(str)
    users.to_parquet(path)

    decision = decide_batch(
        validate_batch(read_batch(batch_dir, use_case.tables), use_case, settings), use_case
    )

    assert not decision.passed
    assert "users: " in decision.reason and "signup_at" in decision.reason


def test_too_many_failing_rows_reject_the_whole_batch(settings, use_case) -> None:
    (batch_dir,) = land_days(
        settings.landing_dir, days=1, scenario="data-incident", drift_day=0, incident_fraction=0.2
    )
    results = validate_batch(read_batch(batch_dir, use_case.tables), use_case, settings)
    decision = decide_batch(results, use_case)

    assert not decision.passed
    assert "above the card's max_failing_fraction of 5.0%" in decision.reason


def test_results_are_stored_under_the_batch_id_and_name_their_table(settings, use_case) -> None:
    import great_expectations as gx

    (batch_dir,) = land_days(settings.landing_dir, days=1)
    batch = read_batch(batch_dir, use_case.tables)

    validate_batch(batch, use_case, settings)
    validate_batch(batch, use_case, settings)  # validated again: kept beside the first

    context = gx.get_context(mode="file", project_root_dir=settings.gx_root)
    keys = context.validation_results_store.list_keys()
    # Two results a table: the run time is the validation's, not parsed from the id (a date).
    assert len(keys) == 2 * len(use_case.tables)
    assert {k.run_id.run_name for k in keys} == {batch.batch_id}
    for key in keys:
        result = context.validation_results_store.get(key)
        table = key.expectation_suite_identifier.name.split(".")[-1]
        assert result.meta["checkpoint_id"], "not validated through a checkpoint"
        assert result.asset_name == result.meta["batch_spec"]["data_asset_name"] == table
