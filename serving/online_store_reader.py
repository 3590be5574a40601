"""The online store read at its own level (`OnlineFeatures`): the feature service's values for
entity rows, from the tables (SQLite, the local profile) or hashes (Redis, the server profile) of
Feast's online store, decoded as Feast decodes them. The views come from the use case's code;
Feast's registry is not on the read path. `probe()` is the readiness check's lookup
(serving/store_health.py runs it)."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from serving.throttled_log import describe_error

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.infra.online_stores.online_store import OnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.repo_config import RepoConfig

log = logging.getLogger(__name__)

# A Redis read (connecting, then answering) not done in this long fails: a local Redis answers
# in about a millisecond. The service passes its own, below its request timeout.
READ_TIMEOUT_SECONDS = 1.0


class StoreUnavailable(RuntimeError):
    """The online store cannot be read now; the message says why. The service answers 503."""


@dataclass(frozen=True)
class _View:
    """What reading one feature view online takes: the view (its table), the join keys and
    their value types, and the requested features with theirs."""

    view: FeatureView
    join_keys: list[str]
    key_types: list[Any]  # feast ValueType per join key
    features: list[str]
    feature_types: list[Any]  # feast ValueType per feature
    sqlite_table: str  # the view's table in a SQLite store, quoted
    redis_fields: list[bytes]  # the features' fields in a Redis store's hashes
    serialized: dict[tuple[Any, ...], bytes] = field(default_factory=dict)  # entity -> key


class OnlineFeatures:
    """The feature service's values for entity rows, read at the online store's level (one
    SQLite statement per view, or one Redis pipeline, per batch; Feast's own value conversion):
    what `FeatureStore.get_online_features` returns, without Feast's registry on the read path.

    Why not `get_online_features`: it looks every view up in the registry on every call and
    refuses views an ingest has marked `MATERIALIZING`, and a long-running reader reloads the
    registry file every `cache_ttl_seconds`. Feast rewrites that file in place (truncate, then
    write): a reload that meets an ingest's write reads it empty or corrupt, and the service then
    fails every request until the next reload, 10 minutes later by default. Here the views come
    from the use case's definitions (the code this process runs), once.

    `reconnect()` drops the connection; the next read opens the store afresh (after the file
    was replaced, or after a failed read). `probe()` reads one key the store holds per view.

    A Redis store (the server profile) answers within `timeout` seconds or the read fails
    (StoreUnavailable: a 503, not a request hung until the service's timeout), and without
    redis-py's retries: by default it retries a refused connection three times with up to 14 s
    of backoff. A read after a failure reconnects, so Redis coming back needs no restart.
    """

    def __init__(
        self,
        config: RepoConfig,
        definitions: Sequence[Any],
        feature_service: str,
        timeout: float = READ_TIMEOUT_SECONDS,
    ):
        from feast import Entity, FeatureService, FeatureView

        self.config = config
        self.timeout = timeout
        entities = {d.name: d for d in definitions if isinstance(d, Entity)}
        views = {d.name: d for d in definitions if isinstance(d, FeatureView)}
        service = next(
            d for d in definitions if isinstance(d, FeatureService) and d.name == feature_service
        )
        from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name

        versioned = config.registry.enable_online_feature_view_versioning
        self.views = []
        for projection in service.feature_view_projections:
            view = views[projection.name]
            name = compute_versioned_name(view, versioned)  # as Feast's stores name it
            table = f"{config.project}_{name}"  # the SQLite store's table
            self.views.append(
                _View(
                    view,
                    [entities[e].join_key for e in view.entities],
                    [entities[e].value_type for e in view.entities],
                    [f.name for f in projection.features],
                    [f.dtype.to_value_type() for f in projection.features],
                    '"' + table.replace('"', '""') + '"',
                    # Feast's Redis field for a feature: a hash of "<view>:<feature>".
                    [_mmh3(f"{name}:{f.name}") for f in projection.features],
                )
            )
        self.columns = tuple(name for v in self.views for name in v.features)
        # Views keyed by the same entity (same join keys and types), by position: Feast's Redis
        # store keeps their values in the same hash.
        by_entity: dict[tuple[Any, ...], list[int]] = {}
        for i, v in enumerate(self.views):
            by_entity.setdefault((*v.join_keys, *v.key_types), []).append(i)
        self._by_entity = list(by_entity.values())
        self._lock = threading.Lock()
        self._online: OnlineStore | None = None
        self._identity: tuple[int, int] | None = None  # the store file this connection opened
        self._held: dict[str, EntityKey] = {}  # view -> a key the probe found it holds (Redis)
        self._project = config.project.encode()  # Feast's Redis keys end with it
        self._decoded_values: dict[tuple[Any, bytes], Any] = {}

    @property
    def path(self) -> Path | None:
        """The SQLite file, for the local profile's store; None for a served store."""
        store = self.config.online_store
        if getattr(store, "type", None) != "sqlite":
            return None
        path = Path(store.path)
        return path if path.is_absolute() else Path(self.config.repo_path or ".") / path

    def online(self) -> OnlineStore:
        with self._lock:
            if self._online is None:
                from feast.infra.online_stores.helpers import get_online_store_from_config

                self._identity = _identity(self.path)
                online = get_online_store_from_config(self.config.online_store)
                if self.redis:
                    _bound_redis(self._redis_client(online), self.timeout)
                self._online = online
            return self._online

    @property
    def redis(self) -> bool:
        return getattr(self.config.online_store, "type", None) == "redis"

    def _redis_client(self, online: OnlineStore) -> Any:
        """The Redis client Feast's store reads with (built on first use, not connected yet)."""
        return online._get_client(self.config.online_store)  # type: ignore[attr-defined]

    def reconnect(self) -> None:
        with self._lock:
            self._online = None  # in-flight reads finish on the old one; it closes when freed

    def read(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """Feature name -> one value per row (None where the store has none); any failure to
        read is a StoreUnavailable, and the next read reconnects."""
        try:
            return self._read(self.online(), rows)
        except Exception as err:
            self.reconnect()
            raise StoreUnavailable(f"cannot read the online store: {describe_error(err)}") from err

    def _read(self, online: OnlineStore, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        keys = [[tuple(row[k] for k in v.join_keys) for row in rows] for v in self.views]
        unique = [list(dict.fromkeys(view_keys)) for view_keys in keys]  # one read per entity
        serialized = [
            [self._serialized(v, key) for key in view_unique]
            for v, view_unique in zip(self.views, unique, strict=True)
        ]
        stored = (
            self._stored_redis(online, serialized)
            if self.redis
            else [
                self._stored_sqlite(online, v, view_keys)
                for v, view_keys in zip(self.views, serialized, strict=True)
            ]
        )
        values: dict[str, list[Any]] = {}
        for v, view_keys, view_unique, view_stored in zip(
            self.views, keys, unique, stored, strict=True
        ):
            found = dict(zip(view_unique, view_stored, strict=True))
            for name, value_type in zip(v.features, v.feature_types, strict=True):
                values[name] = [self._decoded(found[key], name, value_type) for key in view_keys]
        return values

    # Both readers return, per serialized entity key, its stored values: Feast's serialized
    # `Value` protos by feature name (None: the store has no row for the key). They read what
    # Feast's `online_read` reads, but in one statement per view (SQLite) or one pipeline for
    # all views (Redis), and without what the answer does not use (timestamps, which Feast's
    # SQLite reader parses per row; protos built for every value).

    def _stored_sqlite(
        self, online: OnlineStore, v: _View, keys: list[bytes]
    ) -> list[Mapping[str, bytes | None] | None]:
        connection = online._get_conn(self.config)  # type: ignore[attr-defined]
        by_key: dict[bytes, dict[str, bytes]] = {}
        statement = (
            f"SELECT entity_key, feature_name, value FROM {v.sqlite_table} "
            f"WHERE entity_key IN ({','.join('?' * len(keys))})"
        )
        for key, name, value in connection.execute(statement, keys):
            by_key.setdefault(key, {})[name] = value
        return [by_key.get(key) for key in keys]

    def _stored_redis(
        self, online: OnlineStore, keys: list[list[bytes]]
    ) -> list[list[Mapping[str, bytes | None] | None]]:
        """Feast keeps one hash per entity key for all the views keyed by it: one HMGET per
        entity key gets them all, and one pipeline all the entity keys."""
        with self._redis_client(online).pipeline(transaction=False) as pipe:
            for views in self._by_entity:
                fields = [f for i in views for f in self.views[i].redis_fields]
                for key in keys[views[0]]:
                    pipe.hmget(key + self._project, fields)
            replies = iter(pipe.execute())
        stored: list[list[Mapping[str, bytes | None] | None]] = [[] for _ in self.views]
        for views in self._by_entity:
            for _ in keys[views[0]]:
                values = iter(next(replies))
                for i in views:
                    v = self.views[i]
                    stored[i].append({name: next(values) for name in v.features})
        return stored

    def _serialized(self, v: _View, key: tuple[Any, ...]) -> bytes:
        """The entity key as Feast stores it (cached: the same entities come back)."""
        serialized = v.serialized.get(key)
        if serialized is None:
            from feast.infra.key_encoding_utils import serialize_entity_key

            serialized = serialize_entity_key(
                _entity_key(v, key),
                entity_key_serialization_version=self.config.entity_key_serialization_version,
            )
            if len(v.serialized) >= CACHED_VALUES:
                v.serialized.clear()
            v.serialized[key] = serialized
        return serialized

    def _decoded(
        self, stored: Mapping[str, bytes | None] | None, name: str, value_type: Any
    ) -> Any:
        """One stored value as Python, converted as `get_online_features` converts it; cached
        by its bytes (features take few distinct values; conversion is the read's main cost)."""
        raw = stored.get(name) if stored is not None else None
        if not raw:  # no row, no such feature, or Redis's empty field
            return None
        cached = self._decoded_values.get((value_type, raw), _MISSING)
        if cached is not _MISSING:
            return cached
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type

        proto = Value()
        proto.ParseFromString(raw)
        value = feast_value_type_to_python_type(proto, value_type)
        if isinstance(value, IMMUTABLE):  # a list would be shared between answers
            if len(self._decoded_values) >= CACHED_VALUES:
                self._decoded_values.clear()
            self._decoded_values[(value_type, raw)] = value
        return value

    def probe(self) -> str | None:
        """None if the online store answers real lookups, else what is wrong: each view answers
        the read path for a key no entity has; then, that the store holds values of each view,
        found by the read path:

        - SQLite: the file exists and is the one the connection reads (else reconnect), and a
          key read from each view's table is found.
        - Redis: a key of each view, found once by SCAN (the project's keys, `HELD_SCAN_CALLS`
          pages at most) and remembered, is still found; scanned again once it is not. Cheap
          once a key is known: one lookup per view, as for SQLite. A full scan that finds
          nothing is a problem (nothing materialized, or a Redis restarted empty); a scan that
          reaches its bound first proves nothing either way and passes (a Redis shared with much
          other data), so the check is sound but not complete there.
        """
        path = self.path
        if path is not None:
            if not path.exists():
                return f"the online store {path} does not exist (deleted?)"
            if self._online is not None and _identity(path) != self._identity:
                log.info("the online store %s was replaced: reconnecting", path)
                self.reconnect()
        try:
            online = self.online()
            for v in self.views:
                # The read path's own connection first: being read-write, it can also roll
                # back a hot journal that a writer killed mid-transaction left (SQLite refuses
                # that to the read-only connection below: SQLITE_READONLY_ROLLBACK).
                _online_read(online, self.config, v, [_sentinel_key(v)])
                if self.redis:
                    problem = self._redis_holds(online, v)
                    if problem is not None:
                        return problem
                    continue
                if path is None:
                    continue
                key = self._held_key(v)
                if key is None:
                    return (
                        f"the online store has no values for {v.view.name}: nothing "
                        "materialized yet, or the store was recreated empty"
                    )
                [(_, found)] = _online_read(online, self.config, v, [key])
                if not _holds(found):
                    return f"the online store did not find a key of {v.view.name} it holds"
        except Exception as err:
            self.reconnect()
            return f"cannot read the online store: {describe_error(err)}"
        return None

    def _held_key(self, v: _View) -> EntityKey | None:
        """A key the view's table holds, read on a connection of its own (read-only)."""
        from feast.infra.key_encoding_utils import deserialize_entity_key

        uri = f"file:{quote(str(self.path))}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=PROBE_LOCK_SECONDS)
        try:
            statement = f"SELECT entity_key FROM {v.sqlite_table} LIMIT 1"
            row = connection.execute(statement).fetchone()
        finally:
            connection.close()
        if row is None:
            return None
        return deserialize_entity_key(
            row[0], entity_key_serialization_version=self.config.entity_key_serialization_version
        )

    def _redis_holds(self, online: OnlineStore, v: _View) -> str | None:
        """None if Redis holds values of the view (or the bounded scan could not tell)."""
        held = self._held.get(v.view.name)
        if held is not None:
            [(_, found)] = _online_read(online, self.config, v, [held])
            if _holds(found):
                return None
            del self._held[v.view.name]
        client = self._redis_client(online)
        project = self.config.project.encode()
        # Feast's key for an entity: its serialized entity key, then the project's name.
        match = b"*" + b"".join(b"\\" + bytes([c]) for c in project)
        cursor = 0
        for _ in range(HELD_SCAN_CALLS):
            cursor, names = client.scan(cursor, match=match, count=HELD_SCAN_COUNT)
            keys = [
                k
                for k in map(self._entity_key, names)
                if k is not None and list(k.join_keys) == v.join_keys
            ]
            if keys:
                read = _online_read(online, self.config, v, keys)
                for key, (_, found) in zip(keys, read, strict=True):
                    if _holds(found):
                        self._held[v.view.name] = key
                        return None
            if cursor == 0:
                return (
                    f"the online store has no values for {v.view.name}: nothing materialized "
                    "yet, or Redis was emptied (restarted without persistence?)"
                )
        return None

    def _entity_key(self, name: bytes) -> EntityKey | None:
        """The entity key of one of Feast's Redis keys; None for a key that is not one."""
        from feast.infra.key_encoding_utils import deserialize_entity_key

        project = self.config.project.encode()
        try:
            return deserialize_entity_key(
                name[: -len(project)],
                entity_key_serialization_version=self.config.entity_key_serialization_version,
            )
        except Exception:  # another application's key that happens to end like ours
            return None


# Entries in each read-path cache (serialized keys per view, decoded values): then it starts
# over. A few MB at most.
CACHED_VALUES = 1 << 16
# Decoded values that may be shared between answers.
IMMUTABLE = (int, float, str, bool, bytes, datetime)
_MISSING = object()
# How long the probe waits for a lock a writer (an ingest's commit) holds.
PROBE_LOCK_SECONDS = 5
# The probe's search for a key of each view: at most this many SCAN pages of this many keys.
HELD_SCAN_CALLS = 10
HELD_SCAN_COUNT = 1000


def _bound_redis(client: Any, timeout: float) -> None:
    """Time-outs on a redis-py client's connections (those the connection string leaves
    unset; a cluster client keeps the connection string's), and no retries: a failed read is
    answered at once, and the next one reconnects."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        for name in ("socket_timeout", "socket_connect_timeout"):
            if pool.connection_kwargs.get(name) is None:
                pool.connection_kwargs[name] = timeout
    client.set_retry(Retry(NoBackoff(), 0))


def _online_read(
    online: OnlineStore, config: RepoConfig, v: _View, keys: list[EntityKey]
) -> list[tuple[Any, dict[str, Any] | None]]:
    """`online_read` of the view's features, on a copy of their names: Feast's Redis store
    appends its timestamp field to the list it is given."""
    return online.online_read(config, v.view, keys, list(v.features))


def _holds(found: dict[str, Any] | None) -> bool:
    """Whether a looked-up key had values: SQLite answers None for a key it does not hold,
    Redis a dict of empty values."""
    return found is not None and any(v.WhichOneof("val") is not None for v in found.values())


def _identity(path: Path | None) -> tuple[int, int] | None:
    try:
        stat = os.stat(path) if path is not None else None
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino) if stat is not None else None


def _sentinel_key(v: _View) -> EntityKey:
    """A key of zeros: found or not, a store that answers a lookup of it is reachable."""
    return _entity_key(v, tuple(0 for _ in v.join_keys))


def _entity_key(v: _View, key: tuple[Any, ...]) -> EntityKey:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values

    values = [
        python_values_to_proto_values([k], t)[0] for k, t in zip(key, v.key_types, strict=True)
    ]
    return EntityKey(join_keys=v.join_keys, entity_values=values)
