"""The data stage's steps for one batch, and the order they run in.

    finish_committed (ingestion.ledger: what a crash left half-done)      first, once a run
    read_batch (mlops.contracts.batches) -> validate_batch (ingestion.gx_validation)
    -> ingest_validated_batch:
         exclude_already_ingested -> exclude_older_than_allowed
         -> refuse_reused_id (another batch's id: refused, nothing written anywhere)
         -> check_close (a close past the clock) | decide_batch (ingestion.data_gate) -> quarantine
         -> write_offline -> build_features (staged) -> commit
         -> refresh_features (later batches a late one changes) -> sync_online
    -> batch_report (ingestion.batch_reports)

Each step is a plain function; `flows/ingest.py` runs them as Prefect tasks and the benchmarks
time them, all through `ingest_validated_batch`. Nothing is dropped: every landed row ends in the
offline store or in `quarantine/<batch_id>/` with its reasons, and a batch that cannot be used
at all is recorded there too (the landing zone is never touched). Nothing is let in twice: an
event an earlier batch stored is quarantined as `already_ingested`. A batch is who its content
says it is: an id committed with other content is refused, and a manifest's `closed_at` is
checked against the clock and the rows. What a committed batch
still needs (`refresh_features`, `sync_online`) is read from the ledger (`ingestion.ledger`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pandas as pd

from ingestion.batch_reports import BatchReport
from ingestion.data_gate import GateDecision, decide_batch
from ingestion.ledger import (
    content_hash,
    feature_rows,
    refresh_features,
    stage_features,
    stored_form,
    sync_online,
)
from ingestion.row_rules import WITHIN_MAX_EVENT_AGE, older_than_allowed
from ingestion.table_validation import (
    REASON_COLUMN,
    TableValidation,
    mark_already_ingested,
    move_to_quarantine,
)
from mlops.config.settings import Settings
from mlops.contracts.batches import BatchUnreadable, LandedBatch, batch_id_of, write_parquet
from mlops.contracts.usecase import UseCase
from mlops.stores.offline_store import OfflineStore, quoted

if TYPE_CHECKING:
    from feast import FeatureStore

REJECTION_FILE = "rejection.json"
FEATURES_FILE = "_features.json"  # in a batch's staging folder: what its feature rows came from

T = TypeVar("T")


class StepRunner(Protocol):
    """How `ingest_validated_batch` runs a step: `run(step, *args)` returns `step(*args)`, as a
    plain call (`plain_call`), a Prefect task or a timed stage."""

    def __call__(self, step: Callable[..., T], /, *args: Any) -> T: ...


def plain_call(step: Callable[..., T], /, *args: Any) -> T:
    return step(*args)


@dataclass(frozen=True)
class BatchOutcome:
    results: dict[str, TableValidation]  # already-ingested event rows moved to quarantine
    decision: GateDecision
    quarantine_path: Path | None  # None: refused before anything was written (a reused id)
    earliest_feature: datetime | None  # where materializing starts; None for a refused batch


def ingest_validated_batch(
    batch: LandedBatch,
    results: dict[str, TableValidation],
    use_case: UseCase,
    settings: Settings,
    offline: OfflineStore,
    *,
    feature_store: Callable[[], FeatureStore] | None = None,
    run: StepRunner = plain_call,
) -> BatchOutcome:
    """Gate a validated batch, quarantine what fails and store what passes: committed offline,
    the later batches it changes rebuilt, and, given a `feature_store`, materialized (otherwise
    a later `sync_online` does it)."""
    # Another ingest on this home waits here until this batch is stored (and online, when it
    # is materialized here): the duplicate check must see every commit before this one, the
    # features every batch committed before them, and the ledger must not change between
    # reading what to materialize and recording it.
    with offline.lock():
        results = run(exclude_already_ingested, batch, results, use_case, offline)
        results = run(exclude_older_than_allowed, batch, results, use_case)
        if offline.record(batch.batch_id) is not None:
            refused = refuse_reused_id(batch, results, offline) or check_close(batch, settings)
            if refused is not None:
                # Nothing written, not even to quarantine: `quarantine/<id>/` is the committed
                # batch's, and the schedule never takes a landed batch whose id is committed.
                return BatchOutcome(results, refused, None, None)
        decision = check_close(batch, settings) or decide_batch(results, use_case)
        quarantine_path = run(
            quarantine, batch.batch_id, results, decision, settings.quarantine_dir
        )
        earliest = None
        if decision.passed:
            run(write_offline, batch, results, offline)
            earliest = run(build_features, batch, results, use_case, offline)
            run(commit, batch, results, offline)
            run(refresh_features, use_case, offline)  # a late batch: the later ones it changes
            if feature_store is not None:
                run(sync_online, feature_store(), earliest, offline)
    return BatchOutcome(results, decision, quarantine_path, earliest)


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
    return {**results, events.name: mark_already_ingested(result, events.id_column, seen)}


def exclude_older_than_allowed(
    batch: LandedBatch, results: dict[str, TableValidation], use_case: UseCase
) -> dict[str, TableValidation]:
    """Quarantine clean event rows older than the card's `max_event_age_days` before the
    batch's close: a resent or misdated row is not the day's data. Rows after the close are the
    suites' rule (`closed_at` is their parameter). Entity tables are snapshots: not checked."""
    events = use_case.events
    result = results[events.name]
    max_age = timedelta(days=use_case.card.gates.validation.max_event_age_days)
    old = older_than_allowed(result.clean[events.timestamp_column], batch.closed_at, max_age)
    if not old.any():
        return results
    reason = f"{events.timestamp_column}:{WITHIN_MAX_EVENT_AGE}"
    return {**results, events.name: move_to_quarantine(result, old, reason)}


def refuse_reused_id(
    batch: LandedBatch, results: dict[str, TableValidation], store: OfflineStore
) -> GateDecision | None:
    """A refusal when the batch's id is committed, from another folder, with other content.
    None for a new id, the same content again (re-ingesting it replaces it with the same rows: a
    no-op), or other content in the committed batch's own folder (a corrected day, landed again
    where it was: it replaces what the batch stored, as documented for backfills).

    The ledger records a hash of the tables as landed (`landed`); a record from before it has
    only the hash of the clean tables as stored (`content`), compared the same way."""
    record = store.record(batch.batch_id)
    if record is None or _same_folder(record.get("source"), batch.path):
        return None
    if "landed" in record:
        same = record["landed"] == content_hash(batch.tables)
    else:
        clean = {name: stored_form(r.clean) for name, r in results.items()}
        same = record.get("content") == content_hash(clean)
    if same:
        return None
    return GateDecision(
        False,
        f"batch id {batch.batch_id} is already committed, from {record.get('source')}, with "
        f"other content than {batch.path} holds: refused, nothing was written. Give the new "
        "batch its own id (its folder name, or 'batch_id' in its manifest); to replace the "
        f"committed batch, put the corrected files in {record.get('source')} and ingest that.",
    )


def _same_folder(source: str | None, path: Path) -> bool:
    return source is not None and Path(source).resolve() == path.resolve()


def check_close(batch: LandedBatch, settings: Settings) -> GateDecision | None:
    """A refusal when the manifest says the batch closed later than now plus the settings'
    `max_close_ahead_minutes`: its future rows would pass the suites, and its close would move
    the offline store's watermark past anything validated."""
    latest = datetime.now(UTC) + timedelta(minutes=settings.max_close_ahead_minutes)
    if batch.closed_at <= latest:
        return None
    return GateDecision(
        False,
        f"the manifest says the batch closed at {batch.closed_at.isoformat()}, later than now "
        f"plus {settings.max_close_ahead_minutes:g} minutes (MLOPS_MAX_CLOSE_AHEAD_MINUTES): "
        "a close in the future is refused; the whole batch is quarantined, nothing is stored. "
        "Fix 'closed_at' in its _batch.json (ISO 8601 with an offset, e.g. "
        "2026-01-02T00:00:00+00:00).",
        row_reason="closed_at:not_in_future",
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


def reject_unreadable(
    batch_dir: Path, error: BatchUnreadable, quarantine_root: Path, offline_rows: int
) -> BatchReport:
    """Record why a batch cannot be read and report it rejected."""
    batch_id = batch_id_of(batch_dir)
    path = record_rejection(batch_id, str(error), quarantine_root)
    return BatchReport(
        batch_id=batch_id,
        status="rejected",
        reason=str(error),
        quarantine_path=str(path.parent),
        offline_rows=offline_rows,
    )


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
    features, sources = feature_rows(batch.batch_id, batch.closed_at, use_case, store, True)
    earliest = stage_features(batch.batch_id, batch.closed_at, features, use_case, store)
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
            "landed": content_hash(batch.tables),  # who the batch is: see `refuse_reused_id`
            "rows": {name: len(r.clean) for name, r in results.items()},
            "committed_at": datetime.now(UTC).isoformat(),
            **sidecar,
        },
    )
