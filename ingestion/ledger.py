"""The ledger: one record per committed batch (`offline/batches/<id>.json`) saying what is done
with it, and the work it shows is left.

    content           a hash of the batch's clean tables (`content_hash`)
    features_from     the batches, and their content, its feature rows were computed from:
                      every committed batch closing no later than it
    earliest_feature  where materializing its feature rows starts
    materialized_at   once the online store holds them

Stale features (`stale_batches`) and missing materializations are derived from the ledger, so
any run finishes what a late batch or a crash left: `refresh_features` rebuilds, `sync_online`
materializes, and `finish_committed` does both (after rolling interrupted commits forward)
before every ingest run.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.config.settings import Settings
from mlops.contracts.batches import ARROW_STRINGS
from mlops.contracts.usecase import FeatureInputs, UseCase
from mlops.stores.feature_store import materialize, open_store
from mlops.stores.offline_store import OfflineStore

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

# The start of materialization for a ledger record written before `earliest_feature` existed:
# the suites' floor for any timestamp.
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)


def finish_committed(settings: Settings, use_case: UseCase, store: OfflineStore) -> list[str]:
    """Finish what a killed run left: commits it interrupted, features a late batch made stale,
    committed batches not yet materialized. Cheap when there is nothing to do (no Feast).
    Waits for the writer lock: what another live ingest is doing is not half-done."""
    with store.lock():
        finished = store.recover()
        finished += refresh_features(use_case, store)
        unmaterialized = [
            r["batch_id"] for r in store.committed_batches() if not r.get("materialized_at")
        ]
        if unmaterialized:
            sync_online(open_store(settings, use_case), None, store)
            finished += unmaterialized
    if finished:
        log.info("finished half-done batches: %s", ", ".join(sorted(set(finished))))
    return sorted(set(finished))


def refresh_features(use_case: UseCase, store: OfflineStore) -> list[str]:
    """Rebuild the feature rows of every stale batch (see `stale_batches`), each committed on
    its own; they then wait for materialization. Returns the batch ids rebuilt."""
    # Under the writer lock: rebuilt from, and committed over, the same committed batches.
    with store.lock():
        return _refresh_stale(use_case, store)


def _refresh_stale(use_case: UseCase, store: OfflineStore) -> list[str]:
    rebuilt = []
    for record in stale_batches(store):
        batch_id, closed_at = record["batch_id"], _closed(record)
        store.clear_staged(batch_id)
        features, sources = feature_rows(batch_id, closed_at, use_case, store, False)
        earliest = stage_features(batch_id, closed_at, features, use_case, store)
        updated = {k: v for k, v in record.items() if k not in ("batch_id", "materialized_at")}
        updated.update(
            content=sources[batch_id],
            features_from=sources,
            earliest_feature=earliest.isoformat(),
            rebuilt_at=datetime.now(UTC).isoformat(),
        )
        store.commit(batch_id, updated)
        rebuilt.append(batch_id)
        log.info("rebuilt the features of batch %s", batch_id)
    return rebuilt


def stale_batches(store: OfflineStore) -> list[dict[str, Any]]:
    """Committed batches whose feature rows were not computed from exactly the committed
    batches closing no later than them (a late batch arrived, or one was re-ingested with other
    content), in close order."""
    ledger = sorted(store.committed_batches(), key=lambda r: (_closed(r), r["batch_id"]))
    stale, known, i = [], {}, 0
    while i < len(ledger):
        # Batches that close together see each other.
        same = [r for r in ledger[i:] if _closed(r) == _closed(ledger[i])]
        known.update({r["batch_id"]: r.get("content") for r in same})
        stale += [r for r in same if r.get("features_from") != known]
        i += len(same)
    return stale


def sync_online(
    feature_store: FeatureStore, earliest: datetime | None, store: OfflineStore
) -> list[str]:
    """Materialize every committed batch not yet materialized (and `earliest` on), from the
    earliest of their feature rows up to the store's watermark; record it in the ledger.

    The window always ends at the watermark: the SQLite online store overwrites without
    comparing timestamps, so it must end on the newest values. Returns the batches recorded.
    Under the writer lock: no commit may move the watermark or rewrite a pending record
    between reading them and recording the materialization."""
    with store.lock():
        return _sync_online(feature_store, earliest, store)


def _sync_online(
    feature_store: FeatureStore, earliest: datetime | None, store: OfflineStore
) -> list[str]:
    pending = [r for r in store.committed_batches() if not r.get("materialized_at")]
    starts = [earliest] if earliest is not None else []
    starts += [
        datetime.fromisoformat(r["earliest_feature"])
        if "earliest_feature" in r
        else EARLIEST_TIMESTAMP
        for r in pending
    ]
    watermark = store.watermark()
    if watermark is not None and starts and min(starts) <= watermark:
        materialize(feature_store, min(starts), watermark)
    done = [r["batch_id"] for r in pending]
    store.update(done, materialized_at=datetime.now(UTC).isoformat())
    return done


def feature_rows(
    batch_id: str, closed_at: datetime, use_case: UseCase, store: OfflineStore, staged: bool
) -> tuple[dict[str, pd.DataFrame], dict[str, str | None]]:
    """A batch's feature rows from its tables (staged, or published) and the history of every
    committed batch closing no later than it; and which batches (with their content) those
    were, itself included: its `features_from`."""
    tables = {
        t.name: store.read(store.table_dir(t.name), batch_id, staged=staged)
        for t in use_case.tables
    }
    sources: dict[str, str | None] = {
        r["batch_id"]: r.get("content")
        for r in store.committed_batches()
        if r["batch_id"] != batch_id and _closed(r) <= closed_at
    }
    sources[batch_id] = content_hash(tables)
    history = store.connect(
        [t.name for t in use_case.tables], batches=set(sources), staged=batch_id if staged else None
    )
    try:
        features = use_case.build_features(
            FeatureInputs(batch_id=batch_id, tables=tables, history=history, closed_at=closed_at)
        )
    finally:
        history.close()
    return features, dict(sorted(sources.items()))


def stage_features(
    batch_id: str,
    closed_at: datetime,
    features: dict[str, pd.DataFrame],
    use_case: UseCase,
    store: OfflineStore,
) -> datetime:
    """Stage a batch's feature rows; return the earliest timestamp written (its close if none
    is earlier)."""
    earliest = closed_at
    for view, frame in features.items():
        store.stage(store.feature_dir(view), batch_id, frame)
        if len(frame):
            first = frame[use_case.feature_timestamp].min()
            earliest = min(earliest, pd.Timestamp(first).to_pydatetime())
    return earliest


def content_hash(tables: Mapping[str, pd.DataFrame]) -> str:
    """A hash of a batch's clean tables (names, columns and values)."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        frame = tables[name]
        digest.update(f"{name}:{','.join(map(str, frame.columns))};".encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def stored_form(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as the offline store gives it back (`OfflineStore.read` of what `write_parquet`
    wrote), without writing it: what a ledger record's `content` hashes."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, buffer, coerce_timestamps="us", allow_truncated_timestamps=True)
    buffer.seek(0)
    return pq.read_table(buffer).to_pandas(types_mapper=ARROW_STRINGS.get)


def _closed(record: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(record["closed_at"])
