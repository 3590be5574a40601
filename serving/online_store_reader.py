"""The online store read at its own level (`OnlineFeatures`): the feature service's values for
entity rows, from the tables (SQLite, the local profile) or hashes (Redis, the server profile) of
Feast's online store, decoded as Feast decodes them. The views come from the use case's code;
Feast's registry is not on the read path. `probe()` is the readiness check's lookup
(serving/store_health.py runs it)."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from serving.throttled_log import ErrorLog, describe_error

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
        self._view_of = {name: v.view.name for v in self.views for name in v.features}
        # Stored values that do not decode, or decode to another type than their feature's,
        # read as missing: (view, cause) -> how many. `on_unreadable` is told of each (a
        # metric); the log hears of each cause once per `UNREADABLE_LOG_SECONDS`.
        self.unreadable: Counter[tuple[str, str]] = Counter()
        self.on_unreadable: Callable[[str, str], None] | None = None
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
        self._unreadable_values: dict[tuple[Any, bytes], _Unreadable] = {}

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
            raise StoreUnavailable(f"cannot read the online store: {in_words(err)}") from err

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
            # A key that is not a hash fails its own reply only: that entity reads as missing.
            replies = iter(pipe.execute(raise_on_error=False))
        stored: list[list[Mapping[str, bytes | None] | None]] = [[] for _ in self.views]
        for views in self._by_entity:
            for _ in keys[views[0]]:
                reply = next(replies)
                if isinstance(reply, Exception):
                    if not _wrong_kind_of_key(reply):
                        raise reply
                    for i in views:
                        self._unreadable_entity(self.views[i])
                        stored[i].append(None)
                    continue
                values = iter(reply)
                for i in views:
                    v = self.views[i]
                    stored[i].append({name: next(values) for name in v.features})
        return stored

    def _unreadable_entity(self, v: _View) -> None:
        """An entity whose Redis key holds something else than Feast's hash."""
        cause = _Unreadable("a key that is not a hash of values")
        self._unreadable_value(v.features[0], cause)

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
        # Not among the good values: a bad one seen before costs one more lookup (a good one,
        # the hot path, costs nothing more than before).
        bad = self._unreadable_values.get((value_type, raw))
        if bad is not None:
            return self._unreadable_value(name, bad)
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type

        # Checked here, where the bytes are decoded anyway (once per distinct value).
        proto = Value()
        try:
            proto.ParseFromString(raw)
        except Exception:  # DecodeError: not a Value at all
            value: Any = _Unreadable("values that do not decode")
        else:
            value = _unreadable_kind(proto, value_type)
            if value is None:
                value = feast_value_type_to_python_type(proto, value_type)
        if isinstance(value, _Unreadable):
            if len(self._unreadable_values) >= CACHED_VALUES:
                self._unreadable_values.clear()
            self._unreadable_values[(value_type, raw)] = value
            return self._unreadable_value(name, value)
        if isinstance(value, IMMUTABLE):  # a list would be shared between answers
            if len(self._decoded_values) >= CACHED_VALUES:
                self._decoded_values.clear()
            self._decoded_values[(value_type, raw)] = value
        return value

    def _unreadable_value(self, name: str, unreadable: _Unreadable) -> None:
        """A stored value that is not its feature's: read as missing, counted and logged."""
        view = self._view_of[name]
        self.unreadable[(view, unreadable.cause)] += 1
        if self.on_unreadable is not None:
            self.on_unreadable(view, unreadable.cause)
        _unreadable_log.error(
            f"the online store returned {unreadable.cause} for view {view}; read as missing",
            ValueError(f"feature {name}"),
        )
        return None

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
                keys = self._held_keys(v)
                if not keys:
                    return (
                        f"the online store has no values for {v.view.name}: nothing "
                        "materialized yet, or the store was recreated empty"
                    )
                unreadable = False  # a key read, with values the read path cannot use
                for key in keys:  # the first usually holds: one lookup, as for Redis
                    values = _read_or_none(online, self.config, v, key)
                    if _holds(values, v):
                        break
                    unreadable = unreadable or values is _NOT_READ or bool(values)
                else:
                    if unreadable:
                        return _only_unreadable(v)
                    return f"the online store did not find a key of {v.view.name} it holds"
        except Exception as err:
            self.reconnect()
            return f"cannot read the online store: {in_words(err)}"
        return None

    def _held_keys(self, v: _View) -> list[EntityKey]:
        """A few keys the view's table holds (one entity's unreadable values must not make
        the store look broken), read on a connection of its own (read-only)."""
        from feast.infra.key_encoding_utils import deserialize_entity_key

        uri = f"file:{quote(str(self.path))}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=PROBE_LOCK_SECONDS)
        try:
            statement = f"SELECT DISTINCT entity_key FROM {v.sqlite_table} LIMIT {HELD_SQLITE_KEYS}"
            rows = connection.execute(statement).fetchall()
        finally:
            connection.close()
        version = self.config.entity_key_serialization_version
        return [
            deserialize_entity_key(row[0], entity_key_serialization_version=version) for row in rows
        ]

    def _redis_holds(self, online: OnlineStore, v: _View) -> str | None:
        """None if Redis holds values of the view (or the bounded scan could not tell)."""
        held = self._held.get(v.view.name)
        if held is not None:
            if _holds(_read_or_none(online, self.config, v, held), v):
                return None
            del self._held[v.view.name]
        client = self._redis_client(online)
        project = self.config.project.encode()
        # Feast's key for an entity: its serialized entity key, then the project's name.
        match = b"*" + b"".join(b"\\" + bytes([c]) for c in project)
        cursor = 0
        unreadable = False  # keys of the view found, with values it cannot read
        for _ in range(HELD_SCAN_CALLS):
            cursor, names = client.scan(cursor, match=match, count=HELD_SCAN_COUNT)
            keys = [
                k
                for k in map(self._entity_key, names)
                if k is not None and list(k.join_keys) == v.join_keys
            ]
            for key in keys:
                found = _read_or_none(online, self.config, v, key)
                if _holds(found, v):
                    self._held[v.view.name] = key
                    return None
                unreadable = unreadable or found is _NOT_READ or bool(found)
            if cursor == 0:
                if unreadable:
                    return _only_unreadable(v)
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
# Unreadable values are logged at most once per cause in this many seconds.
UNREADABLE_LOG_SECONDS = 60.0
_unreadable_log = ErrorLog(log, every=UNREADABLE_LOG_SECONDS)
# Value fields that hold numbers, and the Python numbers they decode to.
NUMERIC_KINDS = frozenset({"int32_val", "int64_val", "float_val", "double_val"})
_VALUE_KINDS: dict[Any, str | None] = {}  # feast ValueType -> its Value field (None: unchecked)


@dataclass(frozen=True)
class _Unreadable:
    """A stored value that is not its feature's type, and why (in words, never its bytes)."""

    cause: str


def _unreadable_kind(proto: Any, value_type: Any) -> _Unreadable | None:
    """None if the decoded `Value` holds what its feature's type stores (or nothing: missing);
    else why not. A number where a number of another width is expected passes (Feast converts
    it), anything else (a string where a number should be) does not."""
    kind = proto.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    expected = _value_kind(value_type)
    if expected is None or kind == expected:
        return None
    if kind in NUMERIC_KINDS and expected in NUMERIC_KINDS:
        return None
    return _Unreadable("values of the wrong type")


def _value_kind(value_type: Any) -> str | None:
    """The `Value` field a feature of `value_type` is stored in (`FLOAT` -> `float_val`); None
    for a type without one field of its own, which is not checked."""
    if value_type not in _VALUE_KINDS:
        from feast.protos.feast.types.Value_pb2 import Value

        kind = f"{value_type.name.lower()}_val"
        fields = {f.name for f in Value.DESCRIPTOR.oneofs_by_name["val"].fields}
        _VALUE_KINDS[value_type] = kind if kind in fields else None
    return _VALUE_KINDS[value_type]


# How long the probe waits for a lock a writer (an ingest's commit) holds.
PROBE_LOCK_SECONDS = 5
# The probe's search for a key of each view: at most this many SCAN pages of this many keys.
HELD_SCAN_CALLS = 10
HELD_SCAN_COUNT = 1000
# The SQLite probe reads this many of a view's keys; one readable is enough.
HELD_SQLITE_KEYS = 20


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


def _holds(found: dict[str, Any] | object | None, v: _View) -> bool:
    """Whether a looked-up key had values the read path can use (of its features' types):
    SQLite answers None for a key it does not hold, Redis a dict of empty values."""
    if not isinstance(found, dict):
        return False
    return any(
        value.WhichOneof("val") not in (None, "null_val")
        and _unreadable_kind(value, found_type) is None
        for name, found_type in zip(v.features, v.feature_types, strict=True)
        if (value := found.get(name)) is not None
    )


# A key whose values could not be read at all (they do not decode, or it is not a hash).
_NOT_READ = object()


def _read_or_none(
    online: OnlineStore, config: RepoConfig, v: _View, key: EntityKey
) -> dict[str, Any] | object | None:
    """One key's values as Feast's `online_read` returns them; `_NOT_READ` when the values
    are unreadable (the store answered, with something else than Feast's values)."""
    try:
        [(_, found)] = _online_read(online, config, v, [key])
    except Exception as err:
        if not _unreadable_error(err):
            raise
        return _NOT_READ
    return found


def _only_unreadable(v: _View) -> str:
    return (
        f"the online store returned values of the wrong type for view {v.view.name}: none of "
        "the keys read holds values of its features' types"
    )


def _unreadable_error(err: BaseException) -> bool:
    """An error about what the store holds (rather than about reaching it)."""
    from google.protobuf.message import DecodeError

    return isinstance(err, DecodeError | UnicodeDecodeError) or _wrong_kind_of_key(err)


def _wrong_kind_of_key(err: BaseException) -> bool:
    """Redis's answer for a key of another type than the command's (a string, not a hash)."""
    return "WRONGTYPE" in str(err)


def in_words(err: BaseException) -> str:
    """An error as the store's problem in words, for /readyz and 503s: what the store holds
    is described, never echoed (no bytes, no key names)."""
    if _unreadable_error(err):
        return "it holds values that are not Feast's (they do not decode, or a key is not a hash)"
    return _BYTES_LITERAL.sub("<bytes>", describe_error(err))


# A bytes literal in an error's text (b'...' or b"..."): a key or a value from the store.
_BYTES_LITERAL = re.compile(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\"")


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
