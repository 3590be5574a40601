"""Feast: the use case's feature definitions over the offline store, and the online store.

The configuration comes from the settings object (paths under MLOPS_HOME), not from a YAML file,
so tests and users can run isolated copies side by side. `feature_repo/` holds the same setup for
Feast's own CLI and UI.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config.settings import Settings
from mlops.contracts.usecase import UseCase
from mlops.stores.offline_store import OfflineStore

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

# Held (flock) by whoever materializes; the kernel drops it when that process dies, so a free
# lock with a view still MATERIALIZING means the process that set it is gone.
MATERIALIZE_LOCK = "materialize.lock"


def feast_objects(settings: Settings, use_case: UseCase) -> list[Any]:
    offline = OfflineStore(settings.offline_dir)

    def source_path(view: str) -> str:
        # DuckDB reads a glob of the published partitions; Ray reads the view's folder (no
        # globs), whose partitions are the published ones too (staging is elsewhere).
        folder = offline.feature_dir(view)
        return str(folder) if settings.engine == "ray" else offline.glob(folder)

    return list(use_case.feast_definitions(source_path))


def repo_config(settings: Settings, use_case: UseCase, registry_cache_mode: str = "sync") -> Any:
    """Feast's configuration for the active profile: `local`, a registry file and a SQLite
    online store under MLOPS_HOME; `server`, a SQL registry on PostgreSQL and Redis. Both read
    the offline store's parquet through DuckDB, or with `engine = "ray"` through Ray."""
    from feast.repo_config import RegistryConfig, RepoConfig

    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    if settings.profile == "server":
        from feast.infra.registry.sql import SqlRegistryConfig

        from mlops.stores.databases import feast_redis_connection

        # `sync`, a long-running reader (`thread`) refreshes every `cache_ttl_seconds` in a
        # background thread; `pool_pre_ping` survives a PostgreSQL restart.
        registry: RegistryConfig = SqlRegistryConfig(
            path=settings.database_url("feast", "psycopg"),
            cache_mode=registry_cache_mode,
            cache_ttl_seconds=60,
            sqlalchemy_config_kwargs={"echo": False, "pool_pre_ping": True},
        )
        online_store: dict[str, Any] = {
            "type": "redis",
            "connection_string": feast_redis_connection(settings.redis_url.get_secret_value()),
        }
    else:
        # `sync` reloads the registry file whenever it changed; `thread`, for a long-running
        # reader, only once `cache_ttl_seconds` passed (the file registry has no background
        # thread: the call that finds the cache expired reloads it).
        registry = RegistryConfig(
            path=str(settings.feast_dir / "registry.db"), cache_mode=registry_cache_mode
        )
        online_store = {"type": "sqlite", "path": str(settings.feast_dir / "online.db")}
    # While an ingest materializes a view, Feast marks it MATERIALIZING and readers refuse it
    # unless this is set: then they serve its last-materialized values. Set after construction:
    # its validator warns that on a non-SQL registry it "typically has no effect", but the check
    # that honours it (feast/utils.py, _get_feature_views_to_use) reads it off any registry;
    # verified with this file registry in both cache modes. (The service does not depend on it:
    # it reads the online store without the registry; see serving/online_store_reader.py.)
    registry.serve_features_while_materializing = True
    # DuckDB, not Feast's `file` store: that one silently drops rows in point-in-time joins.
    offline_store: dict[str, Any] = {"type": "duckdb"}
    batch_engine: str | dict[str, Any] = "local"
    if settings.engine == "ray":
        # Ray joins and materializes on the cluster `mlops.compute.ray_engine.start_ray`
        # connected to (Feast attaches to it: it starts no Ray of its own once one is running).
        offline_store = {
            "type": "ray",
            "storage_path": str(settings.ray_dir / "feast"),
            "ray_address": settings.ray_address,
        }
        batch_engine = {
            # Feast's engine less its wall-clock TTL filter (mlops.compute.feast_ray)
            "type": "mlops.compute.feast_ray.WindowRayComputeEngine",
            "ray_address": settings.ray_address,
            # SQLite takes one writer at a time; Redis many.
            "write_concurrency": 1 if settings.profile == "local" else settings.ray_num_cpus,
        }
    return RepoConfig(
        project=use_case.name,
        provider="local",
        registry=registry,
        offline_store=offline_store,
        batch_engine=batch_engine,
        online_store=online_store,
        entity_key_serialization_version=3,
        repo_path=str(settings.feast_dir),
    )


def open_store(
    settings: Settings, use_case: UseCase, registry_cache_mode: str = "sync"
) -> FeatureStore:
    """The feature store with the use case's definitions applied (idempotent).

    Opening also repairs what a killed process left: offline commits it interrupted are
    finished (their feature partitions are what Feast reads), and feature views it left in
    Feast's `MATERIALIZING` state, which no reader would serve, are reset."""
    from feast import FeatureStore

    if settings.profile == "server":
        from mlops.stores.databases import ensure_databases

        ensure_databases(settings)
    OfflineStore(settings.offline_dir).recover()
    store = FeatureStore(config=repo_config(settings, use_case, registry_cache_mode))
    store.apply(feast_objects(settings, use_case))
    reset_stuck_materializing(store)
    return store


def reset_stuck_materializing(store: FeatureStore) -> list[str]:
    """Views left `MATERIALIZING` by a materialization that died: back to the state readers
    serve (`AVAILABLE_ONLINE` when the view was materialized before, else `GENERATED`). Their
    online rows are last-complete values, some possibly newer; the ledger still says the batch
    is not materialized, so the next ingest run materializes it again. Returns the views reset;
    none while another process holds the materialization lock (it is not stuck, it is running).
    """
    from feast.feature_view import FeatureViewState

    with _materialize_lock(store, blocking=False) as held:
        if not held:
            return []
        stuck = [
            view
            for view in store.registry.list_feature_views(store.project, allow_cache=False)
            if getattr(view, "state", None) == FeatureViewState.MATERIALIZING
        ]
        for view in stuck:
            view.state = (
                FeatureViewState.AVAILABLE_ONLINE
                if view.materialization_intervals
                else FeatureViewState.GENERATED
            )
            store.registry.apply_feature_view(view, store.project, commit=True)
    if stuck:
        log.warning(
            "feature views %s were left MATERIALIZING by a process that died; reset",
            ", ".join(v.name for v in stuck),
        )
    return [v.name for v in stuck]


@contextmanager
def _materialize_lock(store: FeatureStore, blocking: bool = True) -> Iterator[bool]:
    """Yield whether this process holds the materialization lock of `store`'s repo."""
    import fcntl

    path = Path(store.config.repo_path or ".") / MATERIALIZE_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load the latest feature values in [start, end] into the online store.

    `end` must be the offline store's watermark, not the batch's own close time: the SQLite
    online store overwrites blindly, so materializing an older window would roll values back.
    """
    log.info("materializing %s .. %s", start.isoformat(), end.isoformat())
    with _materialize_lock(store):
        store.materialize(start_date=start, end_date=end)


def online_features(
    store: FeatureStore, use_case: UseCase, entity_row: dict[str, Any]
) -> dict[str, Any]:
    service = store.get_feature_service(use_case.feature_service)
    values = store.get_online_features(features=service, entity_rows=[entity_row]).to_dict()
    return {name: column[0] for name, column in values.items()}
