"""A use case from a declared contract: one table, one entity, a label, and feature columns.

    usecases/<name>/contract.yaml  -> tabular_use_case(package_dir) -> UseCase

The shape most tables people bring have (a row per customer, patient or transaction, with
numeric and categorical columns and an outcome: yes/no, one of a few classes, or a number)
needs no code: the contract says which column is which, and this module derives the rest the
platform needs from it: landing (types, the label as the card's task codes it), one Feast
feature view over the feature columns keyed by the entity, the model's inputs, evaluation
slices and the request schema. `mlops init-use-case` writes such a contract
from a sample; a use case with several tables or computed features writes its own package
instead (see usecases/adclick/).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd  # loaded with mlops.contracts.model_inputs anyway
import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)

from mlops.config.errors import UserError
from mlops.contracts.card import RequirementsCard
from mlops.contracts.model_inputs import Columns, as_float, category_codes
from mlops.contracts.tasks import Task
from mlops.contracts.usecase import MAX_INT_KEY, FeatureInputs, TableSpec, UseCase

if TYPE_CHECKING:
    import numpy as np
MAX_STRING_KEY = 256
FEATURE_TTL = timedelta(days=3650)  # an entity's last known values stay its values
MAX_EXAMPLES = 5


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntitySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    column: str
    type: Literal["int", "string"]


class LabelMapping(_Strict):
    """The label column and, for a binary task, the source values that mean 1 and 0 (mapped
    at landing). A multiclass label lands as its class's place in the card's `task.classes`, a
    regression label as a number: neither names values here."""

    column: str
    positive: list[str | int | bool] | None = Field(default=None, min_length=1)
    negative: list[str | int | bool] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _both_or_neither(self) -> LabelMapping:
        if (self.positive is None) != (self.negative is None):
            raise ValueError("a binary label names both its `positive` and `negative` values")
        return self


class FeatureSpec(_Strict):
    type: Literal["int", "float", "category"]
    values: list[str] | None = None  # a category's values; others are unknown (NaN)

    @model_validator(mode="after")
    def _values_for_categories(self) -> FeatureSpec:
        if (self.type == "category") != (self.values is not None):
            raise ValueError("`values` are given for a category feature, and only for one")
        return self


class TabularContract(_Strict):
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    id: str
    id_type: Literal["int", "string"] | None = None  # when the id is not the entity column
    entity: EntitySpec
    timestamp: str
    label: LabelMapping
    features: dict[str, FeatureSpec] = Field(min_length=1)
    ignored: list[str] = []
    slices: list[str] = []
    score_name: str
    data_files: list[str] = []

    @model_validator(mode="after")
    def _consistent(self) -> TabularContract:
        keys = {self.id, self.entity.column, self.timestamp, self.label.column}
        if clash := keys & set(self.features):
            raise ValueError(f"{sorted(clash)} cannot be both a key column and a feature")
        categories = {n for n, f in self.features.items() if f.type == "category"}
        if unknown := set(self.slices) - categories:
            raise ValueError(f"slices {sorted(unknown)} are not category features")
        return self

    @property
    def id_kind(self) -> Literal["int", "string"]:
        """The id's type: declared, else the entity's (the id is often the entity column)."""
        return self.id_type or self.entity.type

    @classmethod
    def load(cls, path: Path) -> TabularContract:
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except ValidationError as err:
            raise UserError(f"{path}: the contract does not validate: {err}") from None


def tabular_use_case(package_dir: Path) -> UseCase:
    """The `UseCase` a package's contract.yaml declares; its name is the package's."""
    contract = TabularContract.load(package_dir / "contract.yaml")
    name = package_dir.name
    task = _card_task(package_dir, contract)
    categories = {
        column: tuple(spec.values or ())
        for column, spec in contract.features.items()
        if spec.type == "category"
    }
    return UseCase(
        name=name,
        package_dir=package_dir,
        tables=(TableSpec(contract.table, contract.id, contract.timestamp),),
        event_table=contract.table,
        entity_keys=(contract.entity.column,),
        request_columns=(),
        label=contract.label.column,
        oracle_column=None,
        feature_service=f"{name}_model",
        build_features=_feature_rows(contract),
        feast_definitions=_feast_definitions(contract, name),
        model_inputs=_model_inputs(contract),
        categories=categories,
        slices=lambda frame: {s: frame[s].astype("string") for s in contract.slices},
        request_model=request_model(contract, name),
        score_name=contract.score_name,
        data_files=tuple(package_dir / f for f in contract.data_files),
        conform=_conform(contract, task),
        request_features=tuple(contract.features),
        feature_timestamp=contract.timestamp,
    )


def _card_task(package_dir: Path, contract: TabularContract) -> Task:
    """The card's task, and a contract whose label fits it: positive and negative values for
    a binary task, none for another kind."""
    task = RequirementsCard.load(package_dir / "card.yaml").task.task()
    mapped = contract.label.positive is not None
    if mapped != (task.kind == "binary"):
        raise UserError(
            f"{package_dir / 'contract.yaml'}: the card's task is {task.kind}, so the label "
            + (
                "names its positive and negative values"
                if task.kind == "binary"
                else "names no positive or negative values (a multiclass label lands as its "
                "class's place in the card's task.classes, a regression label as a number)"
            )
        )
    return task


def _view_name(contract: TabularContract) -> str:
    return f"{contract.entity.name}_features"


def _feature_rows(contract: TabularContract) -> Callable[[FeatureInputs], dict[str, pd.DataFrame]]:
    columns = [contract.entity.column, contract.timestamp, *contract.features]

    def build_features(inputs: FeatureInputs) -> dict[str, pd.DataFrame]:
        """A row's feature values are known when the row is: stamped with its own time."""
        return {_view_name(contract): inputs.tables[contract.table][columns]}

    return build_features


def _feast_definitions(
    contract: TabularContract, name: str
) -> Callable[[Callable[[str], str]], Sequence[Any]]:
    def feast_definitions(source_path: Callable[[str], str]) -> Sequence[Any]:
        from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
        from feast.types import Float64, Int64, String

        key_type = ValueType.INT64 if contract.entity.type == "int" else ValueType.STRING
        entity = Entity(
            name=contract.entity.name, join_keys=[contract.entity.column], value_type=key_type
        )
        dtypes = {"int": Int64, "float": Float64, "category": String}
        view_name = _view_name(contract)
        view = FeatureView(
            name=view_name,
            entities=[entity],
            ttl=FEATURE_TTL,
            schema=[Field(name=c, dtype=dtypes[f.type]) for c, f in contract.features.items()],
            source=FileSource(
                name=f"{view_name}_source",
                path=source_path(view_name),
                timestamp_field=contract.timestamp,
            ),
        )
        return [entity, view, FeatureService(name=f"{name}_model", features=[view])]

    return feast_definitions


def _model_inputs(contract: TabularContract) -> Callable[[Columns], dict[str, np.ndarray]]:
    def model_inputs(columns: Columns) -> dict[str, np.ndarray]:
        """Categories as codes of the contract's values, numbers as they are (NaN missing)."""
        return {
            column: category_codes(columns[column], spec.values)
            if spec.values is not None
            else as_float(columns[column])
            for column, spec in contract.features.items()
        }

    return model_inputs


def request_model(contract: TabularContract, name: str) -> type[BaseModel]:
    """One request: the entity key, optionally the row's id and time, and any feature values
    the caller has (used where the online store has none: an entity it does not know yet).
    Strict: no coercion ("3" is not 3), no unknown fields."""
    fields: dict[str, Any] = {contract.entity.column: _key_field(contract.entity.type, ...)}
    if contract.id != contract.entity.column:
        fields[contract.id] = _key_field(contract.id_kind, None)
    fields[contract.timestamp] = (
        AwareDatetime | None,
        Field(default=None, description="When the event happens (default: now)."),
    )
    for column, spec in contract.features.items():
        kind: Any = {"int": int, "float": float}.get(spec.type)
        if spec.values is not None:
            kind = Literal[tuple(spec.values)]
        fields[column] = (kind | None, None)
    return create_model(
        f"{name.title().replace('_', '')}Request",
        __config__=ConfigDict(extra="forbid", strict=True, frozen=True),
        **fields,
    )


def _key_field(kind: str, default: Any) -> tuple[Any, Any]:
    if kind == "int":
        return int | None if default is None else int, Field(
            default, ge=-MAX_INT_KEY, le=MAX_INT_KEY
        )
    return str | None if default is None else str, Field(
        default, min_length=1, max_length=MAX_STRING_KEY
    )


def _conform(contract: TabularContract, task: Task) -> Callable[[str, pd.DataFrame], pd.DataFrame]:
    def conform(table: str, frame: pd.DataFrame) -> pd.DataFrame:
        """A user's table as the contract lands it: its columns, typed, the label as the task
        codes it (1/0, a class's place, a number).
        A value that cannot be typed is a UserError naming the column (rows the suite would
        refuse, e.g. a category outside its values, land as they are and are quarantined)."""
        wanted = list(dict.fromkeys([contract.id, contract.entity.column, contract.timestamp]))
        wanted += [contract.label.column, *contract.features]
        if missing := [c for c in wanted if c not in frame.columns]:
            raise UserError(f"table '{table}' has no column {', '.join(map(repr, missing))}")
        landed = pd.DataFrame(index=frame.index)
        for column in wanted:
            values = frame[column]
            if column in (contract.id, contract.entity.column):
                is_entity = column == contract.entity.column
                kind = contract.entity.type if is_entity else contract.id_kind
                landed[column] = _integers(values, column) if kind == "int" else _strings(values)
            elif column == contract.timestamp:
                landed[column] = values  # read as UTC by `mlops land`, as every table's time
            elif column == contract.label.column:
                landed[column] = _labels(values, contract.label, task)
            else:
                spec = contract.features[column]
                if spec.type == "category":
                    landed[column] = _strings(values)
                elif spec.type == "int":
                    landed[column] = _integers(values, column)
                else:
                    landed[column] = _floats(values, column)
        return landed

    return conform


def _examples(values: pd.Series) -> str:
    return ", ".join(map(repr, values.drop_duplicates().head(MAX_EXAMPLES).tolist()))


def _strings(values: pd.Series) -> pd.Series:
    text = values.astype("string")
    # A CSV reads 'True' and 'False' as booleans: spelled back as they were written.
    return text.where(values.notna(), pd.NA).astype(pd.StringDtype("pyarrow"))


def _floats(values: pd.Series, column: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values[numbers.isna() & values.notna()]
    if len(bad):
        raise UserError(
            f"column '{column}' holds {len(bad)} value(s) that are not numbers "
            f"({_examples(bad)}); the contract says it is numeric"
        )
    return numbers.astype("float64")


def _integers(values: pd.Series, column: str) -> pd.Series:
    numbers = _floats(values, column)
    fractional = values[numbers.notna() & (numbers != numbers.round())]
    if len(fractional):
        raise UserError(
            f"column '{column}' holds {len(fractional)} non-integer value(s) "
            f"({_examples(fractional)}); the contract says it is an integer"
        )
    return numbers.astype("Int64")


def _labels(values: pd.Series, label: LabelMapping, task: Task) -> pd.Series:
    """The label as the task codes it, missing where it is not known yet: binary 1 for a
    positive value and 0 for a negative one; multiclass the class's place in the card's
    classes; regression the number."""
    if task.kind == "regression":
        return _floats(values, label.column)
    if label.positive is not None and label.negative is not None:
        codes = {label_key(v): 1 for v in label.positive} | {
            label_key(v): 0 for v in label.negative
        }
        known = f"neither positive {label.positive} nor negative {label.negative}"
    else:
        classes = task.classes
        codes = {label_key(c): code for code, c in enumerate(classes)}
        known = f"none of the card's classes {list(classes)}"
    mapped = values.map(lambda v: codes.get(label_key(v)) if pd.notna(v) else None)
    bad = values[mapped.isna() & values.notna()]
    if len(bad):
        raise UserError(
            f"label column '{label.column}' holds {len(bad)} value(s) that are {known} "
            f"({_examples(bad)}); the contract maps only those"
        )
    return mapped.astype("Int64")


def label_key(value: Any) -> str:
    """Label values compared as text, case-insensitively: True, 'true' and 'TRUE' are one, and
    1, 1.0 (an integer column with a gap, read by pandas) and '1' too."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()
