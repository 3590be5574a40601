"""`mlops init-use-case`: a new tabular use case, drafted from a sample of its table.

    sample.csv -> infer_contract() (scaffold_inference): the contract and the sample's profile
               -> the GX suite (here), the card (scaffold_card), contract.yaml (here)
               -> write_use_case(): ROOT/usecases/NAME/{__init__.py, contract.yaml, card.yaml}
                                    ROOT/expectations/NAME/<table>.json

Everything is inferred from the sample and explained beside it (a YAML comment, a suite note),
so a reviewer sees what was guessed and why. Nothing here trains, lands or imports Feast.
"""

from __future__ import annotations

import json
import keyword
import math
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from entrypoints.scaffold_card import CardDraft, draft_card, yaml_inline
from entrypoints.scaffold_inference import (
    MAX_SLICE_VALUES,
    MAX_SLICES,
    Inference,
    Profile,
    Roles,
    infer_contract,
    read_sample,
    table_name,
)
from mlops.config.errors import UserError
from mlops.contracts.tabular import TabularContract

# A batch of more rows than this is a runaway feed, whatever the sample's volume.
MAX_TABLE_ROWS = 50_000_000
# The suite's lower time bound (unless the sample is older): an earlier time is a broken value,
# such as a placeholder date.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

# Suite statistics.
RANGE_MARGIN = 0.10  # numeric bounds widened by this share of the sample's range on each side
MOSTLY = 0.99  # share of a batch's rows a range or set must hold; the rest land as they are
MIN_NULL_MARGIN = 0.01  # a feature never missing in the sample may miss in 1% of a batch
NULL_SIGMAS = 3  # above the sample's null rate by 3 standard errors of a day's rate

# What GX reports for each kind of landed column: the landing zone reads strings as
# Arrow-backed StringDtype, integers with a null as Int64Dtype.
TYPE_LISTS: dict[str, list[str]] = {
    "int": ["int64", "Int64Dtype"],
    "float": ["float64", "Float64Dtype"],
    "string": ["StringDtype"],
    "category": ["StringDtype"],
}


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
    kinds |= {entity: contract["entity"]["type"]}
    kinds |= {label: "float" if profile.task == "regression" else "int"}
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
    expectations.append(_label_expectation(inference))
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


def _label_expectation(inference: Inference) -> dict[str, Any]:
    """The label's values as landing codes them: 1/0, the classes' places, numbers in range."""
    label, task = inference.contract["label"]["column"], inference.task
    if task["kind"] == "regression":
        stats = inference.stats[label]
        low, high = _widened(stats["min"], stats["max"], integer=False)
        return _expect(
            "expect_column_values_to_be_between",
            column=label,
            min_value=low,
            max_value=high,
            mostly=MOSTLY,
            notes=f"The sample's {stats['min']}..{stats['max']}, widened by {RANGE_MARGIN:.0%} "
            f"of that range each side; up to {1 - MOSTLY:.0%} of a batch may fall outside. "
            "Empty until known.",
        )
    if task["kind"] == "multiclass":
        return _expect(
            "expect_column_values_to_be_in_set",
            column=label,
            value_set=list(range(len(task["classes"]))),
            notes="Landed as the class's place in the card's task.classes (`mlops land` maps "
            "the source values); empty until known.",
        )
    return _expect(
        "expect_column_values_to_be_in_set",
        column=label,
        value_set=[0, 1],
        notes="Landed as 1/0 (`mlops land` maps the source values); empty until known.",
    )


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


# contract.yaml and __init__.py.


def contract_text(inference: Inference, name: str) -> str:
    """contract.yaml: the contract, with what was inferred and why beside each line."""
    c, p = inference.contract, inference.profile
    notes, entity, label = inference.notes, c["entity"], c["label"]
    lines = [
        f"# The data contract of {name}: drafted by `mlops init-use-case` from {p.source} "
        f"({p.rows} rows).",
        "# Review it before production: which columns are model inputs, their types and values.",
        f"table: {yaml_inline(c['table'])}  # the landed table: one row per event (one prediction, "
        "one label)",
        f"id: {yaml_inline(c['id'])}  # identifies a row ({notes[c['id']]}); landed twice: "
        "quarantined",
    ]
    if "id_type" in c:
        lines.append(f"id_type: {c['id_type']}  # the id's values: int | string")
    lines += [
        f"entity: {yaml_inline(entity)}  # what a prediction is about; type: string | int",
        f"timestamp: {yaml_inline(c['timestamp'])}  # when the row's values became known "
        f"({notes[c['timestamp']]})",
        "label:",
        f"  column: {yaml_inline(label['column'])}  # {notes[label['column']]}",
    ]
    if "positive" in label:
        lines += [
            f"  positive: {yaml_inline(label['positive'])}  # values in the source file that "
            "mean 1; `mlops land` maps them",
            f"  negative: {yaml_inline(label['negative'])}  # values that mean 0",
        ]
    lines += [
        "features:  # model inputs, served from Feast or sent with a request",
    ]
    lines += [
        f"  {yaml_inline(column)}: {yaml_inline(spec)}  # {notes[column]}"
        for column, spec in c["features"].items()
    ]
    if inference.ignored:
        lines.append("ignored:  # columns that are not model inputs, and why")
        lines += [f"  - {yaml_inline(col)}  # {why}" for col, why in inference.ignored.items()]
    else:
        lines.append("ignored: []  # columns that are not model inputs")
    lines += [
        f"slices: {yaml_inline(c['slices'])}  # evaluation slices: <= {MAX_SLICES} categories of "
        f"<= {MAX_SLICE_VALUES} values, most even first",
        f"score_name: {yaml_inline(c['score_name'])}",
        f"data_files: {yaml_inline(c['data_files'])}  # files in the package shipped with it "
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
            "task": self.inference.task,
            **({"positive_rate": round(p.positive_rate, 4)} if p.positive_rate is not None else {}),
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
    inference = infer_contract(frame, roles, table, source.name)
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
