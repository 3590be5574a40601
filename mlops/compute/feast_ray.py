"""Feast's Ray compute engine, materializing as Feast's local engine does.

Feast 0.67's Ray engine filters the rows it materializes by each view's TTL counted from the wall
clock (`RayFilterNode`: `datetime.now() - ttl`); the local engine takes the newest row of each
entity in the window it is given. On live data they agree; on days replayed from the past (the
simulated story starts on 2026-01-01) the Ray engine left the views with a short TTL empty
online, and the prediction service refused to start without them. This engine is Feast's, with
that one filter left out of materialization (`mlops.stores.feature_store.repo_config` names
it as the `batch_engine`), so both engines leave the same online store.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from feast.infra.common.materialization_job import MaterializationJob, MaterializationTask
from feast.infra.compute_engines.ray.compute import RayComputeEngine
from feast.infra.compute_engines.ray.config import RayComputeEngineConfig

ENGINE = f"{__name__}.WindowRayComputeEngine"


class WindowRayComputeEngineConfig(RayComputeEngineConfig):
    type: str = ENGINE  # type: ignore[assignment]  # Feast's is the Literal "ray.engine"


class WindowRayComputeEngine(RayComputeEngine):
    def _materialize_one(
        self,
        registry: Any,
        task: MaterializationTask,
        from_offline_store: bool = False,
        **kwargs: Any,
    ) -> MaterializationJob:
        view = copy.copy(task.feature_view)
        view.ttl = None  # the window bounds what is read, as in the local engine
        return super()._materialize_one(
            registry, dataclasses.replace(task, feature_view=view), from_offline_store, **kwargs
        )
