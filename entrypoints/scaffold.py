"""`mlops init-use-case`: a new tabular use case, drafted from a sample of its table.

    sample.csv -> infer() -> contract (mlops/contracts/tabular.py's TabularContract), GX suite, card
               -> write_use_case(): ROOT/usecases/NAME/{__init__.py, contract.yaml, card.yaml}
                                    ROOT/expectations/NAME/<table>.json

Everything is inferred from the sample and explained beside it (a YAML comment, a suite note),
so a reviewer sees what was guessed and why. The sample is read as `mlops land` reads it, so
the types inferred are the types that land. Nothing here trains, lands or imports Feast.
"""

from __future__ import annotations

import json
import keyword
import math
import re
import shutil
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from mlops.config.errors import UserError
from mlops.contracts.batches import CSV_SUFFIXES, PARQUET_SUFFIXES, read_file, utc_times
from mlops.contracts.tabular import MAX_INT_KEY, TabularContract, label_key

MAX_CATEGORIES = 50  # more distinct strings than this: free text or an identifier, not a category
MAX_SLICES = 3
MAX_SLICE_VALUES = 10
EXAMPLES = 5  # values quoted in an error or a note
MAX_TABLE_ROWS = 50_000_000  # the suite's row-count bound (adclick's)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # the suite's lower time bound (adclick's)

# Suite statistics.
RANGE_MARGIN = 0.10  # numeric bounds widened by this share of the sample's range on each side
MOSTLY = 0.99  # share of a batch's rows a range or set must hold; the rest land as they are
MIN_NULL_MARGIN = 0.01  # a feature never missing in the sample may miss in 1% of a batch
NULL_SIGMAS = 3  # above the sample's null rate by 3 standard errors of a day's rate

# Card arithmetic (see `draft_card` and the comments it writes).
TEST_MINORITY_ROWS = 100  # rows of the rarer class the test window should hold
SLICE_MINORITY_ROWS = 70  # ... and each judged slice (adclick: 2,000 rows at a ~3.5% rate)
MIN_SLICE_ROWS = 30
TRAIN_TO_TEST = 3  # train:validation:test = 3:1:1 when the sample allows it
RESERVED_DAYS = 2  # days `mlops run` serves and monitors after the first model's windows
MIN_MONITORED_ROWS = 20
ADCLICK_NCE_DEGRADATION, ADCLICK_ROWS_PER_WINDOW = 0.04, 5_000
MIN_NCE_DEGRADATION, MAX_NCE_DEGRADATION = 0.02, 0.3
MAX_REFERENCE_ROWS, MAX_SAMPLE_ROWS = 20_000, 50_000
MIN_THROUGHPUT_RPS, PEAK_MULTIPLE = 10, 10

LABEL_PAIRS: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = (
    ("Yes/No", frozenset({"yes", "y"}), frozenset({"no", "n"})),
    ("True/False", frozenset({"true"}), frozenset({"false"})),
    ("1/0", frozenset({"1"}), frozenset({"0"})),
)
MAPPED = "Yes/No (or Y/N), True/False or 1/0, in any case"

# What GX reports for each kind of landed column (the adclick suites' type lists): the landing
# zone reads strings as Arrow-backed StringDtype, integers with a null as Int64Dtype.
TYPE_LISTS: dict[str, list[str]] = {
    "int": ["int64", "Int64Dtype"],
    "float": ["float64", "Float64Dtype"],
    "string": ["StringDtype"],
    "category": ["StringDtype"],
}

Kind = Literal["int", "string"]


@dataclass(frozen=True)
class Roles:
    """Which columns of the sample are what, as the user named them."""

    entity: str
    timestamp: str
    label: str
    id: str | None = None


@dataclass(frozen=True)
class Profile:
    """What the sample says about volume and time: the card's numbers follow from it."""

    source: str  # the file's name, as the drafted files cite it
    rows: int
    labelled: int
    positives: int
    days: int  # UTC calendar days from the first row's to the last row's, at least 1
    first: datetime
    last: datetime
    peak_rows_per_second: float  # the busiest hour's rows / 3600

    @property
    def positive_rate(self) -> float:
        return self.positives / self.labelled

    @property
    def rarer_rate(self) -> float:
        """The rarer class's share: what the noise of NCE, AUC and ECE depends on."""
        return min(self.positive_rate, 1 - self.positive_rate)

    @property
    def rows_per_day(self) -> float:
        return self.rows / self.days

    @property
    def labelled_per_day(self) -> float:
        return self.labelled / self.days


@dataclass
class Inference:
    """The contract drafted from a sample, with why each column is what it is."""

    contract: dict[str, Any]
    profile: Profile
    notes: dict[str, str]  # column -> what was inferred and why (contract.yaml's comments)
    ignored: dict[str, str]  # column -> why it is not a model input
    stats: dict[str, dict[str, Any]]  # feature -> null rate, min, max (the suite's numbers)
    warnings: list[str] = field(default_factory=list)


# Reading.


def read_sample(path: Path) -> pd.DataFrame:
    """The sample as `mlops land` reads it (same parser, same types, same missing values)."""

    if not path.name.endswith((*CSV_SUFFIXES, *PARQUET_SUFFIXES)):
        raise UserError(f"{path}: not a CSV or parquet file (.csv, .csv.gz, .parquet)")
    frame = read_file(path)
    if frame.empty:
        raise UserError(f"{path}: holds no rows; a sample needs rows to infer from")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def table_name(path: Path) -> str:
    """The file's name without its format suffixes, as a lower-case identifier."""

    name = path.name
    for suffix in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        name = name.removesuffix(suffix)
    return safe_identifier(name, fallback="events")


def safe_identifier(text: str, fallback: str) -> str:
    """`text` as a snake-case identifier (`AccountKey`, `account key` -> `account_key`)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    name = re.sub(r"[^0-9a-z]+", "_", snake.lower()).strip("_")
    if not name:
        return fallback
    return f"t_{name}" if name[0].isdigit() else name


# Inference.


def infer(frame: pd.DataFrame, roles: Roles, table: str, source: str) -> Inference:
    """The contract for `frame` (columns named by `roles`); a column that cannot play its role
    is a `UserError` naming it."""
    _check_roles(frame, roles)
    notes: dict[str, str] = {}
    entity_kind = _key_kind(frame[roles.entity])
    entity_nulls = int(frame[roles.entity].isna().sum())
    if entity_nulls:
        raise UserError(
            f"entity column '{roles.entity}' is empty in {entity_nulls} of {len(frame)} rows: "
            "every row needs the entity it is about"
        )
    id_column = _id_column(frame, roles)
    times = utc_times(frame[roles.timestamp], roles.timestamp, "--timestamp")
    positive, negative, labels = label_mapping(frame[roles.label], roles.label)
    keys = {roles.entity, roles.timestamp, roles.label, id_column}
    features: dict[str, dict[str, Any]] = {}
    ignored: dict[str, str] = {}
    stats: dict[str, dict[str, Any]] = {}
    for column in frame.columns:
        if column in keys:
            continue
        spec, why = _feature(frame[column])
        if spec is None:
            ignored[column] = why
            continue
        features[column] = spec
        notes[column] = why
        stats[column] = _stats(frame[column], spec)
    if not features:
        raise UserError(
            f"no column of the sample can be a model input (ignored: "
            f"{', '.join(f'{c} ({w})' for c, w in ignored.items()) or 'none besides the keys'})"
        )
    profile = _profile(frame, times, labels, source)
    contract: dict[str, Any] = {"table": table, "id": id_column}
    if id_column != roles.entity:
        contract["id_type"] = _key_kind(frame[id_column])
    contract |= {
        "entity": {
            "name": entity_name(roles.entity, table),
            "column": roles.entity,
            "type": entity_kind,
        },
        "timestamp": roles.timestamp,
        "label": {"column": roles.label, "positive": positive, "negative": negative},
        "features": features,
        "ignored": list(ignored),
        "slices": _slices(frame, features),
        "score_name": f"{safe_identifier(roles.label, fallback='label')}_probability",
        "data_files": [],
    }
    notes[id_column] = "--id" if roles.id else "the entity column: unique in the sample"
    notes[roles.timestamp] = (
        f"{profile.first:%Y-%m-%d} to {profile.last:%Y-%m-%d} UTC, {profile.days} day(s)"
    )
    notes[roles.label] = (
        f"{profile.positives} of {profile.labelled} labelled rows positive "
        f"({profile.positive_rate:.1%})"
    )
    inference = Inference(contract, profile, notes, ignored, stats)
    inference.warnings = _warnings(inference)
    return inference


def _check_roles(frame: pd.DataFrame, roles: Roles) -> None:
    named = {
        "--entity": roles.entity,
        "--timestamp": roles.timestamp,
        "--label": roles.label,
        **({"--id": roles.id} if roles.id else {}),
    }
    missing = [f"{option} {column!r}" for option, column in named.items() if column not in frame]
    if missing:
        raise UserError(
            f"the sample has no column {', '.join(missing)}; its columns are "
            f"{', '.join(map(repr, frame.columns))}"
        )
    distinct = [roles.entity, roles.timestamp, roles.label]
    if roles.id and roles.id != roles.entity:
        distinct.append(roles.id)
    if len(set(distinct)) < len(distinct):
        raise UserError(
            f"{', '.join(f'{o} {c!r}' for o, c in named.items())}: the entity, timestamp, label "
            "(and id, unless it is the entity) must be different columns"
        )


def _key_kind(values: pd.Series) -> Kind:
    """int when every value is a whole number (a JSON client keeps it exact), else string."""

    present = values.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "string"
    numbers = present.astype("float64")
    whole = bool((numbers == numbers.round()).all())
    return "int" if whole and bool((numbers.abs() <= MAX_INT_KEY).all()) else "string"


def _id_column(frame: pd.DataFrame, roles: Roles) -> str:
    """`--id`, else the entity column when it identifies a row (unique in the sample)."""
    column = roles.id or roles.entity
    values = frame[column]
    if roles.id:
        nulls = int(values.isna().sum())
        if nulls:
            raise UserError(
                f"id column '{column}' is empty in {nulls} of {len(frame)} rows: an id "
                "identifies every row"
            )
    distinct = int(values.nunique())
    if distinct < len(frame):
        if roles.id:
            raise UserError(
                f"id column '{column}' repeats ({len(frame)} rows, {distinct} distinct): an id "
                "identifies one row, and a row landed twice is quarantined"
            )
        raise UserError(
            f"entity column '{column}' repeats ({len(frame)} rows, {distinct} distinct): name "
            "the column that identifies a row with --id"
        )
    return column


def entity_name(column: str, table: str) -> str:
    """The entity's Feast name: `customer` for `customer_id` or `CustomerKey` (`table` for a
    bare `id`)."""
    name = safe_identifier(column, fallback=table)
    stripped = name.removesuffix("_id").removesuffix("_key")
    return table if stripped in ("id", "key") else stripped


def label_mapping(values: pd.Series, column: str) -> tuple[list[Any], list[Any], pd.Series]:
    """The source values that mean 1 and 0, exactly as the file holds them, and the column as
    1/0 (missing: not labelled yet). Anything but one mapped pair is a `UserError`."""
    present = values.dropna()
    found = [_native(v) for v in present.drop_duplicates().tolist()]
    if not found:
        raise UserError(f"label column '{column}' is empty in every row of the sample")
    keys = {label_key(v) for v in found}
    pair = next(((n, p, q) for n, p, q in LABEL_PAIRS if keys <= p | q), None)
    if pair is None:
        raise UserError(
            f"label column '{column}' holds {len(found)} distinct value(s) "
            f"({_examples(present)}): a label is binary, and only {MAPPED} are mapped to 1 "
            "and 0; map the column to one of those pairs first"
        )
    name, yes, no = pair
    positive = [v for v in found if label_key(v) in yes]
    negative = [v for v in found if label_key(v) in no]
    if not positive or not negative:
        raise UserError(
            f"label column '{column}' holds only {_examples(present)} ({len(present)} labelled "
            f"rows): the sample needs both classes of {name} to learn and to draft the gates"
        )
    ones = {label_key(v) for v in positive}
    labels = values.map(lambda v: None if pd.isna(v) else int(label_key(v) in ones))
    return positive, negative, labels


def _native(value: Any) -> Any:
    """A value as YAML writes it back as the same value: whole floats as ints (1.0 is 1)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _feature(values: pd.Series) -> tuple[dict[str, Any] | None, str]:
    """The feature spec of a column and why, or None and why it is not a model input."""
    present = values.dropna()
    missing = 1 - len(present) / len(values)
    gaps = f", {missing:.1%} missing" if missing else ""
    if present.empty:
        return None, "empty in every row of the sample"
    if pd.api.types.is_bool_dtype(values):
        return {"type": "category", "values": ["False", "True"]}, f"true/false{gaps}"
    distinct = int(present.nunique())
    if distinct == 1:
        return None, f"one value in every row ({_examples(present)}): nothing to learn from"
    if pd.api.types.is_integer_dtype(values):
        low, high = int(present.min()), int(present.max())
        return {"type": "int"}, f"integers {low}..{high}{gaps}"
    if pd.api.types.is_float_dtype(values):
        low_f, high_f = float(present.min()), float(present.max())
        return {"type": "float"}, f"decimals {low_f:g}..{high_f:g}{gaps}"
    if not (pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values)):
        return None, f"{values.dtype} values: not a type the contract takes (int, float, category)"
    text = present.astype(str)
    if _all_times(text):
        return None, "holds times: derive a number from it (e.g. days since) in code"
    if distinct > MAX_CATEGORIES:
        return None, (
            f"{distinct} distinct strings in {len(present)} rows (> {MAX_CATEGORIES}): free "
            "text or an identifier, not a category"
        )
    return {"type": "category", "values": sorted(text.unique().tolist())}, (
        f"{distinct} distinct strings{gaps}"
    )


def _all_times(text: pd.Series) -> bool:
    """Whether every value is an ISO 8601 date or time (a date column, not a category)."""
    if not text.str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    return bool(pd.to_datetime(text, errors="coerce", format="ISO8601").notna().all())


def _stats(values: pd.Series, spec: dict[str, Any]) -> dict[str, Any]:
    present = values.dropna()
    stats: dict[str, Any] = {"null_rate": 1 - len(present) / len(values)}
    if spec["type"] in ("int", "float"):
        stats |= {"min": _native(present.min()), "max": _native(present.max())}
    return stats


def _slices(frame: pd.DataFrame, features: dict[str, dict[str, Any]]) -> list[str]:
    """Up to 3 category features with 2-10 values, those whose rarest value is most common
    first (a slice needs rows to be judged)."""
    candidates = []
    for column, spec in features.items():
        values = spec.get("values")
        if values and 2 <= len(values) <= MAX_SLICE_VALUES:
            rarest = frame[column].dropna().astype(str).value_counts(normalize=True).min()
            candidates.append((-float(rarest), column))
    return [column for _, column in sorted(candidates)[:MAX_SLICES]]


def _profile(frame: pd.DataFrame, times: pd.Series, labels: pd.Series, source: str) -> Profile:
    first, last = times.min(), times.max()
    days = max(1, (last.date() - first.date()).days + 1)
    peak_hour = int(times.dt.floor("h").value_counts().max())
    return Profile(
        source=source,
        rows=len(frame),
        labelled=int(labels.notna().sum()),
        positives=int((labels == 1).sum()),
        days=days,
        first=first.to_pydatetime(),
        last=last.to_pydatetime(),
        peak_rows_per_second=peak_hour / 3600,
    )


def _warnings(inference: Inference) -> list[str]:
    profile, warnings = inference.profile, []
    minority = round(profile.labelled * profile.rarer_rate)
    if minority < TEST_MINORITY_ROWS:
        warnings.append(
            f"the sample holds only {minority} labelled rows of the rarer class: metrics on any "
            "window of it are noisy; the card's gates are drafted accordingly loose"
        )
    if profile.labelled < profile.rows:
        warnings.append(
            f"{profile.rows - profile.labelled} rows have no label (allowed: a label may "
            "arrive later); the card's numbers count labelled rows where labels matter"
        )
    return warnings


def _examples(values: pd.Series) -> str:
    shown = values.drop_duplicates().head(EXAMPLES).tolist()
    return ", ".join(repr(_native(v)) for v in shown)


# The GX suite.


def draft_suite(inference: Inference, name: str) -> dict[str, Any]:
    """The table's GX 1.x expectation suite, from the sample's statistics: keys, types, the
    label's values, each feature's missing share, range or set. Loose by a margin each, so
    the sample's own rows pass and a changed world does not."""
    contract, profile = inference.contract, inference.profile
    id_column, entity = contract["id"], contract["entity"]["column"]
    timestamp, label = contract["timestamp"], contract["label"]["column"]
    features: dict[str, dict[str, Any]] = contract["features"]
    keys = list(dict.fromkeys([id_column, entity, timestamp, label]))
    expectations: list[dict[str, Any]] = [
        _expect(
            "expect_table_columns_to_match_set", column_set=[*keys, *features], exact_match=False
        ),
        _expect("expect_table_row_count_to_be_between", min_value=1, max_value=MAX_TABLE_ROWS),
    ]
    kinds = {id_column: contract.get("id_type") or contract["entity"]["type"]}
    kinds |= {entity: contract["entity"]["type"], label: "int"}
    kinds |= {column: spec["type"] for column, spec in features.items()}
    for column, kind in kinds.items():
        expectations.append(
            _expect(
                "expect_column_values_to_be_in_type_list", column=column, type_list=TYPE_LISTS[kind]
            )
        )
    for column in dict.fromkeys([id_column, entity, timestamp]):
        expectations.append(_expect("expect_column_values_to_not_be_null", column=column))
    expectations.append(
        _expect(
            "expect_column_values_to_be_unique",
            column=id_column,
            notes="A row's id: a row landed twice is quarantined.",
        )
    )
    earliest = min(
        EARLIEST, profile.first.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    )
    expectations.append(
        _expect(
            "expect_column_values_to_be_between",
            column=timestamp,
            min_value=earliest.isoformat(),
            max_value={"$PARAMETER": "closed_at"},
            notes="Not in the future (after the batch closed); also the type check: a "
            "non-timestamp column cannot be compared.",
        )
    )
    expectations.append(
        _expect(
            "expect_column_values_to_be_in_set",
            column=label,
            value_set=[0, 1],
            notes="Landed as 1/0 (`mlops land` maps the source values); empty until known.",
        )
    )
    for column, spec in features.items():
        expectations.extend(_feature_expectations(column, spec, inference.stats[column], profile))
    return {
        "name": f"{name}.{contract['table']}",
        "meta": {
            "notes": (
                f"Profiled by `mlops init-use-case` from {profile.source} on {profile.rows} rows "
                f"({profile.first:%Y-%m-%d} to {profile.last:%Y-%m-%d}). Review before production: "
                "each feature's allowed missing share, numeric range and category set come from "
                "that sample plus a margin (see each expectation's notes); tighten what must "
                "never happen, widen what the sample did not show."
            )
        },
        "expectations": expectations,
    }


def _feature_expectations(
    column: str, spec: dict[str, Any], stats: dict[str, Any], profile: Profile
) -> list[dict[str, Any]]:
    rate = stats["null_rate"]
    # A day's batch has rows_per_day rows: its null rate wanders by sqrt(r(1-r)/n) around the
    # sample's r. Allow 3 of those (at least 1%), so a normal day passes and a broken feed not.
    margin = max(MIN_NULL_MARGIN, NULL_SIGMAS * math.sqrt(rate * (1 - rate) / profile.rows_per_day))
    mostly = math.floor(max(0.0, 1 - rate - margin) * 100) / 100
    out = [
        _expect(
            "expect_column_values_to_not_be_null",
            column=column,
            mostly=mostly,
            notes=f"{rate:.1%} missing in the sample; allowed: up to {1 - mostly:.0%} of a batch "
            f"(the sample's share + max({MIN_NULL_MARGIN:.0%}, {NULL_SIGMAS} standard errors of "
            f"a day's share at {profile.rows_per_day:.0f} rows a day)); above it the missing "
            "rows are quarantined.",
        )
    ]
    if spec["type"] in ("int", "float"):
        low, high = _widened(stats["min"], stats["max"], integer=spec["type"] == "int")
        out.append(
            _expect(
                "expect_column_values_to_be_between",
                column=column,
                min_value=low,
                max_value=high,
                mostly=MOSTLY,
                notes=f"The sample's {stats['min']}..{stats['max']}, widened by "
                f"{RANGE_MARGIN:.0%} of that range each side"
                f"{' (not below 0: it never was)' if stats['min'] >= 0 else ''}; up to "
                f"{1 - MOSTLY:.0%} of a batch may fall outside.",
            )
        )
    else:
        out.append(
            _expect(
                "expect_column_values_to_be_in_set",
                column=column,
                value_set=spec["values"],
                mostly=MOSTLY,
                notes=f"The sample's values (the model's categories); up to {1 - MOSTLY:.0%} of "
                "a batch may hold another (the model reads it as unknown).",
            )
        )
    return out


def _widened(low: float, high: float, integer: bool) -> tuple[float, float]:
    """[low, high] widened by RANGE_MARGIN of its width each side, outward to a round number
    (integers stay integers); never below 0 for a column that never was."""
    margin = (high - low) * RANGE_MARGIN
    wide_low, wide_high = low - margin, high + margin
    if low >= 0:
        wide_low = max(0.0, wide_low)
    if integer:
        return math.floor(wide_low), math.ceil(wide_high)
    step = 10 ** (math.floor(math.log10(high - low)) - 2)  # 3 significant digits of the range
    digits = max(0, -math.floor(math.log10(step)))
    return (
        float(round(math.floor(wide_low / step) * step, digits)),
        float(round(math.ceil(wide_high / step) * step, digits)),
    )


def _expect(kind: str, notes: str | None = None, **kwargs: Any) -> dict[str, Any]:
    expectation: dict[str, Any] = {"type": kind, "kwargs": kwargs}
    if notes:
        expectation["meta"] = {"notes": notes}
    return expectation


# The requirements card.


@dataclass(frozen=True)
class CardDraft:
    card: dict[str, Any]  # validated by mlops.contracts.card.RequirementsCard
    text: str  # card.yaml: the same values, with why beside each number
    warnings: list[str]


def draft_card(inference: Inference, name: str) -> CardDraft:
    """The requirements card: TODO text for what only people know, numbers from the sample's
    volume (rows a day) and label rate, each with its formula in a comment."""
    from mlops.contracts.card import RequirementsCard
    from mlops.contracts.metrics import ECE_BINS

    p, warnings = inference.profile, []
    label = inference.contract["label"]
    rate, rarer = p.positive_rate, p.rarer_rate
    rarer_per_day = p.labelled_per_day * rarer

    # Windows: the test window holds ~TEST_MINORITY_ROWS of the rarer class; validation as long,
    # train 3x; all within the sample's days less those `mlops run` keeps to serve and monitor.
    needed = max(1, math.ceil(TEST_MINORITY_ROWS / rarer_per_day))
    room = p.days - RESERVED_DAYS
    ideal = (TRAIN_TO_TEST + 2) * needed
    if ideal <= room:
        train, validation, test = TRAIN_TO_TEST * needed, needed, needed
        windows_why = f"fits the sample's {p.days} days less {RESERVED_DAYS} kept to monitor."
    else:
        test = validation = max(1, room // (TRAIN_TO_TEST + 2))
        train = max(test, room - 2 * test)
        windows_why = (
            f"but the sample spans {p.days} days and `mlops run` keeps {RESERVED_DAYS} to serve "
            f"and monitor: test = validation = max(1, floor({room} / {TRAIN_TO_TEST + 2})) = "
            f"{test}, train = max({test}, {room} - 2 x {test}) = {train}."
        )
    if train + validation + test > room:
        warnings.append(
            f"the sample spans {p.days} day(s): too few for the card's windows "
            f"({train}+{validation}+{test} days) and {RESERVED_DAYS} more to serve and monitor; "
            "land more days before `mlops run`, or review card.yaml's windows"
        )
    elif test < needed:
        warnings.append(
            f"the test window ({test} day(s)) holds ~{test * rarer_per_day:.0f} rows of the "
            f"rarer class, fewer than {TEST_MINORITY_ROWS}: its metrics are noisy; a longer "
            "sample makes firmer gates"
        )
    test_labelled = max(1.0, p.labelled_per_day * test)

    min_slice_rows = max(MIN_SLICE_ROWS, math.ceil(SLICE_MINORITY_ROWS / rarer))
    # A calibrated model's ECE on n rows in B equal-mass bins: each bin's gap is ~N(0, s) with
    # s = sqrt(B p(1-p) / n); the mean of |gap| is 0.80 s, its spread over B bins 0.60 s / sqrt(B).
    # The floor sits 2 spreads above the mean: a calibrated model meets it.
    spread = math.sqrt(ECE_BINS * rate * (1 - rate) / test_labelled)
    ece_noise = spread * (
        math.sqrt(2 / math.pi) + 2 * math.sqrt(1 - 2 / math.pi) / math.sqrt(ECE_BINS)
    )
    ece_max = max(0.02, _round_up(ece_noise, 3))

    min_rows = max(MIN_MONITORED_ROWS, math.ceil(p.rows_per_day / 2))
    min_labelled = max(MIN_MONITORED_ROWS, math.ceil(p.labelled_per_day / 2))
    window_days = max(
        1, math.ceil(min_rows / p.rows_per_day), math.ceil(min_labelled / p.labelled_per_day)
    )
    window_rows = p.rows_per_day * window_days
    window_labelled = p.labelled_per_day * window_days
    # NCE's noise shrinks as 1/sqrt(rows): adclick's bound, scaled to this window's rows.
    scaled = ADCLICK_NCE_DEGRADATION * math.sqrt(ADCLICK_ROWS_PER_WINDOW / window_labelled)
    degradation = min(MAX_NCE_DEGRADATION, max(MIN_NCE_DEGRADATION, _round_up(scaled, 3)))
    test_rows = p.rows_per_day * test
    reference_rows = max(100, min(MAX_REFERENCE_ROWS, math.floor(test_rows)))
    sample_rows = max(1000, min(MAX_SAMPLE_ROWS, math.ceil(window_rows)))
    throughput = max(MIN_THROUGHPUT_RPS, math.ceil(PEAK_MULTIPLE * p.peak_rows_per_second))
    retrain_train = max(validation, math.ceil(train / 2))

    values = {
        "name": name,
        "label_column": label["column"],
        "positive": label["positive"],
        "negative": label["negative"],
        "train": train,
        "validation": validation,
        "test": test,
        "min_slice_rows": min_slice_rows,
        "ece_max": ece_max,
        "window_hours": 24 * window_days,
        "reference_rows": reference_rows,
        "sample_rows": sample_rows,
        "min_rows": min_rows,
        "min_labelled": min_labelled,
        "degradation": degradation,
        "throughput": throughput,
        "retrain_train": retrain_train,
        "ece_bins": ECE_BINS,
    }
    why = {
        "sample": f"{p.rows} rows over {p.days} day(s) ({p.rows_per_day:.1f} a day, "
        f"{p.labelled_per_day:.1f} labelled), {rate:.1%} positive: ~{rarer_per_day:.1f} rows of "
        "the rarer class a day",
        "windows": f"The test window should hold ~{TEST_MINORITY_ROWS} rows of the rarer "
        f"class: test_days = ceil({TEST_MINORITY_ROWS} / {rarer_per_day:.1f}) = {needed}, "
        f"validation as long, train {TRAIN_TO_TEST}x: {ideal} days, {windows_why}",
        "slices": f"ceil({SLICE_MINORITY_ROWS} / {rarer:.3f}) = "
        f"{math.ceil(SLICE_MINORITY_ROWS / rarer)}, at least {MIN_SLICE_ROWS}",
        "ece": "Outside the noise of a calibrated model's ECE on the test window's labelled "
        f"rows ({ECE_BINS} equal-mass bins): max(0.02, 1.07 x sqrt({ECE_BINS} x {rate:.3f} x "
        f"{1 - rate:.3f} / "
        f"{test_labelled:.0f})) = max(0.02, {ece_noise:.3f}).",
        "window": f"24 x max(1, ceil({min_rows} / {p.rows_per_day:.1f}), ceil({min_labelled} / "
        f"{p.labelled_per_day:.1f})) = {24 * window_days}",
        "degradation": f"adclick's {ADCLICK_NCE_DEGRADATION} at {ADCLICK_ROWS_PER_WINDOW} "
        "labelled rows a window, scaled by the noise (1/sqrt(rows)): "
        f"{ADCLICK_NCE_DEGRADATION} x sqrt({ADCLICK_ROWS_PER_WINDOW} / "
        f"{window_labelled:.0f}) = {_round_up(scaled, 3)} (rounded up), "
        f"within [{MIN_NCE_DEGRADATION}, {MAX_NCE_DEGRADATION}].",
        "throughput": f"max({MIN_THROUGHPUT_RPS}, {PEAK_MULTIPLE} x "
        f"{p.peak_rows_per_second:.3f} rows/s in the sample's busiest hour)",
    }
    text = _card_text(values, why, inference)
    card = yaml.safe_load(text)
    RequirementsCard.model_validate(card)  # a draft that does not validate is a platform bug
    return CardDraft(card, text, warnings)


def _round_up(value: float, digits: int) -> float:
    scale = 10**digits
    return math.ceil(value * scale - 1e-9) / scale


def _card_text(v: dict[str, Any], why: dict[str, str], inference: Inference) -> str:
    p = inference.profile
    entity = inference.contract["entity"]["name"]
    positive, negative = _flow(v["positive"]), _flow(v["negative"])
    objective = _folded(
        "TODO: what the business gains when the model is right, and what a wrong score costs; "
        "how much better than today is worth shipping.",
    )
    task = _folded(
        f"TODO: review. Binary classification: for each row (one {entity}), as of its "
        f"{inference.contract['timestamp']}, predict P({v['label_column']} is positive). Say "
        "who uses the score and whether calibration matters as much as ranking.",
    )
    definition = _folded("TODO: what makes a row positive, and when it is known.", indent=4)
    return f"""\
# Requirements card for {v["name"]}: steps 1-2 of ML system design. Every gate threshold the
# platform uses is here; code never hard-codes one.
{_comment(f"Drafted by `mlops init-use-case` from {p.source}: {why['sample']}.", 0)}
# The TODOs are yours; the numbers follow from the sample (each formula beside its number):
# review them before production (docs/make-it-yours.md).
use_case: {_flow(v["name"])}
business_objective: {objective}
ml_task: {task}
label:
  column: {_flow(v["label_column"])}
  # `mlops land` maps source values {positive} to 1 and {negative} to 0 (contract.yaml).
  definition: {definition}
  arrives_within_hours: 24  # TODO: how long after a row's time its label is known
offline_metrics:
  # Normalized cross-entropy: log loss divided by the log loss of always predicting the base
  # rate. Below 1 means the model knows more than the base rate; lower is better.
  primary: nce
  secondary: [roc_auc, pr_auc, ece, log_loss]
online_metric:
  name: TODO
  definition: "TODO: the business metric the model moves, measured per day per model version."
serving_slo:
{_comment(f"A generic default, review it: {why['throughput']}.", 2)}
  p99_latency_ms: 50
  throughput_rps: {v["throughput"]}
training:
  # The search tries up to `search_trials` parameter sets (seeded, so a rerun on the same data
  # picks the same model) and stops early when the time budget is spent.
  time_budget_seconds: 60
  search_trials: 6
  early_stopping_rounds: 30
  baseline_max_rows: 100000  # the logistic baseline converges long before 1M rows
  # Windows end at the newest ingested batch: train, then validation (early stopping, search),
  # then test (metrics, and the promotion gate re-scores the champion on it). Split by time.
{_comment(why["windows"], 2)}
  train_days: {v["train"]}
  validation_days: {v["validation"]}
  test_days: {v["test"]}
gates:
  validation:
    # Above this share of failing rows in any table, the whole batch is quarantined.
    max_failing_fraction: 0.05
  promotion:
    # The challenger must beat the champion on the primary metric (offline_metrics.primary) by at
    # least this, in that metric's better direction: here, NCE at least 0.002 lower.
    min_improvement: 0.002
    floors:                 # bounds every promoted model meets on the test window
      nce: {{max: 0.98}}
      roc_auc: {{min: 0.60}}
{_comment(why["ece"], 6)}
      ece: {{max: {v["ece_max"]}}}
    slice_tolerance: 0.01   # no slice's NCE may get worse than this
    # A slice is judged from ~{SLICE_MINORITY_ROWS} rows of the rarer class: {why["slices"]}.
    min_slice_rows: {v["min_slice_rows"]}
    # A floor inside its metric's bootstrap interval on the test window is noise, not a bar:
    # the gate still applies it, and warns.
    bootstrap_resamples: 200
    bootstrap_confidence: 0.90
  monitoring:
    # Each window (the last `window_hours` of traffic) is compared with the champion's
    # reference: a sample of its validation and test windows, stored with the model.
{_comment(f"Long enough for min_rows and min_labelled_rows: {why['window']}.", 4)}
    window_hours: {v["window_hours"]}
    # The reference: the test window's rows (at least 100, at most {MAX_REFERENCE_ROWS}).
    reference_rows: {v["reference_rows"]}
    # Evidently's seeded sample of a window: its rows (at least 1000, at most {MAX_SAMPLE_ROWS}).
    sample_rows: {v["sample_rows"]}
    # Below these a window decides nothing: half a day's (labelled) rows, >= {MIN_MONITORED_ROWS}.
    min_rows: {v["min_rows"]}
    min_labelled_rows: {v["min_labelled"]}
    # Performance: labelled NCE worse than the reference's by more than this -> retrain.
{_comment(why["degradation"], 4)}
    max_nce_degradation: {v["degradation"]}
    # Drift (adclick's thresholds, calibrated there over 20 seeds: docs/benchmarks.md#monitoring):
    # a window drifts when the score's distance to the reference (normed Wasserstein) reaches
    # `score_drift_threshold`, or when `drift_share` of the model's inputs reach
    # `column_drift_threshold` (Jensen-Shannon for categories); retrain when k of the last n
    # windows (same champion) drifted.
    score_drift_threshold: 0.12
    column_drift_threshold: 0.3
    drift_share: 0.5
    windows_k: 2
    windows_n: 3
    # Data incident -> alert, never retrain (a model trained on broken data is worse):
    max_quarantined_fraction: 0.01   # events the data path quarantined in the window
    max_null_fraction: 0.005         # requests missing a value of their own context
    # Retraining starts from a recent window, so a changed world dominates what is learned:
    # half the training days (at least the validation's), evaluated on windows as long as
    # training's so the gate judges with the same power.
    retrain_windows:
      train_days: {v["retrain_train"]}
      validation_days: {v["validation"]}
      test_days: {v["test"]}
"""


def _comment(text: str, indent: int) -> str:
    """`text` as YAML comment lines, wrapped, at `indent`."""
    prefix = " " * indent + "# "
    return "\n".join(textwrap.wrap(text, width=98, initial_indent=prefix, subsequent_indent=prefix))


def _folded(text: str, indent: int = 2) -> str:
    """A YAML folded block (`>`), wrapped: read back as `text` and a newline."""
    lines = textwrap.wrap(text, width=96 - indent, break_on_hyphens=False)
    return ">\n" + "\n".join(" " * indent + line for line in lines)


def _flow(value: Any) -> str:
    """`value` as one line of YAML (quoted where YAML would read it as something else)."""
    return (
        yaml.safe_dump(
            value, default_flow_style=True, width=2**31, sort_keys=False, allow_unicode=True
        )
        .removesuffix("\n...\n")
        .strip()
    )


# contract.yaml and __init__.py.


def contract_text(inference: Inference, name: str) -> str:
    """contract.yaml: the contract, with what was inferred and why beside each line."""
    c, p = inference.contract, inference.profile
    notes, entity, label = inference.notes, c["entity"], c["label"]
    lines = [
        f"# The data contract of {name}: drafted by `mlops init-use-case` from {p.source} "
        f"({p.rows} rows).",
        "# Review it before production: which columns are model inputs, their types and values.",
        f"table: {_flow(c['table'])}  # the landed table: one row per event (one prediction, "
        "one label)",
        f"id: {_flow(c['id'])}  # identifies a row ({notes[c['id']]}); landed twice: quarantined",
    ]
    if "id_type" in c:
        lines.append(f"id_type: {c['id_type']}  # the id's values: int | string")
    lines += [
        f"entity: {_flow(entity)}  # what a prediction is about; type: string | int",
        f"timestamp: {_flow(c['timestamp'])}  # when the row's values became known "
        f"({notes[c['timestamp']]})",
        "label:",
        f"  column: {_flow(label['column'])}  # {notes[label['column']]}",
        f"  positive: {_flow(label['positive'])}  # values in the source file that mean 1; "
        "`mlops land` maps them",
        f"  negative: {_flow(label['negative'])}  # values that mean 0",
        "features:  # model inputs, served from Feast or sent with a request",
    ]
    lines += [
        f"  {_flow(column)}: {_flow(spec)}  # {notes[column]}"
        for column, spec in c["features"].items()
    ]
    if inference.ignored:
        lines.append("ignored:  # columns that are not model inputs, and why")
        lines += [f"  - {_flow(col)}  # {why}" for col, why in inference.ignored.items()]
    else:
        lines.append("ignored: []  # columns that are not model inputs")
    lines += [
        f"slices: {_flow(c['slices'])}  # evaluation slices: <= {MAX_SLICES} categories of "
        f"<= {MAX_SLICE_VALUES} values, most even first",
        f"score_name: {_flow(c['score_name'])}",
        f"data_files: {_flow(c['data_files'])}  # files in the package shipped with it "
        "(`mlops run` lands them)",
    ]
    text = "\n".join(lines) + "\n"
    if yaml.safe_load(text) != c:  # the comments must never change a value
        raise RuntimeError(f"contract.yaml for {name} does not read back as drafted")
    return text


def init_text(name: str, profile: Profile) -> str:
    return (
        f'"""{name}: written by `mlops init-use-case` from {profile.source} ({profile.rows} '
        "rows).\n\n"
        f"Review contract.yaml, card.yaml and expectations/{name}/ before production "
        '(docs/make-it-yours.md)."""\n\n'
        "from pathlib import Path\n\n"
        "from mlops.contracts.tabular import tabular_use_case\n\n"
        "USE_CASE = tabular_use_case(Path(__file__).parent)\n"
    )


# Writing.


@dataclass(frozen=True)
class Scaffold:
    """What `init-use-case` wrote, and what it inferred (for the CLI's output)."""

    name: str
    files: list[Path]
    inference: Inference
    card: CardDraft
    stale: list[Path] = field(default_factory=list)  # suites a --force left beside the new one

    @property
    def warnings(self) -> list[str]:
        leftovers = [
            f"{path} is from before (--force writes only this table's suite): delete it if that "
            "table is gone"
            for path in self.stale
        ]
        return [*self.inference.warnings, *self.card.warnings, *leftovers]

    def summary(self) -> dict[str, Any]:
        c, p = self.inference.contract, self.inference.profile
        card = self.card.card
        return {
            "table": c["table"],
            "rows": p.rows,
            "days": p.days,
            "rows_per_day": round(p.rows_per_day, 2),
            "positive_rate": round(p.positive_rate, 4),
            "id": c["id"],
            "entity": c["entity"],
            "timestamp": c["timestamp"],
            "label": c["label"],
            "features": {col: spec["type"] for col, spec in c["features"].items()},
            "ignored": self.inference.ignored,
            "slices": c["slices"],
            "windows": {
                k: card["training"][k] for k in ("train_days", "validation_days", "test_days")
            },
        }


def check_name(name: str, root: Path, force: bool) -> Path:
    """The package folder for `name` under `root`; a name that is not an identifier, or is
    taken (unless `force`, and only by a use case under `root`), is a `UserError`."""
    from mlops.contracts.usecase import available_use_cases

    if not name.isidentifier() or keyword.iskeyword(name):
        raise UserError(
            f"use case name {name!r} is not a Python identifier (letters, digits, '_', not "
            "starting with a digit): it names a package"
        )
    package = root / "usecases" / name
    if name in available_use_cases(root) or package.exists():
        if not package.exists():
            raise UserError(
                f"use case '{name}' already exists (not under {root / 'usecases'}): it would "
                "hide a new one of that name; choose another name"
            )
        if not force:
            raise UserError(
                f"use case '{name}' already exists ({package}): choose another name, or "
                "--force to overwrite its contract, card and suite"
            )
    return package


def write_use_case(
    name: str, source: Path, root: Path, roles: Roles, force: bool = False
) -> Scaffold:
    """Infer a use case from the sample at `source` and write its files under `root`."""

    package = check_name(name, root, force)
    frame = read_sample(source)
    table = table_name(source)
    inference = infer(frame, roles, table, source.name)
    TabularContract.model_validate(inference.contract)  # what mlops.contracts.tabular will load
    contract = contract_text(inference, name)
    suite = draft_suite(inference, name)
    card = draft_card(inference, name)
    suite_path = root / "expectations" / name / f"{table}.json"
    files = {
        package / "__init__.py": init_text(name, inference.profile),
        package / "contract.yaml": contract,
        package / "card.yaml": card.text,
        suite_path: json.dumps(suite, indent=2) + "\n",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    shutil.rmtree(package / "__pycache__", ignore_errors=True)  # a --force: no stale bytecode
    stale = sorted(p for p in suite_path.parent.glob("*.json") if p != suite_path)
    return Scaffold(name, list(files), inference, card, stale)
