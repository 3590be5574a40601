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
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from mlops.config.errors import UserError
from mlops.config.settings import DATA_ROOT, Settings
from mlops.contracts.card import RequirementsCard
from mlops.contracts.tasks import Task

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd
    from pydantic import BaseModel


# The range of an integer id (an entity key, an event id): exact in every JSON client. The
# service accepts ids in it, and ingestion quarantines rows whose id is outside it.
MAX_INT_KEY = 2**53


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
# mlops/contracts/model_inputs.py for the contract.
ModelInputs = Callable[["Mapping[str, np.ndarray]"], "dict[str, np.ndarray]"]
# The same rows -> slice dimension -> the slice each row belongs to (e.g. country -> "DE").
Slices = Callable[["pd.DataFrame"], "dict[str, pd.Series]"]
# (table name, a table as read from a user's file) -> the table as the contract lands it
# (types, label values); a value it cannot conform is a UserError naming the column.
Conform = Callable[[str, "pd.DataFrame"], "pd.DataFrame"]


def _as_read(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame


@dataclass(frozen=True)
class Generator:
    """A use case's simulator, when it has one: seeded days of landed batches.

    `generate(landing_dir, *, start, days, events_per_day, seed, scenario, drift_day,
    incident_day, progress)` writes one batch per day and returns the batch directories; a
    scenario's changes start on `drift_day` (and a data incident on `incident_day`)."""

    generate: Callable[..., list[Path]]
    scenarios: tuple[str, ...]  # what `--scenario` may name, the first the plain world
    story: str  # the scenario `mlops run` tells unless told otherwise
    events_per_day: int  # what `mlops run` simulates unless told otherwise


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
    build_features: Callable[[FeatureInputs], dict[str, pd.DataFrame]]
    feast_definitions: FeastDefinitions
    model_inputs: ModelInputs  # one function for training and serving: no skew by design
    categories: Mapping[str, tuple[Any, ...]]  # categorical model inputs: fixed categories
    slices: Slices
    # Serving: one request's body (entity keys, request columns, and optionally the event's id
    # and timestamp, named as in the event table), and the name of the score it answers with.
    request_model: type[BaseModel]
    score_name: str
    # Where the data comes from: a simulator, files shipped with the use case (`mlops run` lands
    # them), or neither (`mlops run` replays the days `mlops land` put in the landing zone).
    generator: Generator | None = None
    data_files: tuple[Path, ...] = ()
    conform: Conform = _as_read  # what `mlops land` does to a user's table
    # Feature values a request may carry itself, used where the online store has none (an
    # entity the store does not know yet).
    request_features: tuple[str, ...] = ()
    # A simulation's best prediction from what was knowable before each event (the Bayes
    # ceiling): what a model can reach, where the oracle is what no model can.
    ceiling_column: str | None = None
    # Model inputs that are log-odds effects (binary tasks): the trees start from their sum
    # (mlops/contracts/model_inputs.py: BaseMargin) instead of from the base rate alone.
    base_margin: tuple[str, ...] = ()
    # The column holding each feature row's time (Feast's `timestamp_field` of every view).
    feature_timestamp: str = "event_timestamp"
    # The card, when it is not the package's own `card.yaml` (MLOPS_CARD).
    card_file: Path | None = None

    @property
    def suites_dir(self) -> Path:
        """`expectations/<name>/` beside the `usecases/` folder that holds the package (a
        checkout, or another use-cases root); an installed wheel keeps its own in DATA_ROOT."""
        beside = self.package_dir.parent.parent / "expectations" / self.name
        return beside if beside.is_dir() else DATA_ROOT / "expectations" / self.name

    @cached_property
    def card(self) -> RequirementsCard:
        return RequirementsCard.load(self.card_file or self.package_dir / "card.yaml")

    @cached_property
    def task(self) -> Task:
        """The card's task kind: what the stages ask instead of branching on it."""
        return self.card.task.task()

    def table(self, name: str) -> TableSpec:
        return next(t for t in self.tables if t.name == name)

    @property
    def events(self) -> TableSpec:
        """The table whose rows are predictions' moments: one labelled example each."""
        return self.table(self.event_table)

    def input_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's inputs for joined event rows, as training fits and scores them."""
        from mlops.contracts.model_inputs import as_frame, raw_columns

        return as_frame(self.model_inputs(raw_columns(frame)), self.categories, frame.index)

    @property
    def model_name(self) -> str:
        """The registered model's name in MLflow (one model per use case)."""
        return self.name


def available_use_cases(root: Path = DATA_ROOT) -> list[str]:
    """The packages under `usecases/` (and `root/usecases/`): what MLOPS_USE_CASE may name."""
    return sorted(m.name for m in pkgutil.iter_modules(_search_path(root)) if m.ispkg)


def _search_path(root: Path) -> list[str]:
    spec = importlib.util.find_spec("usecases")  # found, not imported by name (import-linter)
    folders = list(spec.submodule_search_locations or []) if spec else []
    extra = str(root.resolve() / "usecases")
    return folders if extra in folders else [*folders, extra]


def active_use_case(settings: Settings) -> UseCase:
    """The use case the settings name, from the packaged ones or `settings.use_cases_root`,
    with the card `settings.card` names, if it names one (a UserError if it does not load)."""
    use_case = load_use_case(settings.use_case, settings.use_cases_root)
    if settings.card is None:
        return use_case
    other = replace(use_case, card_file=settings.card)
    try:
        other.card  # noqa: B018 - read now: a card that does not load is said at the start
    except (OSError, ValidationError, yaml.YAMLError) as err:
        raise UserError(f"MLOPS_CARD={settings.card}: {err}") from None
    return other


def load_use_case(name: str, root: Path = DATA_ROOT) -> UseCase:
    """Import `usecases.<name>` and return its `USE_CASE`; an unknown name, or a card that does
    not validate, is a `UserError` that says what is available or wrong."""
    available = available_use_cases(root)
    if name not in available:
        raise UserError(
            f"no use case '{name}' (MLOPS_USE_CASE): the use cases are {', '.join(available)}"
        )
    package = importlib.import_module("usecases")
    for folder in _search_path(root):  # a use case outside the checkout imports as one inside
        if folder not in package.__path__:
            package.__path__.append(folder)
    try:
        module = importlib.import_module(f"usecases.{name}")
    except ValidationError as err:  # the card, read when the package is imported
        raise UserError(f"use case '{name}': its card does not validate: {err}") from None
    use_case: UseCase = module.USE_CASE
    return use_case
