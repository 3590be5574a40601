"""What `mlops init-use-case` learns from a sample of a table: the contract (which column is
the id, the entity, the time, the label, a feature, or ignored, and why) and the sample's
profile (volume, label rate, days), from which the suite and the card are drafted.

The sample is read as `mlops land` reads it, so the types inferred are the types that land.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from ingestion import CSV_SUFFIXES, PARQUET_SUFFIXES, read_file, utc_times
from mlops.config.errors import UserError
from mlops.contracts.tabular import MAX_INT_KEY, label_key
from mlops.contracts.tasks import TaskKind

MAX_CATEGORIES = 50  # more distinct strings than this: free text or an identifier, not a category
MAX_SLICES = 3
MAX_SLICE_VALUES = 10
EXAMPLES = 5  # values quoted in an error or a note
# Fewer rows of the rarer class than this in a test window: its metrics are noisy (the card's
# windows aim at it, `entrypoints.scaffold_card`).
TEST_MINORITY_ROWS = 100

LABEL_PAIRS: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = (
    ("Yes/No", frozenset({"yes", "y"}), frozenset({"no", "n"})),
    ("True/False", frozenset({"true"}), frozenset({"false"})),
    ("1/0", frozenset({"1"}), frozenset({"0"})),
)
MAPPED = "Yes/No (or Y/N), True/False or 1/0, in any case"
MAX_CLASSES = 20  # more distinct values than this: numbers are a regression target
# The service's answer, named after the label: `churned_probability`, `price_prediction`.
SCORE_NAMES: dict[TaskKind, str] = {
    "binary": "{}_probability",
    "multiclass": "{}_probabilities",
    "regression": "{}_prediction",
}

Kind = Literal["int", "string"]


@dataclass(frozen=True)
class Roles:
    """Which columns of the sample are what, as the user named them."""

    entity: str
    timestamp: str
    label: str
    id: str | None = None
    task: TaskKind | None = None  # `--task`: what the label is, instead of inferring it


@dataclass(frozen=True)
class Profile:
    """What the sample says about volume and time: the card's numbers follow from it."""

    source: str  # the file's name, as the drafted files cite it
    rows: int
    labelled: int
    task: TaskKind
    # The share of labelled rows a metric's noise depends on: the rarer class's (binary,
    # multiclass), every row's (regression: 1).
    rarer_rate: float
    days: int  # UTC calendar days from the first row's to the last row's, at least 1
    first: datetime
    last: datetime
    peak_rows_per_second: float  # the busiest hour's rows / 3600

    positive_rate: float | None = None  # binary: the share of labelled rows that are 1

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
    # feature (and a regression label) -> null rate, min, max: the suite's numbers
    stats: dict[str, dict[str, Any]]
    task: dict[str, Any]  # the card's `task` section
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LabelDraft:
    """What the label column is: its task kind, the contract's `label` section, the card's
    `task` section, the column as landing codes it (NaN: not known yet) and in words."""

    kind: TaskKind
    contract: dict[str, Any]
    task: dict[str, Any]
    coded: pd.Series
    note: str


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


def infer_contract(frame: pd.DataFrame, roles: Roles, table: str, source: str) -> Inference:
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
    label = infer_label(frame[roles.label], roles.label, roles.task)
    keys = {roles.entity, roles.timestamp, roles.label, id_column}
    features: dict[str, dict[str, Any]] = {}
    ignored: dict[str, str] = {}
    stats: dict[str, dict[str, Any]] = {}
    for column in frame.columns:
        if column in keys:
            continue
        spec, why = _feature_spec(frame[column])
        if spec is None:
            ignored[column] = why
            continue
        features[column] = spec
        notes[column] = why
        stats[column] = _feature_stats(frame[column], spec)
    if not features:
        raise UserError(
            f"no column of the sample can be a model input (ignored: "
            f"{', '.join(f'{c} ({w})' for c, w in ignored.items()) or 'none besides the keys'})"
        )
    if label.kind == "regression":  # its range, for the suite
        stats[roles.label] = _feature_stats(label.coded, {"type": "float"})
    profile = _profile(frame, times, label, source)
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
        "label": label.contract,
        "features": features,
        "ignored": list(ignored),
        "slices": _slices(frame, features),
        "score_name": SCORE_NAMES[label.kind].format(safe_identifier(roles.label, "label")),
        "data_files": [],
    }
    notes[id_column] = "--id" if roles.id else "the entity column: unique in the sample"
    notes[roles.timestamp] = (
        f"{profile.first:%Y-%m-%d} to {profile.last:%Y-%m-%d} UTC, {profile.days} day(s)"
    )
    notes[roles.label] = label.note
    inference = Inference(contract, profile, notes, ignored, stats, label.task)
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


def infer_label(values: pd.Series, column: str, task: TaskKind | None = None) -> LabelDraft:
    """The label's task kind, from its values unless `task` says: a known pair of values
    (Yes/No, True/False, 1/0) is binary; numbers with fractions or more than `MAX_CLASSES`
    values are a regression target; 3 to `MAX_CLASSES` values (strings or integers) are
    classes. Anything else is a `UserError` naming the column and what it holds."""
    present = values.dropna()
    if present.empty:
        raise UserError(f"label column '{column}' is empty in every row of the sample")
    distinct = present.drop_duplicates()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if task is None:
        keys = {label_key(v) for v in distinct}
        whole = numeric and bool((present == present.round()).all())
        if any(keys <= yes | no for _, yes, no in LABEL_PAIRS):
            task = "binary"
        elif numeric and (not whole or len(distinct) > MAX_CLASSES):
            task = "regression"
        elif 3 <= len(distinct) <= MAX_CLASSES:
            task = "multiclass"
        else:
            raise UserError(
                f"label column '{column}' holds {len(distinct)} distinct value(s) "
                f"({_examples(present)}): not a binary label ({MAPPED}), nor 3 to {MAX_CLASSES} "
                "classes, nor numbers; map it to one of those, or say what it is with --task "
                "binary|multiclass|regression"
            )
    if task == "binary":
        positive, negative, coded = label_mapping(values, column)
        return LabelDraft(
            "binary",
            {"column": column, "positive": positive, "negative": negative},
            {"kind": "binary"},
            coded,
            f"{int((coded == 1).sum())} of {len(present)} labelled rows positive "
            f"({float((coded == 1).sum()) / len(present):.1%})",
        )
    if task == "regression":
        numbers = pd.to_numeric(values, errors="coerce")
        if not numeric or numbers.dropna().nunique() < 2:
            raise UserError(
                f"label column '{column}' holds {_examples(present)}: a regression label is "
                "numbers, at least two different ones"
            )
        known = numbers.dropna()
        counts = bool((known >= 0).all() and (known == known.round()).all())
        # Counts (visits, items, claims) are skewed and never negative: a Poisson model of their
        # mean fits them where squared error chases the few large ones.
        objective = "count:poisson" if counts else "reg:squarederror"
        return LabelDraft(
            "regression",
            {"column": column},
            {"kind": "regression", "objective": objective},
            numbers,
            f"{'counts' if counts else 'numbers'} {_native(known.min())}..{_native(known.max())},"
            f" median {_native(known.median())}",
        )
    classes = sorted(str(_native(v)) for v in distinct)
    if not 3 <= len(classes) <= MAX_CLASSES:
        raise UserError(
            f"label column '{column}' holds {len(classes)} distinct value(s) "
            f"({_examples(present)}): a multiclass label has 3 to {MAX_CLASSES} classes (two "
            "are a binary task)"
        )
    codes = {label_key(c): i for i, c in enumerate(classes)}
    coded = values.map(lambda v: None if pd.isna(v) else codes[label_key(v)])
    counts = present.map(lambda v: classes[codes[label_key(v)]]).value_counts()
    shares = ", ".join(f"{c} {counts.get(c, 0) / len(present):.0%}" for c in classes)
    return LabelDraft(
        "multiclass",
        {"column": column},
        {"kind": "multiclass", "classes": classes},
        coded,
        f"{len(classes)} classes, landed as their place in the card's task.classes: {shares}",
    )


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


def _feature_spec(values: pd.Series) -> tuple[dict[str, Any] | None, str]:
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


def _feature_stats(values: pd.Series, spec: dict[str, Any]) -> dict[str, Any]:
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


def _profile(frame: pd.DataFrame, times: pd.Series, label: LabelDraft, source: str) -> Profile:
    first, last = times.min(), times.max()
    days = max(1, (last.date() - first.date()).days + 1)
    peak_hour = int(times.dt.floor("h").value_counts().max())
    known = label.coded.dropna()
    shares = known.value_counts(normalize=True)
    return Profile(
        source=source,
        rows=len(frame),
        labelled=len(known),
        task=label.kind,
        rarer_rate=1.0 if label.kind == "regression" else float(shares.min()),
        positive_rate=float(shares.get(1, 0.0)) if label.kind == "binary" else None,
        days=days,
        first=first.to_pydatetime(),
        last=last.to_pydatetime(),
        peak_rows_per_second=peak_hour / 3600,
    )


def _warnings(inference: Inference) -> list[str]:
    profile, warnings = inference.profile, []
    minority = round(profile.labelled * profile.rarer_rate)
    if minority < TEST_MINORITY_ROWS:
        rows = "labelled rows" if profile.task == "regression" else "rows of the rarer class"
        warnings.append(
            f"the sample holds only {minority} {rows}: metrics on any window of it are noisy; "
            "the card's gates are drafted accordingly loose"
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
