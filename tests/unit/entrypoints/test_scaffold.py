"""`mlops init-use-case`: what it infers from a sample, what it refuses (naming the column), and
that the files it writes are what mlops.contracts.tabular, GX and the card's schema accept."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from entrypoints.scaffold import check_name, write_use_case
from entrypoints.scaffold_inference import Roles, entity_name, safe_identifier
from mlops.config.errors import UserError
from mlops.contracts.card import RequirementsCard

ROLES = Roles(entity="customer_id", timestamp="signup_at", label="Churn")


def customers(rows: int = 400, days: int = 20, seed: int = 1) -> pd.DataFrame:
    """A table shaped like a fork's: string keys, a Yes/No label, gaps, a category, free text."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, days * 86_400, rows)).round()
    charges = rng.gamma(2.0, 30.0, rows).round(2)
    charges[rng.random(rows) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in rng.permutation(rows)],
            "signup_at": (pd.Timestamp("2026-01-01") + pd.to_timedelta(seconds, unit="s")).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "Churn": rng.choice(["Yes", "No"], rows, p=[0.3, 0.7]),
            "tenure": rng.integers(0, 72, rows),
            "Monthly Charges": charges,
            "contract": rng.choice(["month-to-month", "one-year", "two-year"], rows),
            "on": rng.choice(["yes", "no", "null"], rows),  # YAML would read all of it as non-text
            "paperless": rng.random(rows) < 0.5,
            "notes": [f"called on day {i}" for i in range(rows)],
            "last_seen": pd.Timestamp("2026-02-01").strftime("%Y-%m-%d"),  # one value: no signal
            "empty": pd.array([pd.NA] * rows, dtype="Int64"),
        }
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def scaffold(tmp_path: Path, frame: pd.DataFrame, roles: Roles = ROLES, name: str = "churn"):
    source = write(frame, tmp_path / "data" / "Customer Accounts.csv")
    return write_use_case(name, source, tmp_path / "root", roles)


def contract_of(tmp_path: Path, name: str = "churn") -> dict:
    return yaml.safe_load((tmp_path / "root" / "usecases" / name / "contract.yaml").read_text())


def test_files_land_under_the_root_and_mlops_tabular_loads_them(tmp_path: Path) -> None:
    from mlops.contracts.tabular import tabular_use_case

    done = scaffold(tmp_path, customers())
    root = tmp_path / "root"
    assert done.files == [
        root / "usecases" / "churn" / "__init__.py",
        root / "usecases" / "churn" / "contract.yaml",
        root / "usecases" / "churn" / "card.yaml",
        root / "expectations" / "churn" / "customer_accounts.json",
    ]
    init = (root / "usecases" / "churn" / "__init__.py").read_text()
    assert "from Customer Accounts.csv (400 rows)" in init
    assert "USE_CASE = tabular_use_case(Path(__file__).parent)" in init
    use_case = tabular_use_case(root / "usecases" / "churn")
    assert use_case.name == "churn" and use_case.event_table == "customer_accounts"
    assert use_case.suites_dir == root / "expectations" / "churn"
    assert use_case.card.use_case == "churn" and use_case.card.label.column == "Churn"


def test_types_are_inferred_and_non_inputs_ignored_with_a_reason(tmp_path: Path) -> None:
    done = scaffold(tmp_path, customers())
    contract = contract_of(tmp_path)
    assert contract == done.inference.contract  # the comments change no value
    assert contract["features"] == {
        "tenure": {"type": "int"},
        "Monthly Charges": {"type": "float"},  # names kept as they are
        "contract": {"type": "category", "values": ["month-to-month", "one-year", "two-year"]},
        "on": {"type": "category", "values": ["no", "null", "yes"]},  # strings, not bools
        "paperless": {"type": "category", "values": ["False", "True"]},
    }
    reasons = done.inference.ignored
    assert list(reasons) == ["notes", "last_seen", "empty"]
    assert "free text" in reasons["notes"]
    assert "one value" in reasons["last_seen"]
    assert "empty in every row" in reasons["empty"]
    assert contract["ignored"] == ["notes", "last_seen", "empty"]
    assert set(contract["slices"]) <= {"contract", "on", "paperless"}
    assert contract["score_name"] == "churn_probability"
    assert contract["data_files"] == []


def test_the_entity_identifies_a_row_when_unique(tmp_path: Path) -> None:
    scaffold(tmp_path, customers())
    contract = contract_of(tmp_path)
    assert contract["id"] == "customer_id"
    assert "id_type" not in contract
    assert contract["entity"] == {"name": "customer", "column": "customer_id", "type": "string"}


def test_a_repeating_entity_needs_an_id(tmp_path: Path) -> None:
    frame = customers()
    frame["customer_id"] = np.arange(len(frame)) % 50  # integers, each 8 times
    with pytest.raises(UserError, match=r"entity column 'customer_id' repeats \(400 rows, 50"):
        scaffold(tmp_path, frame)

    frame["event_no"] = np.arange(len(frame))
    scaffold(tmp_path, frame, Roles("customer_id", "signup_at", "Churn", id="event_no"))
    contract = contract_of(tmp_path)
    assert contract["id"] == "event_no" and contract["id_type"] == "int"
    assert contract["entity"]["type"] == "int"
    assert "event_no" not in contract["features"]


def test_an_entity_with_gaps_is_refused(tmp_path: Path) -> None:
    frame = customers()
    frame.loc[[3, 7], "customer_id"] = None
    with pytest.raises(UserError, match="entity column 'customer_id' is empty in 2 of 400 rows"):
        scaffold(tmp_path, frame)


def test_an_id_that_repeats_is_refused(tmp_path: Path) -> None:
    frame = customers().assign(event_no=1)
    with pytest.raises(UserError, match=r"id column 'event_no' repeats \(400 rows, 1 distinct\)"):
        scaffold(tmp_path, frame, Roles("customer_id", "signup_at", "Churn", id="event_no"))


@pytest.mark.parametrize(
    ("values", "suffix", "positive", "negative"),
    [
        (["Yes", "No", "yes"], ".csv", ["Yes", "yes"], ["No"]),
        (["Y", "N"], ".csv", ["Y"], ["N"]),
        (["True", "False"], ".csv", [True], [False]),  # pandas reads these as booleans
        ([True, False], ".parquet", [True], [False]),
        ([1, 0], ".csv", [1], [0]),
        (["1", "0"], ".parquet", ["1"], ["0"]),  # strings stay strings
    ],
)
def test_label_values_are_mapped_as_the_file_writes_them(
    tmp_path: Path, values: list, suffix: str, positive: list, negative: list
) -> None:
    frame = customers(rows=300)
    frame["Churn"] = [values[i % len(values)] for i in range(len(frame))]
    source = write(frame, tmp_path / f"customers{suffix}")
    write_use_case("churn", source, tmp_path / "root", ROLES)
    label = contract_of(tmp_path)["label"]
    assert label == {"column": "Churn", "positive": positive, "negative": negative}
    assert [type(v) for v in label["positive"]] == [type(v) for v in positive]


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["Yes", "No"], {"kind": "binary"}),
        ([1, 0, 0], {"kind": "binary"}),
        (["gold", "silver", "bronze", "silver"], {"kind": "multiclass",
                                                  "classes": ["bronze", "gold", "silver"]}),
        ([0, 1, 2], {"kind": "multiclass", "classes": ["0", "1", "2"]}),
        ([0.2, 0.7], {"kind": "regression", "objective": "reg:squarederror"}),
        (list(range(40)), {"kind": "regression", "objective": "count:poisson"}),
    ],
)  # fmt: skip
def test_the_task_kind_is_inferred_from_the_labels_values(
    tmp_path: Path, values: list, task: dict
) -> None:
    frame = customers()
    frame["Churn"] = [values[i % len(values)] for i in range(len(frame))]
    done = scaffold(tmp_path, frame)
    card = RequirementsCard.model_validate(done.card.card)
    assert card.task.model_dump(exclude_none=True) == task
    assert card.offline_metrics.primary == card.task.task().primary
    suite = json.loads(next(f for f in done.files if f.suffix == ".json").read_text())
    label = [e for e in suite["expectations"] if e["kwargs"].get("column") == "Churn"]
    assert [e["type"] for e in label][-1] == (
        "expect_column_values_to_be_between"
        if task["kind"] == "regression"
        else "expect_column_values_to_be_in_set"
    )


@pytest.mark.parametrize(
    ("values", "task", "message"),
    [
        (["A", "B"], None, r"'Churn' holds 2 distinct value\(s\) \('A', 'B'\).*--task"),
        (["No"], None, r"label column 'Churn' holds only 'No'"),
        ([f"c{i}" for i in range(30)], None, r"holds 30 distinct value\(s\)"),
        (["A", "B", "C"], "regression", r"a regression label is numbers"),
        (["Yes", "No"], "multiclass", r"3 to 20 classes \(two are a binary task\)"),
    ],
)
def test_a_label_that_is_no_task_kind_is_refused_naming_it(
    tmp_path: Path, values: list, task: str | None, message: str
) -> None:
    frame = customers()
    frame["Churn"] = [values[i % len(values)] for i in range(len(frame))]
    with pytest.raises(UserError, match=message):
        scaffold(tmp_path, frame, replace(ROLES, task=task))


def test_rows_without_a_label_yet_are_allowed(tmp_path: Path) -> None:
    frame = customers()
    frame.loc[frame.index[-40:], "Churn"] = None  # the newest rows: labels not known yet
    done = scaffold(tmp_path, frame)
    assert (done.inference.profile.rows, done.inference.profile.labelled) == (400, 360)
    assert any("40 rows have no label" in w for w in done.warnings)


def test_a_timestamp_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    frame = customers()
    frame.loc[5, "signup_at"] = "last tuesday"
    with pytest.raises(UserError, match=r"column 'signup_at' .*'last tuesday'"):
        scaffold(tmp_path, frame)
    frame["signup_at"] = np.arange(len(frame))  # epoch numbers are not times
    with pytest.raises(UserError, match="column 'signup_at' holds Int64 values"):
        scaffold(tmp_path, frame)


def test_a_column_named_twice_or_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no column --label 'churned'.*'Churn'"):
        scaffold(tmp_path, customers(), Roles("customer_id", "signup_at", "churned"))
    with pytest.raises(UserError, match="must be different columns"):
        scaffold(tmp_path, customers(), Roles("customer_id", "signup_at", "customer_id"))


def test_the_suite_is_a_gx_suite_with_the_platforms_checks(tmp_path: Path) -> None:
    from great_expectations.core import ExpectationSuite

    scaffold(tmp_path, customers())
    path = tmp_path / "root" / "expectations" / "churn" / "customer_accounts.json"
    raw = json.loads(path.read_text())
    suite = ExpectationSuite(**raw)
    assert suite.name == "churn.customer_accounts"
    assert "Customer Accounts.csv on 400 rows" in raw["meta"]["notes"]

    def kwargs(kind: str) -> dict[str, dict]:
        return {
            e["kwargs"].get("column"): e["kwargs"] for e in raw["expectations"] if e["type"] == kind
        }

    features = ["tenure", "Monthly Charges", "contract", "on", "paperless"]
    columns = kwargs("expect_table_columns_to_match_set")[None]
    assert columns == {
        "column_set": ["customer_id", "signup_at", "Churn", *features],
        "exact_match": False,
    }
    assert kwargs("expect_table_row_count_to_be_between")[None]["min_value"] == 1
    types = {
        c: k["type_list"] for c, k in kwargs("expect_column_values_to_be_in_type_list").items()
    }
    assert types == {
        "customer_id": ["StringDtype"],
        "Churn": ["int64", "Int64Dtype"],
        "tenure": ["int64", "Int64Dtype"],
        "Monthly Charges": ["float64", "Float64Dtype"],
        "contract": ["StringDtype"],
        "on": ["StringDtype"],
        "paperless": ["StringDtype"],
    }
    assert list(kwargs("expect_column_values_to_be_unique")) == ["customer_id"]
    not_null = kwargs("expect_column_values_to_not_be_null")
    assert not_null["customer_id"] == {"column": "customer_id"}  # keys: never missing
    assert not_null["signup_at"] == {"column": "signup_at"}
    assert "Churn" not in not_null  # a label may arrive later
    assert not_null["tenure"]["mostly"] == 0.99  # never missing in the sample: 1% may
    assert 0.6 < not_null["Monthly Charges"]["mostly"] < 0.9  # ~10% missing, 20 rows a day
    between = kwargs("expect_column_values_to_be_between")
    assert between["signup_at"]["max_value"] == {"$PARAMETER": "closed_at"}
    assert between["signup_at"]["min_value"] == "2000-01-01T00:00:00+00:00"
    assert between["tenure"]["min_value"] == 0 and isinstance(between["tenure"]["max_value"], int)
    assert between["tenure"]["max_value"] >= 71
    in_set = kwargs("expect_column_values_to_be_in_set")
    assert in_set["Churn"] == {"column": "Churn", "value_set": [0, 1]}
    assert in_set["contract"]["value_set"] == ["month-to-month", "one-year", "two-year"]
    assert in_set["contract"]["mostly"] == 0.99


def test_the_sample_lands_clean_and_a_broken_batch_does_not(tmp_path: Path) -> None:
    """The suite, run by the platform's own validation on the rows `mlops land` writes: every
    sample row passes; a batch with an unknown category in a fifth of its rows does not."""
    from ingestion.gx_validation import validate_table
    from ingestion.landing import land_files
    from mlops.contracts.batches import read_batch
    from mlops.contracts.tabular import tabular_use_case

    frame = customers(rows=200, days=2)
    done = scaffold(tmp_path, frame)
    use_case = tabular_use_case(done.files[0].parent)
    suite = done.files[-1]
    first, *_ = land_files(use_case, [tmp_path / "data" / "Customer Accounts.csv"], tmp_path / "l")
    batch = read_batch(first, use_case.tables)
    table = batch.tables[use_case.event_table]
    gx_root = tmp_path / "gx"
    clean = validate_table(table, suite, gx_root, batch.closed_at, "sample")
    assert (len(clean.quarantined), clean.problems) == (0, [])

    table.loc[table.index[::5], "contract"] = "lifetime"
    broken = validate_table(table, suite, gx_root, batch.closed_at, "broken")
    assert len(broken.quarantined) == len(table.index[::5])
    assert broken.reason_counts() == {"contract:in_set": len(table.index[::5])}


def test_the_card_validates_and_explains_its_numbers(tmp_path: Path) -> None:
    done = scaffold(tmp_path, customers())  # 400 rows over 20 days, ~30% churn
    path = tmp_path / "root" / "usecases" / "churn" / "card.yaml"
    card = RequirementsCard.load(path)
    text = path.read_text()
    assert card.use_case == "churn" and card.label.column == "Churn"
    assert card.business_objective.startswith("TODO:") and card.ml_task.startswith("TODO:")
    assert card.label.definition.startswith("TODO:") and card.label.arrives_within_hours == 24
    assert card.offline_metrics.primary == "nce"
    # 20 rows a day, ~6 churned: a test window of ~100 churned needs 17 days, more than the
    # 18 days the sample leaves: test = validation = 18 // 5 = 3, train = 18 - 6 = 12.
    training = card.training
    assert (training.train_days, training.validation_days, training.test_days) == (12, 3, 3)
    assert training.span_days <= 20 - 2
    promotion = card.gates.promotion
    assert promotion.floors["nce"].max == 0.98 and promotion.floors["roc_auc"].min == 0.6
    assert promotion.floors["ece"].max > 0.02  # 60 test rows: the noise sets the floor
    assert promotion.min_slice_rows >= 70 / 0.35
    monitoring = card.gates.monitoring
    assert monitoring.min_rows == MIN_ROWS_AT_20_A_DAY and monitoring.min_labelled_rows == 20
    assert monitoring.window_hours == 24
    assert monitoring.max_degradation == 0.3  # capped: 20 rows a day say little
    assert monitoring.reference_rows == 100 and monitoring.sample_rows == 1000
    assert card.serving_slo.throughput_rps == 10
    assert "ceil(100 / " in text and "ceil(70 / " in text and "1.07 x sqrt(20 x " in text
    assert any("rarer class" in w for w in done.warnings)


MIN_ROWS_AT_20_A_DAY = 20  # half a day's 20 rows is 10: the floor of 20 rows


def test_a_sample_of_few_days_still_gets_a_card_and_a_warning(tmp_path: Path) -> None:
    done = scaffold(tmp_path, customers(rows=200, days=2))
    training = done.card.card["training"]
    assert (training["train_days"], training["validation_days"], training["test_days"]) == (1, 1, 1)
    assert any("too few for the card's windows" in w for w in done.warnings)


def test_a_name_must_be_new_and_an_identifier(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with pytest.raises(UserError, match="not a Python identifier"):
        check_name("my-churn", root, force=False)
    with pytest.raises(UserError, match="not a Python identifier"):
        check_name("class", root, force=False)
    with pytest.raises(UserError, match="'adclick' already exists"):
        check_name("adclick", root, force=True)  # a packaged one would hide the new one

    scaffold(tmp_path, customers())
    with pytest.raises(UserError, match=r"'churn' already exists.*--force"):
        scaffold(tmp_path, customers())
    source = write(customers(), tmp_path / "data" / "customers.csv")  # another table name
    again = write_use_case("churn", source, root, ROLES, force=True)
    assert contract_of(tmp_path)["table"] == "customers"
    assert any("customer_accounts.json is from before" in w for w in again.warnings)


@pytest.mark.parametrize(
    ("column", "table", "expected"),
    [
        ("customer_id", "t", "customer"),
        ("CustomerID", "t", "customer"),
        ("AccountKey", "t", "account"),
        ("id", "orders", "orders"),
        ("Patient No.", "t", "patient_no"),
    ],
)
def test_entity_names_are_identifiers(column: str, table: str, expected: str) -> None:
    assert entity_name(column, table) == expected


def test_table_names_are_identifiers() -> None:
    assert safe_identifier("Customer Accounts (2026)", "x") == "customer_accounts_2026"
    assert safe_identifier("2026 sales", "x") == "t_2026_sales"
    assert safe_identifier("---", "x") == "x"


def test_drift_thresholds_sit_above_the_noise_of_the_cards_window(tmp_path: Path) -> None:
    small = scaffold(tmp_path, customers(rows=400, days=20)).card.card["gates"]["monitoring"]
    # 20 rows a day against a 100-row reference: quiet days differ by ~0.7 at the 99th percentile.
    assert small["score_drift_threshold"] == small["column_drift_threshold"] > 0.6
    large = scaffold(tmp_path / "large", customers(rows=60_000, days=20), name="big")
    gate = large.card.card["gates"]["monitoring"]
    assert (gate["score_drift_threshold"], gate["column_drift_threshold"]) == (0.12, 0.3)
