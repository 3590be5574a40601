"""The training set and the fit on Ray (`MLOPS_ENGINE=ray`): the same rows, the same model.

    event partitions --(Ray Data)--> labelled events of the windows
        --(point-in-time join, a feature view at a time)--> joined rows, kept in Ray's object store
        -> train / validation: Ray Datasets, fitted by Ray Train's XGBoostTrainer
        -> the driver gets only a sample of train (baselines, serving defaults), validation and
           test (the gate scores every model on test), and the counts of each window

The join follows Feast's definitions (the feature service's views, their join keys, sources and
TTLs) and Feast's semantics: each event gets, per view, the newest feature row at or before it
and no older than the view's TTL. It does not go through Feast's Ray offline store: in Feast
0.67 that store's join falls back to a row-by-row Python loop on our data (217 s for 56,000
events), ignores TTLs and drops events that share an entity and a timestamp (docs/scale-out.md).
Feature tables grow with entities and days, not with events, so each view is broadcast to the
join's tasks whole; the events are what is split.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.config.errors import UserError
from mlops.config.settings import Settings
from mlops.contracts.card import TrainingBudget
from mlops.contracts.model_inputs import BaseMargin
from mlops.contracts.usecase import UseCase, load_use_case
from mlops.stores.offline_store import OfflineStore
from models import dataset
from models.dataset import BATCH_COLUMN, TimeWindows, TrainingSet
from models.training import FittedXGBoost, Trial, boost, search, training_matrix

if TYPE_CHECKING:
    import ray.data
    import xgboost as xgb
    from feast import FeatureStore

WINDOWS = ("train", "validation", "test")
MODEL_FILE = "model.ubj"
SEARCH_FILE = "search.json"  # the chosen parameters and every trial, beside the model


@dataclass(frozen=True)
class FeatureJoin:
    """One feature view, as the join needs it (from Feast's registry)."""

    view: str
    path: str
    join_keys: tuple[str, ...]
    timestamp: str
    features: tuple[str, ...]
    ttl: pd.Timedelta | None


@dataclass
class DistributedTrainingSet:
    """What the Ray engine hands the train flow: the train and validation rows as Ray Datasets
    (for the fit), and, in the driver, a `TrainingSet` holding a sample of train (at most the
    baseline's rows), all of validation and all of test, with each window's true counts."""

    train: ray.data.Dataset
    validation: ray.data.Dataset
    held: TrainingSet
    rows: dict[str, int]
    positives: dict[str, int]
    batch_ids: list[str]

    def lineage(self, use_case: UseCase) -> dict[str, Any]:
        """`TrainingSet.lineage`, with the true counts; the frame's hash covers the rows the
        driver held (the train sample, validation and test)."""
        return {
            **self.held.lineage(use_case),
            "rows": self.rows,
            "positives": self.positives,
            "batch_ids": self.batch_ids,
            "train_sample_rows": len(self.held.window("train")),
        }


def feature_joins(store: FeatureStore, use_case: UseCase) -> list[FeatureJoin]:
    """The feature service's views: where each is stored, its keys, features and TTL."""
    from feast import FileSource

    joins = []
    for projection in store.get_feature_service(use_case.feature_service).feature_view_projections:
        view = store.get_feature_view(projection.name)
        source = view.batch_source
        if not isinstance(source, FileSource):
            raise UserError(f"feature view {view.name}: the Ray engine reads file sources only")
        joins.append(
            FeatureJoin(
                view=view.name,
                path=source.path,
                join_keys=tuple(c.name for c in view.entity_columns),
                timestamp=source.timestamp_field,
                features=tuple(f.name for f in projection.features),
                ttl=pd.Timedelta(view.ttl) if view.ttl else None,
            )
        )
    return joins


def build_training_set(
    store: FeatureStore,
    offline: OfflineStore,
    use_case: UseCase,
    windows: TimeWindows,
    baseline_rows: int,
    seed: int = 0,
) -> DistributedTrainingSet:
    """Labelled events of the windows joined point-in-time with the feature service, on Ray."""
    import ray
    import ray.data

    events = use_case.events
    files = offline.files(offline.table_dir(events.name))
    if not files:
        raise dataset.nothing_ingested(use_case)
    columns = dataset.event_columns(use_case)
    joins = feature_joins(store, use_case)
    tables = [ray.put(_feature_table(join, windows)) for join in joins]
    ts, label = events.timestamp_column, use_case.label

    def join_batch(batch: pd.DataFrame) -> pd.DataFrame:
        in_windows = (batch[ts] >= windows.train_start) & (batch[ts] < windows.end)
        batch = batch[in_windows & batch[label].notna()].copy()
        # The batch id is the partition folder's, as in `dataset.labelled_events`.
        batch[BATCH_COLUMN] = batch.pop("path").str.extract(r"batch_id=([^/]+)/", expand=False)
        for join, table in zip(joins, tables, strict=True):
            batch = _join_view(batch, ray.get(table), join, ts)
        batch["window"] = _window_of(batch[ts], windows)
        return batch

    joined = (
        ray.data.read_parquet(files, columns=columns, include_paths=True)
        .map_batches(join_batch, batch_format="pandas", batch_size=None)
        .materialize()
    )
    counts = _window_counts(joined, label)
    for name in WINDOWS:
        if counts["rows"][name] == 0 or counts["positives"][name] in (0, counts["rows"][name]):
            raise dataset.window_without_both_classes(name, counts["rows"][name], windows)
    train = _window(joined, "train").materialize()
    validation = _window(joined, "validation").materialize()
    fraction = min(1.0, baseline_rows / counts["rows"]["train"])
    sample = train if fraction >= 1 else train.random_sample(fraction, seed=seed)
    held_rows = pd.concat(
        [sample.to_pandas(), validation.to_pandas(), _window(joined, "test").to_pandas()]
    )
    # Ray hands timestamps back without their zone (they are UTC, as in the offline store).
    held_rows[ts] = pd.to_datetime(held_rows[ts], utc=True)
    frame = (
        held_rows.drop(columns="window")
        .sort_values([ts, events.id_column], kind="stable")
        .reset_index(drop=True)
    )
    held = TrainingSet(
        frame=frame,
        windows=windows,
        timestamp_column=ts,
        feature_columns=tuple(f for join in joins for f in join.features),
    )
    return DistributedTrainingSet(
        train=train,
        validation=validation,
        held=held,
        rows=counts["rows"],
        positives=counts["positives"],
        batch_ids=counts["batch_ids"],
    )


def _feature_table(join: FeatureJoin, windows: TimeWindows) -> pd.DataFrame:
    """A view's rows the windows' events can reach (TTL), newest last per key and time."""
    import pyarrow.dataset as ds

    source = ds.dataset(join.path, format="parquet", partitioning="hive")
    stamp = ds.field(join.timestamp)
    reachable = stamp < pd.Timestamp(windows.end)
    if join.ttl is not None:
        reachable &= stamp >= pd.Timestamp(windows.train_start) - join.ttl
    table = source.to_table(
        columns=[*join.join_keys, join.timestamp, *join.features], filter=reachable
    )
    frame = table.to_pandas()
    # A key restated at the same time (a late batch recomputed a later one): the last written
    # wins, as in Feast's own join; the partitions are read in batch order.
    frame = frame.drop_duplicates([*join.join_keys, join.timestamp], keep="last")
    return frame.sort_values(join.timestamp, kind="stable").reset_index(drop=True)


def _join_view(
    batch: pd.DataFrame, table: pd.DataFrame, join: FeatureJoin, ts: str
) -> pd.DataFrame:
    """Each event row with the view's newest row at or before it, within the TTL."""
    order = np.argsort(batch[ts].to_numpy(), kind="stable")
    left = batch.iloc[order].reset_index(drop=True)
    right = table.rename(columns={join.timestamp: "__feature_time"})
    right = right.astype({k: left[k].dtype for k in join.join_keys})
    right["__feature_time"] = right["__feature_time"].astype(left[ts].dtype)
    merged = pd.merge_asof(
        left,
        right,
        left_on=ts,
        right_on="__feature_time",
        by=list(join.join_keys),
        direction="backward",
        tolerance=join.ttl,
        allow_exact_matches=True,
    )
    # Back in the block's order; the fit sorts its rows again anyway.
    return merged.drop(columns="__feature_time").iloc[np.argsort(order, kind="stable")]


def _window_of(timestamps: pd.Series, windows: TimeWindows) -> np.ndarray:
    bounds = [pd.Timestamp(windows.validation_start), pd.Timestamp(windows.test_start)]
    return np.array(WINDOWS)[np.searchsorted(bounds, timestamps.to_numpy(), side="right")]


def _window(joined: ray.data.Dataset, name: str) -> ray.data.Dataset:
    return joined.filter(expr=f"window == '{name}'")


def _window_counts(joined: ray.data.Dataset, label: str) -> dict[str, Any]:
    """Rows and positives per window, and the batches the rows came from."""

    def count(batch: pd.DataFrame) -> pd.DataFrame:
        grouped = batch.groupby("window")[label].agg(["size", "sum"]).reset_index()
        grouped["batch_ids"] = ",".join(sorted(set(batch[BATCH_COLUMN])))
        return grouped

    counts = joined.map_batches(count, batch_format="pandas", batch_size=None).to_pandas()
    totals = counts.groupby("window")[["size", "sum"]].sum()
    batch_ids = sorted({b for ids in counts["batch_ids"] for b in ids.split(",") if b})
    return {
        "rows": {w: int(totals["size"].get(w, 0)) for w in WINDOWS},
        "positives": {w: int(totals["sum"].get(w, 0)) for w in WINDOWS},
        "batch_ids": batch_ids,
    }


def fit_xgboost(
    settings: Settings,
    use_case: UseCase,
    training_set: DistributedTrainingSet,
    budget: TrainingBudget,
    seed: int = 0,
    exclude_features: tuple[str, ...] = (),
    margin: BaseMargin | None = None,
) -> FittedXGBoost:
    """`models.training.fit_xgboost` on Ray Train: the same search (candidates, time budget,
    early stopping on the validation window, categorical inputs, base margin), each trial
    data-parallel across `MLOPS_RAY_TRAIN_WORKERS` workers, all of it in one Ray Train run."""
    import xgboost as xgb
    from ray.train import RunConfig, ScalingConfig
    from ray.train.xgboost import XGBoostTrainer

    storage, run = settings.ray_dir / "train", f"search-{uuid.uuid4().hex[:12]}"
    storage.mkdir(parents=True, exist_ok=True)
    trainer = XGBoostTrainer(
        _search_on_worker,
        train_loop_config={
            "budget": budget.model_dump(),
            "seed": seed,
            "use_case": use_case.name,
            "use_cases_root": str(settings.use_cases_root),
            "exclude_features": list(exclude_features),
            "margin": asdict(margin) if margin else None,
        },
        scaling_config=ScalingConfig(
            num_workers=settings.ray_train_workers, resources_per_worker={"CPU": 1}
        ),
        run_config=RunConfig(storage_path=str(storage), name=run),
        datasets={"train": training_set.train, "validation": training_set.validation},
    )
    result = trainer.fit()
    assert result.checkpoint is not None
    with result.checkpoint.as_directory() as directory:
        booster = xgb.Booster()
        booster.load_model(str(Path(directory) / MODEL_FILE))
        searched = json.loads((Path(directory) / SEARCH_FILE).read_text())
    shutil.rmtree(storage / run, ignore_errors=True)  # the model goes to MLflow, not here
    if margin:
        margin.save_in(booster)
    return FittedXGBoost(
        booster,
        searched["params"],
        searched["rounds"],
        [Trial(**trial) for trial in searched["trials"]],
    )


def _search_on_worker(config: dict[str, Any]) -> None:
    """Ray Train's per-worker loop: this worker's shards in, the search with XGBoost's
    collective fit (Ray Train connects the workers), the best booster out (from rank 0)."""
    import ray.train
    from ray.train import Checkpoint
    from xgboost import collective

    use_case = load_use_case(config["use_case"], Path(config["use_cases_root"]))
    budget = TrainingBudget(**config["budget"])
    margin = BaseMargin(**config["margin"]) if config["margin"] else None
    id_column, ts = use_case.events.id_column, use_case.events.timestamp_column

    def matrix(name: str) -> xgb.DMatrix:
        shard = ray.train.get_dataset_shard(name)
        frame = pd.concat(shard.iter_batches(batch_format="pandas", batch_size=None))
        # The local engine's row order: the same rows give the same trees.
        frame = frame.sort_values([ts, id_column], kind="stable")
        inputs = use_case.input_frame(frame).drop(columns=config["exclude_features"])
        labels = frame[use_case.label].astype(use_case.task.label_dtype)
        return training_matrix(inputs, labels, margin)

    train, validation = matrix("train"), matrix("validation")

    def fit(params: dict[str, Any]) -> xgb.Booster:
        # One thread: one CPU per worker (ScalingConfig).
        return boost({**params, "nthread": 1}, train, validation, budget.early_stopping_rounds)

    def out_of_time(mine: bool) -> bool:
        # Every worker must run the same trials: the first worker's clock decides.
        return bool(collective.broadcast(mine, 0)) if collective.get_world_size() > 1 else mine

    fitted = search(fit, budget, use_case.task, config["seed"], out_of_time)
    summary = {"best_validation_loss": min(t.validation_loss for t in fitted.trials)}
    if ray.train.get_context().get_world_rank() != 0:
        ray.train.report(summary)
        return
    with tempfile.TemporaryDirectory() as directory:
        fitted.booster.save_model(str(Path(directory) / MODEL_FILE))
        searched = {
            "params": fitted.params,
            "rounds": fitted.rounds,
            "trials": [asdict(trial) for trial in fitted.trials],
        }
        (Path(directory) / SEARCH_FILE).write_text(json.dumps(searched))
        ray.train.report(summary, checkpoint=Checkpoint.from_directory(directory))
