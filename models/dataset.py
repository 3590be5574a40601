"""The training set: labelled events joined point-in-time with Feast, split by time.

    labelled_events(offline store, window) -> Feast get_historical_features(feature service)
        -> TrainingSet(train | validation | test), each window strictly after the previous one

A random split would let the model learn from days after the ones it is tested on; a split by
time asks the question production asks: how well does yesterday's model do tomorrow?
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.config.errors import UserError
from mlops.contracts.card import RequirementsCard, TrainingBudget
from mlops.contracts.usecase import UseCase
from mlops.stores.feature_store import point_in_time_join
from mlops.stores.offline_store import OfflineStore, quoted

if TYPE_CHECKING:
    from feast import FeatureStore

BATCH_COLUMN = "batch_id"


@dataclass(frozen=True)
class TimeWindows:
    """[train_start, validation_start) train, [.., test_start) validation, [.., end) test."""

    train_start: datetime
    validation_start: datetime
    test_start: datetime
    end: datetime

    @classmethod
    def ending_at(cls, end: datetime, budget: TrainingBudget) -> TimeWindows:
        test_start = end - timedelta(days=budget.test_days)
        validation_start = test_start - timedelta(days=budget.validation_days)
        return cls(
            train_start=validation_start - timedelta(days=budget.train_days),
            validation_start=validation_start,
            test_start=test_start,
            end=end,
        )

    def to_dict(self) -> dict[str, str]:
        return {name: value.isoformat() for name, value in self.__dict__.items()}


def training_budget(
    card: RequirementsCard, recent: bool = False, search_trials: int | None = None
) -> TrainingBudget:
    """The card's training budget; `recent`: the monitoring gate's shorter retraining windows,
    so a changed world dominates; `search_trials` overrides the card's."""
    budget = card.training
    if recent:
        budget = budget.model_copy(update=card.gates.monitoring.retrain_windows.model_dump())
    if search_trials is not None:
        budget = budget.model_copy(update={"search_trials": search_trials})
    return budget


def training_end(offline: OfflineStore, as_of: datetime | None) -> datetime:
    """The end of the test window: `as_of`, or the newest ingested batch's close."""
    end = as_of or offline.watermark()
    if end is None:
        raise UserError("nothing has been ingested yet: run `mlops ingest` first")
    return end


@dataclass(frozen=True)
class TrainingSet:
    """Event rows with label, oracle, request context and point-in-time features."""

    frame: pd.DataFrame
    windows: TimeWindows
    timestamp_column: str
    feature_columns: tuple[str, ...] = ()  # what the feature service added to the events

    def window(self, name: str) -> pd.DataFrame:
        """The rows of one window: a contiguous slice, since the frame is sorted by time."""
        bounds = {
            "train": (self.windows.train_start, self.windows.validation_start),
            "validation": (self.windows.validation_start, self.windows.test_start),
            "test": (self.windows.test_start, self.windows.end),
        }
        start, end = self.frame[self.timestamp_column].searchsorted(
            [pd.Timestamp(t) for t in bounds[name]]
        )
        return self.frame.iloc[start:end]

    def lineage(self, use_case: UseCase) -> dict[str, Any]:
        """What the model was trained on, precisely enough to rebuild and compare it."""
        rows = {name: len(self.window(name)) for name in ("train", "validation", "test")}
        return {
            "feature_service": use_case.feature_service,
            "windows": self.windows.to_dict(),
            "rows": rows,
            "positives": {name: int(self.window(name)[use_case.label].sum()) for name in rows},
            "batch_ids": sorted(map(str, self.frame[BATCH_COLUMN].unique())),
            "frame_sha256": frame_hash(self.frame),
        }


def labelled_events(offline: OfflineStore, use_case: UseCase, windows: TimeWindows) -> pd.DataFrame:
    """The labelled event rows of the windows, oldest first. Raises ValueError, with a message
    for the user, when a window is empty or holds only one class."""
    events = use_case.events
    columns = event_columns(use_case)
    if not offline.count_rows(events.name):
        raise nothing_ingested(use_case)
    con = offline.connect([events.name])  # committed batches only: see mlops.stores.offline_store
    ts, label = quoted(events.timestamp_column), quoted(use_case.label)
    try:
        # DuckDB reads a hive partition value that looks like a date as a DATE.
        frame = con.execute(
            f"""
            SELECT {", ".join(quoted(c) for c in columns)},
                   CAST({quoted(BATCH_COLUMN)} AS VARCHAR) AS {quoted(BATCH_COLUMN)}
            FROM {quoted(events.name)}
            WHERE {ts} >= $start AND {ts} < $end AND {label} IS NOT NULL
            ORDER BY {ts}, {quoted(events.id_column)}
            """,
            {"start": windows.train_start, "end": windows.end},
        ).df()
    finally:
        con.close()
    _require_every_window(TrainingSet(frame, windows, events.timestamp_column), use_case)
    return frame


def event_columns(use_case: UseCase) -> list[str]:
    """The event table's columns a training set starts from (its rows' own, before features)."""
    events = use_case.events
    # Each once: a table whose row id is its entity key (one row per customer) names it twice.
    return list(
        dict.fromkeys(
            [
                events.id_column,
                events.timestamp_column,
                *use_case.entity_keys,
                *use_case.request_columns,
                use_case.label,
                *([use_case.oracle_column] if use_case.oracle_column else []),
                *([use_case.ceiling_column] if use_case.ceiling_column else []),
            ]
        )
    )


def nothing_ingested(use_case: UseCase) -> UserError:
    name = use_case.events.name
    return UserError(f"no ingested '{name}' rows to train on: run `mlops ingest` first")


def window_without_both_classes(name: str, rows: int, windows: TimeWindows) -> UserError:
    return UserError(
        f"the {name} window has {rows} labelled rows, and both classes are needed; ingest more "
        f"days (windows: {windows.to_dict()})"
    )


def build_training_set(
    store: FeatureStore, events: pd.DataFrame, use_case: UseCase, windows: TimeWindows
) -> TrainingSet:
    """Point-in-time join of `labelled_events` with the feature service."""
    ts = use_case.events.timestamp_column
    joined = point_in_time_join(store, use_case, events)
    frame = joined.sort_values([ts, use_case.events.id_column], kind="stable").reset_index(
        drop=True
    )
    added = tuple(c for c in joined.columns if c not in events.columns)
    return TrainingSet(frame=frame, windows=windows, timestamp_column=ts, feature_columns=added)


def serving_defaults(training_set: TrainingSet, use_case: UseCase) -> dict[str, Any]:
    """What serving fills in for a value a request or the online store lacks (a cold-start
    entity, an omitted context field), per raw input column, from the training window.

    Columns that were never missing in training get their most frequent value (categories) or
    median (numbers): the model never learned what missing means there. Columns that were
    sometimes missing get `None`: missing is a value the model knows, so serving keeps it.
    """
    train = training_set.window("train")
    defaults: dict[str, Any] = {}
    for column in (*use_case.request_columns, *training_set.feature_columns):
        values = train[column]
        if values.isna().any() or values.empty:
            defaults[column] = None
        elif pd.api.types.is_numeric_dtype(values):
            median = values.median()
            is_integer = pd.api.types.is_integer_dtype(values)
            defaults[column] = round(float(median)) if is_integer else float(median)
        else:
            mode = values.mode().iloc[0]
            defaults[column] = mode.item() if isinstance(mode, np.generic) else mode
    return defaults


def _require_every_window(training_set: TrainingSet, use_case: UseCase) -> None:
    for name in ("train", "validation", "test"):
        rows = training_set.window(name)
        if rows.empty or rows[use_case.label].nunique() < 2:
            raise window_without_both_classes(name, len(rows), training_set.windows)


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values and column names, not memory layout)."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy(np.uint64).tobytes())
    return digest.hexdigest()
