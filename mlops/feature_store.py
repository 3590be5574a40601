"""Feast: the use case's feature definitions over the offline store, and the online store.

The configuration comes from the settings object (paths under MLOPS_HOME), not from a YAML file,
so tests and users can run isolated copies side by side. `feature_repo/` holds the same setup for
Feast's own CLI and UI.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops.offline_store import OfflineStore
from mlops.settings import Settings
from mlops.usecase import UseCase

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)


def feast_objects(settings: Settings, use_case: UseCase) -> list[Any]:
    offline = OfflineStore(settings.offline_dir)
    return list(use_case.feast_definitions(lambda view: offline.glob(offline.feature_dir(view))))


def repo_config(settings: Settings, use_case: UseCase, registry_cache_mode: str = "sync") -> Any:
    from feast.repo_config import RepoConfig

    if settings.profile != "local":
        raise NotImplementedError(
            "the server profile's Feast stores (Redis, PostgreSQL) come later"
        )
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return RepoConfig(
        project=use_case.name,
        provider="local",
        # `thread`: a long-running reader (the service) refreshes its registry cache in the
        # background; `sync` would stall one request for the reload every `cache_ttl_seconds`.
        registry={
            "path": str(settings.feast_dir / "registry.db"),
            "cache_mode": registry_cache_mode,
        },
        # DuckDB, not Feast's `file` store: that one silently drops rows in point-in-time joins.
        offline_store={"type": "duckdb"},
        online_store={"type": "sqlite", "path": str(settings.feast_dir / "online.db")},
        entity_key_serialization_version=3,
        repo_path=str(settings.feast_dir),
    )


def open_store(
    settings: Settings, use_case: UseCase, registry_cache_mode: str = "sync"
) -> FeatureStore:
    """The feature store with the use case's definitions applied (idempotent)."""
    from feast import FeatureStore

    store = FeatureStore(config=repo_config(settings, use_case, registry_cache_mode))
    store.apply(feast_objects(settings, use_case))
    return store


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load the latest feature values in [start, end] into the online store.

    `end` must be the offline store's watermark, not the batch's own close time: the SQLite
    online store overwrites blindly, so materializing an older window would roll values back.
    """
    log.info("materializing %s .. %s", start.isoformat(), end.isoformat())
    store.materialize(start_date=start, end_date=end)


def online_features(
    store: FeatureStore, use_case: UseCase, entity_row: dict[str, Any]
) -> dict[str, Any]:
    service = store.get_feature_service(use_case.feature_service)
    values = store.get_online_features(features=service, entity_rows=[entity_row]).to_dict()
    return {name: column[0] for name, column in values.items()}
