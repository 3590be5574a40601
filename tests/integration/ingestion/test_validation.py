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
    # Of the duplicated id, the first row is kept (once) and the copy quarantined.
    duplicated = {i for i, reason in expected.items() if reason == "impression_id:unique"}
    assert set(impressions.clean["impression_id"]) & set(expected) == duplicated
    assert impressions.clean["impression_id"].is_unique
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


def test_the_platform_rules_apply_beside_the_suite(settings, use_case) -> None:
    """±inf in a numeric column and an id beyond what the service accepts are quarantined with
    their reason; naive timestamps make their table unusable, with what to fix."""
    import numpy as np

    from mlops.contracts.usecase import MAX_INT_KEY

    (batch_dir,) = land_days(settings.landing_dir, days=1, events_per_day=200)
    path = batch_dir / "impressions.parquet"
    impressions = pd.read_parquet(path)
    impressions.loc[0, "click_probability"] = np.inf
    impressions.loc[1, "click_probability"] = -np.inf
    impressions.loc[2, "user_id"] = MAX_INT_KEY + 1
    impressions.to_parquet(path)
    users_path = batch_dir / "users.parquet"
    users = pd.read_parquet(users_path)
    users["signup_at"] = users["signup_at"].dt.tz_localize(None)
    users.to_parquet(users_path)

    results = validate_batch(read_batch(batch_dir, use_case.tables), use_case, settings)

    reasons = results["impressions"].quarantined[REASON_COLUMN].to_dict()
    assert reasons == {
        0: "click_probability:finite",
        1: "click_probability:finite",
        2: "user_id:in_key_range",
    }
    assert results["users"].problems == [
        "column signup_at has timestamps without a time zone: write them as UTC, e.g. "
        "2026-01-01T00:00:00Z (parquet: a timestamp type with tz='UTC')."
    ]
    assert not decide_batch(results, use_case).passed
