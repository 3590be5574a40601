"""The data stage: land a batch, validate it, quarantine what fails, store what passes.

    finish_committed (what a crash left half-done)
    read_batch -> validate -> exclude_already_ingested -> gate -> quarantine
               -> write_offline -> build_features (staged) -> commit
               -> refresh_features (later batches a late one changes) -> sync_online -> BatchReport

Each step is a plain function; `flows/ingest.py` runs them as Prefect tasks. Nothing is dropped:
every landed row ends in the offline store or in `quarantine/<batch_id>/` with its reasons, and a
batch that cannot be used at all is recorded there too (the landing zone is never touched).
Nothing is let in twice: an event an earlier batch stored is quarantined as `already_ingested`.

The ledger record of a batch (`offline/batches/<id>.json`) says what is done with it:
`content` (a hash of its clean tables), `features_from` (the batches, and their content, its
feature rows were computed from: every committed batch closing no later than it), and
`materialized_at` once the online store holds them. Stale features and missing
materializations are derived from the ledger, so any run finishes what a crash interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from ingestion import validation
from ingestion.validation import REASON_COLUMN, GateDecision, TableValidation
from mlops.config.errors import Rejected
from mlops.config.settings import Settings
from mlops.contracts import batches
from mlops.contracts.batches import (
    BatchUnreadable,
    LandedBatch,
    expand_batch_paths,
    read_batch,
    write_parquet,
)
from mlops.contracts.usecase import FeatureInputs, UseCase
from mlops.stores.feature_store import materialize, open_store
from mlops.stores.offline_store import OfflineStore, quoted

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

REJECTION_FILE = "rejection.json"
FEATURES_FILE = "_features.json"  # in a batch's staging folder: what its feature rows came from
# The start of materialization for a ledger record written before `earliest_feature` existed:
# the suites' floor for any timestamp.
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class BatchReport:
    """What happened to one batch; what `mlops ingest --json` prints and the artifact shows."""

    batch_id: str
    status: Literal["ingested", "rejected"]
    reason: str
    rows: int = 0  # event-table rows landed
    valid: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    quarantine_path: str | None = None
    offline_rows: int = 0  # event-table rows in the offline store afterwards
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    data_docs: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [
            f"# Ingest `{self.batch_id}`: {self.status}",
            "",
            f"{self.reason}",
            "",
            "| table | rows in | clean | quarantined |",
            "|---|---:|---:|---:|",
            *(
                f"| {name} | {t['rows']} | {t['valid']} | {t['quarantined']} |"
                for name, t in self.tables.items()
            ),
            "",
            f"Offline store now holds **{self.offline_rows}** event rows.",
        ]
        if self.quarantined_by_reason:
            lines += ["", "| quarantine reason | rows |", "|---|---:|"]
            lines += [f"| `{r}` | {n} |" for r, n in self.quarantined_by_reason.items()]
        if self.quarantine_path:
            lines += ["", f"Quarantine: `{self.quarantine_path}`"]
        if self.data_docs:
            lines += ["", f"[GX data docs]({Path(self.data_docs).as_uri()})"]
        return "\n".join(lines)


@dataclass
class IngestResult:
    """Every batch an ingest run saw, in order; what `mlops ingest --json` prints."""

    batches: list[BatchReport]

    @property
    def rejected(self) -> list[BatchReport]:
        return [b for b in self.batches if b.status == "rejected"]

    @property
    def offline_rows(self) -> int:
        return self.batches[-1].offline_rows if self.batches else 0

    def to_dict(self) -> dict[str, Any]:
        return {"batches": [b.to_dict() for b in self.batches], "offline_rows": self.offline_rows}


class BatchesRejected(Rejected):
    """A gate rejected one or more batches; `result` still reports every batch."""

    def __init__(self, result: IngestResult) -> None:
        rejected = result.rejected
        summary = "; ".join(f"batch {r.batch_id}: {r.reason}" for r in rejected)
        super().__init__(f"{len(rejected)} of {len(result.batches)} batch(es) rejected. {summary}")
        self.result = result


def pending_batches(landing_dir: Path, quarantine_dir: Path, offline: OfflineStore) -> list[Path]:
    """Every batch in the landing zone not yet committed nor rejected: what a schedule ingests.

    A committed batch that is not materialized yet (a crash) is not pending here: every run
    finishes those first (`finish_committed`). A batch id that is not safe is a `UserError`
    naming it, before anything runs."""
    try:
        landed = expand_batch_paths([landing_dir])  # an unsafe id raises InvalidBatchId
    except BatchUnreadable:  # no landing zone yet, or nothing in it
        return []
    done = {b["batch_id"] for b in offline.committed_batches()}
    return [
        path
        for path in landed
        if batch_id_of(path) not in done
        and not (quarantine_dir / batch_id_of(path) / REJECTION_FILE).exists()
    ]


def check_batch_ids(batch_dirs: list[Path]) -> list[str]:
    """Every batch's id, checked before any batch is ingested (`InvalidBatchId` otherwise)."""
    return [batch_id_of(path) for path in batch_dirs]


def land(batch_dir: Path, use_case: UseCase) -> LandedBatch:
    return read_batch(batch_dir, use_case.tables)


def batch_id_of(batch_dir: Path) -> str:
    return batches.batch_id_of(batch_dir)


def validate(
    batch: LandedBatch, use_case: UseCase, settings: Settings
) -> dict[str, TableValidation]:
    return {
        name: validation.validate_table(
            frame,
            use_case.suites_dir / f"{name}.json",
            settings.gx_root,
            batch.closed_at,
            batch.batch_id,
        )
        for name, frame in batch.tables.items()
    }


def exclude_already_ingested(
    batch: LandedBatch,
    results: dict[str, TableValidation],
    use_case: UseCase,
    store: OfflineStore,
) -> dict[str, TableValidation]:
    """Quarantine clean event rows whose id another committed batch already stored.

    The batch's own earlier ingest does not count: re-ingesting a batch replaces it. Only the
    event table is checked: users and ads are snapshots of entities that recur in every batch.
    """
    events = use_case.events
    result = results[events.name]
    others = [r["batch_id"] for r in store.committed_batches() if r["batch_id"] != batch.batch_id]
    if result.clean.empty or not store.files(store.table_dir(events.name), batches=others):
        return results
    con = store.connect([events.name], batches=others)
    try:
        con.register("incoming", pd.DataFrame({"id": result.clean[events.id_column].to_numpy()}))
        seen = con.execute(
            f"""
            SELECT DISTINCT {quoted(events.id_column)} AS id, CAST(batch_id AS VARCHAR) AS batch_id
            FROM {quoted(events.name)}
            WHERE {quoted(events.id_column)} IN (SELECT id FROM incoming)
            """
        ).df()
    finally:
        con.close()
    return {
        **results,
        events.name: validation.mark_already_ingested(result, events.id_column, seen),
    }


def gate(results: dict[str, TableValidation], use_case: UseCase) -> GateDecision:
    return validation.gate(
        results, use_case.card.gates.validation.max_failing_fraction, use_case.event_table
    )


def quarantine(
    batch_id: str,
    results: dict[str, TableValidation],
    decision: GateDecision,
    quarantine_root: Path,
) -> Path:
    """Write failing rows (or, for a rejected batch, every row) with their reasons.

    Rewrites the batch's quarantine folder whole, so a rerun leaves the same content.
    """
    folder = quarantine_root / batch_id
    for name, result in results.items():
        rows = result.quarantined
        if not decision.passed:
            clean = result.clean.assign(**{REASON_COLUMN: decision.row_reason})
            rows = pd.concat([rows, clean]).sort_index()
        stamped = rows.assign(_batch_id=batch_id, _quarantined_at=datetime.now(UTC))
        write_parquet(stamped, folder / f"{name}.parquet")
    if decision.passed:
        (folder / REJECTION_FILE).unlink(missing_ok=True)
    else:
        record_rejection(batch_id, decision.reason, quarantine_root)
    return folder


def record_rejection(batch_id: str, reason: str, quarantine_root: Path) -> Path:
    """Record why a whole batch was refused; the landed files stay where they are."""
    path = quarantine_root / batch_id / REJECTION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"batch_id": batch_id, "reason": reason, "at": datetime.now(UTC).isoformat()}
    path.write_text(json.dumps(record, indent=2))
    return path


def write_offline(
    batch: LandedBatch, results: dict[str, TableValidation], store: OfflineStore
) -> None:
    """Stage the clean rows of every table; nothing is visible before `commit`."""
    store.clear_staged(batch.batch_id)
    for name, result in results.items():
        store.stage(store.table_dir(name), batch.batch_id, result.clean)


def build_features(
    batch: LandedBatch,
    results: dict[str, TableValidation],
    use_case: UseCase,
    store: OfflineStore,
) -> datetime:
    """Compute and stage the batch's feature rows; return the earliest timestamp written.

    They are computed from the staged tables and the committed batches that close no later
    than this one, the same inputs a rebuild uses (`refresh_features`), so features do not
    depend on the order batches arrived in."""
    features, sources = _feature_rows(batch.batch_id, batch.closed_at, use_case, store, True)
    earliest = _stage_features(batch.batch_id, batch.closed_at, features, use_case, store)
    sidecar = {
        "content": sources[batch.batch_id],
        "features_from": sources,
        "earliest_feature": earliest.isoformat(),
    }
    (store.staging_dir(batch.batch_id) / FEATURES_FILE).write_text(json.dumps(sidecar))
    return earliest


def commit(batch: LandedBatch, results: dict[str, TableValidation], store: OfflineStore) -> None:
    """The batch's partitions become visible at once and the ledger lists it (not materialized
    yet: `sync_online` records that)."""
    sidecar = json.loads((store.staging_dir(batch.batch_id) / FEATURES_FILE).read_text())
    store.commit(
        batch.batch_id,
        {
            "closed_at": batch.closed_at.isoformat(),
            "source": str(batch.path),
            "rows": {name: len(r.clean) for name, r in results.items()},
            "committed_at": datetime.now(UTC).isoformat(),
            **sidecar,
        },
    )


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
        features, sources = _feature_rows(batch_id, closed_at, use_case, store, False)
        earliest = _stage_features(batch_id, closed_at, features, use_case, store)
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


def _closed(record: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(record["closed_at"])


def _feature_rows(
    batch_id: str, closed_at: datetime, use_case: UseCase, store: OfflineStore, staged: bool
) -> tuple[dict[str, pd.DataFrame], dict[str, str | None]]:
    """A batch's feature rows from its tables (staged, or published) and the history of every
    committed batch closing no later than it; and which batches (with their content) those
    were, itself included."""
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


def _stage_features(
    batch_id: str,
    closed_at: datetime,
    features: dict[str, pd.DataFrame],
    use_case: UseCase,
    store: OfflineStore,
) -> datetime:
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


def report(
    batch: LandedBatch,
    results: dict[str, TableValidation],
    decision: GateDecision,
    use_case: UseCase,
    quarantine_path: Path,
    offline_rows: int,
    data_docs: Path | None,
) -> BatchReport:
    events = results[use_case.event_table]
    reasons: dict[str, int] = {}
    for result in results.values():
        for reason, count in result.reason_counts().items():
            reasons[f"{result.table}.{reason}"] = count
    quarantined_events = events.rows if not decision.passed else len(events.quarantined)
    return BatchReport(
        batch_id=batch.batch_id,
        status="ingested" if decision.passed else "rejected",
        reason=decision.reason,
        rows=events.rows,
        valid=events.rows - quarantined_events,
        quarantined=quarantined_events,
        quarantined_by_reason=reasons,
        quarantine_path=str(quarantine_path),
        offline_rows=offline_rows,
        tables={
            name: {
                "rows": r.rows,
                "valid": len(r.clean) if decision.passed else 0,
                "quarantined": len(r.quarantined) if decision.passed else r.rows,
            }
            for name, r in results.items()
        },
        data_docs=str(data_docs) if data_docs else None,
    )


def unreadable_report(
    batch_id: str, error: BatchUnreadable, quarantine_root: Path, offline_rows: int
) -> BatchReport:
    path = record_rejection(batch_id, str(error), quarantine_root)
    return BatchReport(
        batch_id=batch_id,
        status="rejected",
        reason=str(error),
        quarantine_path=str(path.parent),
        offline_rows=offline_rows,
    )
