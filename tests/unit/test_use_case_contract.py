"""The use case is one bounded part: its card, contract and suites agree with each other."""

import json

import pytest
import yaml
from pydantic import ValidationError

from mlops.card import RequirementsCard
from usecases.adclick import USE_CASE, contract


def _suite(table: str) -> dict:
    return json.loads((USE_CASE.suites_dir / f"{table}.json").read_text())


def _kwargs(table: str, expectation: str) -> list[dict]:
    return [e["kwargs"] for e in _suite(table)["expectations"] if e["type"] == expectation]


def test_card_states_every_gate_threshold() -> None:
    card = USE_CASE.card
    assert card.label.column == USE_CASE.label
    assert card.offline_metrics.primary == "nce"
    assert 0 < card.gates.validation.max_failing_fraction < 1
    assert card.gates.promotion.min_improvement >= 0
    assert card.serving_slo.p99_latency_ms > 0


def test_card_rejects_unknown_and_missing_fields(tmp_path) -> None:
    raw = yaml.safe_load((USE_CASE.package_dir / "card.yaml").read_text())
    raw["gates"]["validation"]["max_failing_fration"] = 0.1  # a typo must not pass silently
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationError, match="max_failing_fration"):
        RequirementsCard.load(path)


def test_every_table_has_a_suite_that_checks_its_keys() -> None:
    for table in USE_CASE.tables:
        not_null = {k["column"] for k in _kwargs(table.name, "expect_column_values_to_not_be_null")}
        unique = {k["column"] for k in _kwargs(table.name, "expect_column_values_to_be_unique")}
        assert {table.id_column, table.timestamp_column} <= not_null
        assert table.id_column in unique


@pytest.mark.parametrize(
    ("table", "column", "allowed"),
    [
        ("impressions", "device", contract.DEVICES),
        ("impressions", "ad_position", contract.AD_POSITIONS),
        ("impressions", "clicked", (0, 1)),
        ("users", "age_bucket", contract.AGE_BUCKETS),
        ("users", "country", contract.COUNTRIES),
        ("ads", "category", contract.AD_CATEGORIES),
    ],
)
def test_suite_categories_match_the_contract(table: str, column: str, allowed: tuple) -> None:
    sets = {
        k["column"]: k["value_set"] for k in _kwargs(table, "expect_column_values_to_be_in_set")
    }
    assert sets[column] == list(allowed)


def test_oracle_is_never_a_feature() -> None:
    from mlops.feature_store import feast_objects
    from mlops.settings import Settings

    objects = feast_objects(Settings(), USE_CASE)
    features = {
        f.name for o in objects if hasattr(o, "features") and hasattr(o, "ttl") for f in o.features
    }
    assert USE_CASE.oracle_column not in features
    assert USE_CASE.label not in features
