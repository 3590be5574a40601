"""What the platform needs to know about a use case, and nothing more.

A use case is one package under `usecases/` (data contract, card, generator, features) plus its
expectation suites under `expectations/<name>/`. Platform code reads this object and never names
a column of a particular use case.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mlops.card import RequirementsCard
from mlops.errors import UserError
from mlops.settings import DATA_ROOT

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd
    from pydantic import BaseModel


@dataclass(frozen=True)
class TableSpec:
    """One landed table: its file, row id and the time each row became known."""

    name: str
    id_column: str
    timestamp_column: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.parquet"


@dataclass(frozen=True)
class FeatureInputs:
    """What a use case gets to compute a batch's feature rows.

    `history` is a DuckDB connection with one view per table, named after it, over every validated
    row in the offline store (this batch included). `closed_at` is when the batch closed: feature
    rows computed from it are stamped with that time, the moment their values became known.
    """

    batch_id: str
    tables: Mapping[str, pd.DataFrame]
    history: duckdb.DuckDBPyConnection
    closed_at: datetime


# (feature view name -> parquet glob) -> Feast objects (entities, feature views, services)
FeastDefinitions = Callable[[Callable[[str], str]], Sequence[Any]]
# Raw columns (events joined with the feature service's values) -> the model's inputs; see
# mlops/model_inputs.py for the contract.
ModelInputs = Callable[["Mapping[str, np.ndarray]"], "dict[str, np.ndarray]"]
# The same rows -> slice dimension -> the slice each row belongs to (e.g. device -> "mobile").
Slices = Callable[["pd.DataFrame"], "dict[str, pd.Series]"]


@dataclass(frozen=True)
class UseCase:
    name: str
    package_dir: Path
    tables: tuple[TableSpec, ...]
    event_table: str
    entity_keys: tuple[str, ...]  # join keys of the entities a prediction is about
    request_columns: tuple[str, ...]  # context a request carries itself (not from Feast)
    label: str
    oracle_column: str | None  # a simulation's true probability: the best any model can do
    feature_service: str
    generate: Callable[..., list[Path]]
    build_features: Callable[[FeatureInputs], dict[str, pd.DataFrame]]
    feast_definitions: FeastDefinitions
    model_inputs: ModelInputs  # one function for training and serving: no skew by design
    categories: Mapping[str, tuple[Any, ...]]  # categorical model inputs: fixed categories
    slices: Slices
    # Serving: one request's body (entity keys, request columns, and optionally the event's id
    # and timestamp, named as in the event table), and the name of the score it answers with.
    request_model: type[BaseModel]
    score_name: str

    @property
    def suites_dir(self) -> Path:
        return DATA_ROOT / "expectations" / self.name

    @cached_property
    def card(self) -> RequirementsCard:
        return RequirementsCard.load(self.package_dir / "card.yaml")

    def table(self, name: str) -> TableSpec:
        return next(t for t in self.tables if t.name == name)

    @property
    def events(self) -> TableSpec:
        """The table whose rows are predictions' moments: one labelled example each."""
        return self.table(self.event_table)

    def input_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's inputs for joined event rows, as training fits and scores them."""
        from mlops.model_inputs import as_frame, raw_columns

        return as_frame(self.model_inputs(raw_columns(frame)), self.categories, frame.index)

    @property
    def model_name(self) -> str:
        """The registered model's name in MLflow (one model per use case)."""
        return self.name


def available_use_cases() -> list[str]:
    """The packages under `usecases/`: what MLOPS_USE_CASE may name."""
    spec = importlib.util.find_spec("usecases")  # found, not imported by name (import-linter)
    folders = list(spec.submodule_search_locations or []) if spec else []
    return sorted(m.name for m in pkgutil.iter_modules(folders) if m.ispkg)


def load_use_case(name: str) -> UseCase:
    """Import `usecases.<name>` and return its `USE_CASE`; an unknown name, or a card that does
    not validate, is a `UserError` that says what is available or wrong."""
    if name not in available_use_cases():
        raise UserError(
            f"no use case '{name}' (MLOPS_USE_CASE): the use cases are "
            f"{', '.join(available_use_cases())}"
        )
    try:
        module = importlib.import_module(f"usecases.{name}")
    except ValidationError as err:  # the card, read when the package is imported
        raise UserError(f"use case '{name}': its card does not validate: {err}") from None
    return module.USE_CASE
