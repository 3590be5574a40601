"""Each bundled use case is one bounded part: its card, contract, suites and request schema
agree with each other and with what the platform needs."""

import json

import pytest
import yaml
from pydantic import ValidationError

from mlops.contracts.card import RequirementsCard
from mlops.contracts.usecase import UseCase, load_use_case

BUNDLED = ("adclick", "diagnosis", "deliveries", "tickets")


@pytest.fixture(params=BUNDLED)
def bundled(request: pytest.FixtureRequest) -> UseCase:
    return load_use_case(request.param)


def _kwargs(use_case: UseCase, table: str, expectation: str) -> list[dict]:
    suite = json.loads((use_case.suites_dir / f"{table}.json").read_text())
    return [e["kwargs"] for e in suite["expectations"] if e["type"] == expectation]


def test_the_bundled_use_cases_are_what_the_platform_offers() -> None:
    from mlops.contracts.usecase import available_use_cases

    assert set(BUNDLED) <= set(available_use_cases())


def test_card_states_every_gate_threshold(bundled: UseCase) -> None:
    card = bundled.card
    assert card.use_case == bundled.name
    assert card.label.column == bundled.label
    assert card.offline_metrics.primary in card.gates.promotion.floors
    assert 0 < card.gates.validation.max_failing_fraction < 1
    assert card.gates.promotion.min_improvement >= 0
    assert card.serving_slo.p99_latency_ms > 0


def test_card_rejects_unknown_and_missing_fields(bundled: UseCase, tmp_path) -> None:
    raw = yaml.safe_load((bundled.package_dir / "card.yaml").read_text())
    raw["gates"]["validation"]["max_failing_fration"] = 0.1  # a typo must not pass silently
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationError, match="max_failing_fration"):
        RequirementsCard.load(path)


def test_every_table_has_a_suite_that_checks_its_keys(bundled: UseCase) -> None:
    for table in bundled.tables:
        not_null = {
            k["column"] for k in _kwargs(bundled, table.name, "expect_column_values_to_not_be_null")
        }
        unique = {
            k["column"] for k in _kwargs(bundled, table.name, "expect_column_values_to_be_unique")
        }
        assert {table.id_column, table.timestamp_column} <= not_null
        assert table.id_column in unique


def test_the_suite_allows_exactly_the_categories_the_model_knows(bundled: UseCase) -> None:
    value_sets = {
        k["column"]: k["value_set"]
        for table in bundled.tables
        for k in _kwargs(bundled, table.name, "expect_column_values_to_be_in_set")
    }
    task = bundled.task
    if task.classes:  # the codes of its classes
        assert value_sets[bundled.label] == list(range(len(task.classes)))
    elif task.kind == "binary":
        assert value_sets[bundled.label] == [0, 1]
    else:  # a number: its range is checked, not a set
        assert bundled.label not in value_sets
    checked = {name for name in bundled.categories if name in value_sets}
    for name in checked:
        assert value_sets[name] == list(bundled.categories[name])


def test_label_and_oracle_are_never_features(bundled: UseCase) -> None:
    from mlops.config.settings import Settings
    from mlops.stores.feature_store import feast_objects

    objects = feast_objects(Settings(), bundled)
    features = {
        f.name for o in objects if hasattr(o, "features") and hasattr(o, "ttl") for f in o.features
    }
    assert bundled.label not in features
    assert bundled.oracle_column is None or bundled.oracle_column not in features


def test_the_request_schema_is_strict_and_needs_the_entity_keys(bundled: UseCase) -> None:
    schema = bundled.request_model.model_json_schema()
    assert set(bundled.entity_keys) <= set(schema["required"])
    assert schema["additionalProperties"] is False
    assert bundled.label not in schema["properties"]
    assert set(bundled.request_features) <= set(schema["properties"])


def test_a_use_case_declares_where_its_data_comes_from(bundled: UseCase) -> None:
    assert bundled.generator is not None or bundled.data_files
    assert all(path.exists() for path in bundled.data_files)


@pytest.mark.parametrize(
    ("table", "column", "allowed"),
    [
        ("impressions", "device", "DEVICES"),
        ("impressions", "ad_position", "AD_POSITIONS"),
        ("users", "age_bucket", "AGE_BUCKETS"),
        ("users", "country", "COUNTRIES"),
        ("ads", "category", "AD_CATEGORIES"),
    ],
)
def test_adclick_suites_list_its_categories(table: str, column: str, allowed: str) -> None:
    from usecases.adclick import contract  # the use case's own constants

    adclick = load_use_case("adclick")
    sets = {
        k["column"]: k["value_set"]
        for k in _kwargs(adclick, table, "expect_column_values_to_be_in_set")
    }
    assert sets[column] == list(getattr(contract, allowed))


def test_mlops_card_names_another_card_for_the_same_use_case(tmp_path) -> None:
    from mlops.config.errors import UserError
    from mlops.config.settings import Settings
    from mlops.contracts.usecase import active_use_case

    card = yaml.safe_load((load_use_case("adclick").package_dir / "card.yaml").read_text())
    card["rollout"] = {"mode": "canary", "canary_share": 0.2}
    staging = tmp_path / "staging-card.yaml"
    staging.write_text(yaml.safe_dump(card))

    use_case = active_use_case(Settings(home=tmp_path, card=staging))
    assert (use_case.name, use_case.card.rollout.mode) == ("adclick", "canary")
    assert load_use_case("adclick").card.rollout.mode == "shadow"  # the package's, untouched

    card["rollout"] = {"mode": "sideways"}
    staging.write_text(yaml.safe_dump(card))
    with pytest.raises(UserError, match=r"MLOPS_CARD=.*staging-card\.yaml"):
        active_use_case(Settings(home=tmp_path, card=staging))
