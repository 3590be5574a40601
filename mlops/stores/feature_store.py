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

from mlops.config.settings import PROJECT_ROOT, Settings
from mlops.contracts.usecase import UseCase
from mlops.stores.offline_store import OfflineStore

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore
    from feast.infra.registry.base_registry import BaseRegistry

log = logging.getLogger(__name__)

# Held (flock) by whoever materializes; the kernel drops it when that process dies, so a free
# lock with a view still MATERIALIZING means the process that set it is gone.
MATERIALIZE_LOCK = "materialize.lock"
# Feast's own CLI over the platform's stores (a checkout's, not an installed wheel's).
FEATURE_REPO = PROJECT_ROOT / "feature_repo"
# What definitions.py and the feature_store*.yaml files read of the settings, in each profile.
_CLI_SETTINGS = {
    "local": frozenset(
        {"MLOPS_HOME", "MLOPS_USE_CASE", "MLOPS_USE_CASES_ROOT", "MLOPS_PROFILE", "MLOPS_ENGINE"}
    ),
}
_CLI_SETTINGS["server"] = _CLI_SETTINGS["local"] | {
    "MLOPS_POSTGRES_DSN",
    "MLOPS_DATABASE_PREFIX",
    "MLOPS_REDIS_URL",
}
_SERVER_CLI_VARIABLES = frozenset(
    {"FEAST_FS_YAML_FILE_PATH", "FEAST_SQL_REGISTRY_URL", "FEAST_REDIS_CONNECTION_STRING"}
)


def feast_objects(
    settings: Settings, use_case: UseCase, registry: BaseRegistry | None = None
) -> list[Any]:
    """The use case's Feast objects, as the platform applies them and as Feast's CLI loads them
    (feature_repo/definitions.py): the same objects, so `feast plan` finds nothing to change.

    Each feature view reads its folder of published partitions (`offline/features/<view>/`,
    hive-partitioned by `batch_id`): DuckDB and Ray both read a parquet folder, and Feast's
    `FileSource` validation finds it (a `batch_id=*` glob does not exist as a path). Staged
    partitions live outside it (offline_store.py). Given the `registry`, a source Feast finds
    unchanged keeps the timestamps recorded there (see `_keep_recorded_timestamps`)."""
    from feast import FileSource, Project
    from feast.data_format import ParquetFormat

    offline = OfflineStore(settings.offline_dir)
    objects: list[Any] = [
        Project(name=use_case.name, description=f"the {use_case.name} use case's features"),
        *use_case.feast_definitions(lambda view: str(offline.feature_dir(view))),
    ]
    for obj in objects:
        source = getattr(obj, "batch_source", None)
        if isinstance(source, FileSource):
            # A folder, not a `.parquet` path: Feast's DuckDB store needs the format said.
            source.file_options.file_format = ParquetFormat()
    if registry is not None:
        _keep_recorded_timestamps(objects, registry, use_case.name)
    return objects


def _keep_recorded_timestamps(objects: list[Any], registry: BaseRegistry, project: str) -> None:
    """Give each feature view's source the created/updated timestamps the registry recorded
    for it, when Feast finds the two sources equal (Feast's own `DataSource.__eq__`, which leaves
    timestamps out). A Feast `DataSource` is stamped with the time it was constructed, and a
    feature view carries its source, stamp included, in its spec; a materialized view never
    equals a fresh definition (its materialization intervals), so `feast plan` then compares
    the specs field by field and reports every view "Updated" on the stamps alone (Feast issue
    5573). Feast's registry keeps a source's `created_timestamp` the same way when it is
    applied again unchanged. A changed source keeps its new stamps and shows as changed."""
    from feast import FeatureView
    from feast.errors import FeastObjectNotFoundException, ProjectNotFoundException

    for view in objects:
        if not isinstance(view, FeatureView) or view.batch_source is None:
            continue
        try:
            recorded = registry.get_feature_view(view.name, project).batch_source
        except (FeastObjectNotFoundException, ProjectNotFoundException):  # not applied yet
            continue
        if recorded is not None and recorded == view.batch_source:
            view.batch_source.created_timestamp = recorded.created_timestamp
            view.batch_source.last_updated_timestamp = recorded.last_updated_timestamp


def record_infra(store: FeatureStore, objects: list[Any]) -> None:
    """Record in the registry the online-store tables the definitions need, as `feast apply`
    does. `FeatureStore.apply` creates them but records nothing; without the record `feast plan`
    reports each table as one it would create."""
    from feast import Entity, FeatureService, FeatureView, Project
    from feast.repo_contents import RepoContents

    views = [o for o in objects if isinstance(o, FeatureView)]
    contents = RepoContents(
        projects=[o for o in objects if isinstance(o, Project)],
        data_sources=[v.batch_source for v in views if v.batch_source is not None],
        feature_views=views,
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=[o for o in objects if isinstance(o, Entity)],
        feature_services=[o for o in objects if isinstance(o, FeatureService)],
        permissions=[],
    )
    infra = store.provider.plan_infra(store.config, contents.to_registry_proto())
    store.registry.update_infra(infra, store.project, commit=True)


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


def cli_environment(settings: Settings) -> dict[str, str]:
    """The environment in which Feast's CLI (`feast -c feature_repo ...`) opens the stores and
    loads the definitions these settings give the platform: the settings definitions.py reads,
    and in the server profile the yaml file Feast reads and the URLs that file takes."""
    from mlops.stores.databases import feast_redis_connection

    wanted = _CLI_SETTINGS[settings.profile]
    env = {key: value for key, value in settings.environment().items() if key in wanted}
    if settings.profile == "server":  # the keys of _SERVER_CLI_VARIABLES
        env["FEAST_FS_YAML_FILE_PATH"] = str(FEATURE_REPO / "feature_store.server.yaml")
        env["FEAST_SQL_REGISTRY_URL"] = settings.database_url("feast", "psycopg")
        env["FEAST_REDIS_CONNECTION_STRING"] = feast_redis_connection(
            settings.redis_url.get_secret_value()
        )
    return env


FEAST_TIMESTAMP = "event_timestamp"  # the entity frame's time column Feast joins on


def point_in_time_join(store: FeatureStore, use_case: UseCase, rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` (entity keys and the use case's time column; other columns carried along) with the
    feature service's values as each row's entities had them at its time: Feast's point-in-time
    join, every row back (in Feast's order), the time column under its own name."""
    import pandas as pd

    ts = use_case.events.timestamp_column
    entity_df = rows.rename(columns={ts: FEAST_TIMESTAMP})
    entity_df[FEAST_TIMESTAMP] = pd.to_datetime(entity_df[FEAST_TIMESTAMP], utc=True)
    joined = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(use_case.feature_service)
    ).to_df()
    if len(joined) != len(entity_df):  # Feast's file store did drop rows once; never again
        raise RuntimeError(f"point-in-time join returned {len(joined)} of {len(entity_df)} rows")
    return joined.rename(columns={FEAST_TIMESTAMP: ts})


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
    objects = feast_objects(settings, use_case, store.registry)
    store.apply(objects)
    record_infra(store, objects)
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


if __name__ == "__main__":
    # `eval "$(python -m mlops.stores.feature_store)"`: a shell in which Feast's CLI sees the
    # stores of the active settings (profile included); see feature_repo/feature_store.yaml.
    import shlex

    from mlops.config.settings import get_settings

    environment = cli_environment(get_settings())
    for key, value in environment.items():
        print(f"export {key}={shlex.quote(value)}")
    for key in sorted(_SERVER_CLI_VARIABLES - environment.keys()):  # a server shell's, gone
        print(f"unset {key}")
