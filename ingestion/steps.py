"""The data stage: land a batch, validate it, quarantine what fails, store what passes.

    read_batch -> validate -> gate -> quarantine -> write_offline -> build_features
               -> commit -> materialize -> BatchReport

Each step is a plain function; `flows/ingest.py` runs them as Prefect tasks. Nothing is dropped:
every landed row ends in the offline store or in `quarantine/<batch_id>/` with its reasons, and a
batch that cannot be used at all is recorded there too (the landing zone is never touched).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from ingestion import validation
from ingestion.validation import REASON_COLUMN, GateDecision, TableValidation
from mlops.errors import Rejected
from mlops.feature_store import materialize
from mlops.landing import (
    BatchUnreadable,
    LandedBatch,
    expand_batch_paths,
    read_batch,
    read_manifest,
    write_parquet,
)
from mlops.offline_store import OfflineStore
from mlops.settings import Settings
from mlops.usecase import FeatureInputs, UseCase

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

REJECTION_FILE = "rejection.json"


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
    """Every batch in the landing zone not yet ingested nor rejected: what a schedule ingests."""
    try:
        landed = expand_batch_paths([landing_dir])
    except BatchUnreadable:  # no landing zone yet, or nothing in it
        return []
    done = {b["batch_id"] for b in offline.committed_batches()}
    return [
        path
        for path in landed
        if batch_id_of(path) not in done
        and not (quarantine_dir / batch_id_of(path) / REJECTION_FILE).exists()
    ]


def land(batch_dir: Path, use_case: UseCase) -> LandedBatch:
    return read_batch(batch_dir, use_case.tables)


def batch_id_of(batch_dir: Path) -> str:
    try:
        return str(read_manifest(batch_dir)["batch_id"])
    except BatchUnreadable:
        return batch_dir.name


def validate(
    batch: LandedBatch, use_case: UseCase, settings: Settings
) -> dict[str, TableValidation]:
    return {
        name: validation.validate_table(
            frame, use_case.suites_dir / f"{name}.json", settings.gx_root, batch.closed_at
        )
        for name, frame in batch.tables.items()
    }


def gate(results: dict[str, TableValidation], use_case: UseCase) -> GateDecision:
    return validation.gate(results, use_case.card.gates.validation.max_failing_fraction)


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
            clean = result.clean.assign(**{REASON_COLUMN: "batch rejected"})
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
    for name, result in results.items():
        store.write(store.table_dir(name), batch.batch_id, result.clean)


def build_features(
    batch: LandedBatch,
    results: dict[str, TableValidation],
    use_case: UseCase,
    store: OfflineStore,
) -> datetime:
    """Compute and store the batch's feature rows; return the earliest timestamp written."""
    history = store.connect([t.name for t in use_case.tables])
    try:
        features = use_case.build_features(
            FeatureInputs(
                batch_id=batch.batch_id,
                tables={name: r.clean for name, r in results.items()},
                history=history,
                closed_at=batch.closed_at,
            )
        )
    finally:
        history.close()
    earliest = batch.closed_at
    for view, frame in features.items():
        store.write(store.feature_dir(view), batch.batch_id, frame)
        if len(frame):
            earliest = min(earliest, frame["event_timestamp"].min().to_pydatetime())
    return earliest


def commit(batch: LandedBatch, results: dict[str, TableValidation], store: OfflineStore) -> None:
    store.commit(
        batch.batch_id,
        {
            "closed_at": batch.closed_at.isoformat(),
            "source": str(batch.path),
            "rows": {name: len(r.clean) for name, r in results.items()},
            "committed_at": datetime.now(UTC).isoformat(),
        },
    )


def sync_online(feature_store: FeatureStore, earliest: datetime, store: OfflineStore) -> None:
    """Materialize from the batch's earliest feature row up to the store's watermark."""
    watermark = store.watermark()
    if watermark is not None and earliest <= watermark:
        materialize(feature_store, earliest, watermark)


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
