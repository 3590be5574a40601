"""Which landed batches an ingest run takes: the ones it is given, their ids checked before
anything runs; or, as scheduled, every batch in the landing zone not yet committed nor
rejected."""

from __future__ import annotations

from pathlib import Path

from ingestion.ingest_steps import REJECTION_FILE
from mlops.contracts.batches import BatchUnreadable, batch_id_of, expand_batch_paths
from mlops.stores.offline_store import OfflineStore


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
