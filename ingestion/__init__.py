"""The data stage: land a user's files, validate landed batches, quarantine bad rows, write the
offline store and sync the online store.

    landing            `mlops land`: a user's CSV or parquet files become day batches
    batch_discovery    which landed batches an ingest run takes
    gx_project         the shared GX project: its data context and lock
    gx_validation      GX suites over a batch's tables: clean and quarantined rows
    table_validation   what validating a table yields (TableValidation, quarantine reasons)
    row_rules          the platform's own rules beside every suite: ±inf, id range, naive
                       timestamps, duplicates' copies, events older than the card allows
    data_gate          whether a validated batch goes on (GateDecision)
    ingest_steps       the steps of one batch, and `ingest_validated_batch`, their order
    ledger             the committed batches' ledger: stale features, materialization, recovery
    gx_data_docs       the GX data docs, rewritten to render offline
    batch_reports      what a run reports (BatchReport, IngestResult, BatchesRejected)
"""

from ingestion.batch_reports import BatchesRejected, IngestResult
from ingestion.landing import (
    BATCH_BY,
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    land_files,
    read_file,
    utc_times,
)

__all__ = [
    "BATCH_BY",
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
    "BatchesRejected",
    "IngestResult",
    "land_files",
    "read_file",
    "utc_times",
]
