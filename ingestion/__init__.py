"""The data stage: validate landed batches, quarantine bad rows, write the offline store and
sync the online store."""

from ingestion.steps import BatchesRejected, IngestResult

__all__ = ["BatchesRejected", "IngestResult"]
