"""The training engine `MLOPS_ENGINE` chooses, for the join and the fit: the only place that
branches on it. Both engines give the train flow the same things: the rows this process holds,
their lineage, and the fitted model.

    local   Feast's point-in-time join and XGBoost, in this process (`models.dataset`,
            `models.training`)
    ray     the join on Ray Data, the fit on Ray Train's workers (`models.distributed`)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.compute.ray_engine import start_ray
from mlops.config.settings import Settings
from mlops.contracts.card import TrainingBudget
from mlops.contracts.usecase import UseCase
from mlops.stores.offline_store import OfflineStore
from models import dataset, distributed, training
from models.dataset import TimeWindows, TrainingSet
from models.distributed import DistributedTrainingSet
from models.training import FittedXGBoost, Splits

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass
class EngineTrainingSet:
    """Either engine's training set: `held` is every row locally; on Ray, a sample of train
    (the baselines' rows), all of validation and test, and `on_ray` the rows Ray Train fits."""

    held: TrainingSet
    on_ray: DistributedTrainingSet | None = None

    def lineage(self, use_case: UseCase) -> dict[str, Any]:
        return (self.on_ray or self.held).lineage(use_case)


def start_engine(settings: Settings) -> None:
    """Join or start the engine's session: Ray's; the local engine has none."""
    if settings.engine == "ray":
        start_ray(settings)


def join_training_set(
    settings: Settings,
    store: FeatureStore,
    offline: OfflineStore,
    use_case: UseCase,
    windows: TimeWindows,
    baseline_rows: int,
    seed: int = 0,
) -> EngineTrainingSet:
    """The labelled events of `windows`, joined point-in-time with the feature service."""
    if settings.engine == "ray":
        on_ray = distributed.build_training_set(
            store, offline, use_case, windows, baseline_rows, seed
        )
        return EngineTrainingSet(on_ray.held, on_ray)
    events = dataset.labelled_events(offline, use_case, windows)
    return EngineTrainingSet(dataset.build_training_set(store, events, use_case, windows))


def fit_model(
    settings: Settings,
    use_case: UseCase,
    training_set: EngineTrainingSet,
    splits: Splits,
    budget: TrainingBudget,
    seed: int = 0,
    exclude_features: tuple[str, ...] = (),
) -> FittedXGBoost:
    """XGBoost's search, on the engine that joined `training_set`; `splits` are its held rows,
    without `exclude_features`. The trees start from the use case's base margin, if any."""
    on_ray = training_set.on_ray

    def base_rate() -> float:  # of all the training rows, wherever they are
        if on_ray is not None:
            return on_ray.positives["train"] / on_ray.rows["train"]
        return float(splits.train_y.mean())

    margin = training.base_margin(use_case, list(splits.train_x.columns), base_rate)
    if on_ray is not None:
        return distributed.fit_xgboost(
            settings, use_case, on_ray, budget, seed, exclude_features, margin
        )
    return training.fit_xgboost(
        splits.train_x,
        splits.train_y,
        splits.validation_x,
        splits.validation_y,
        budget,
        use_case.task,
        seed,
        margin=margin,
    )
