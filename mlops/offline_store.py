"""The offline store: validated tables and feature rows as parquet, one partition per batch.

    offline/tables/<table>/batch_id=<id>/part.parquet
    offline/features/<view>/batch_id=<id>/part.parquet
    offline/batches/<id>.json      the ledger: written last, when a batch is complete

Writing a batch replaces its partitions whole, so re-ingesting a batch (or rerunning after a
crash) never duplicates a row. DuckDB reads the partitions; Feast reads them through DuckDB.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.landing import write_parquet

if TYPE_CHECKING:
    import duckdb

PARTITION_FILE = "part.parquet"


class OfflineStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def table_dir(self, table: str) -> Path:
        return self.root / "tables" / table

    def feature_dir(self, view: str) -> Path:
        return self.root / "features" / view

    @staticmethod
    def glob(directory: Path) -> str:
        return str(directory / "batch_id=*" / PARTITION_FILE)

    def write(self, directory: Path, batch_id: str, frame: pd.DataFrame) -> Path:
        path = directory / f"batch_id={batch_id}" / PARTITION_FILE
        write_parquet(frame, path)
        return path

    def connect(self, tables: list[str]) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with one view per table over all its partitions."""
        import duckdb

        con = duckdb.connect()
        for table in tables:
            directory = self.table_dir(table)
            if any(directory.glob(f"batch_id=*/{PARTITION_FILE}")):
                source = f"read_parquet('{self.glob(directory)}', hive_partitioning = true)"
                con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {source}')
        return con

    def count_rows(self, table: str) -> int:
        import pyarrow.parquet as pq

        files = self.table_dir(table).glob(f"batch_id=*/{PARTITION_FILE}")
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    # The ledger: which batches are complete, and when each closed.
    def commit(self, batch_id: str, record: dict[str, Any]) -> None:
        path = self.root / "batches" / f"{batch_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({"batch_id": batch_id, **record}, indent=2, default=str))
        os.replace(tmp, path)

    def committed_batches(self) -> list[dict[str, Any]]:
        ledger = sorted((self.root / "batches").glob("*.json"))
        return [json.loads(p.read_text()) for p in ledger]

    def watermark(self) -> datetime | None:
        """The latest close time of any committed batch: what the online store is current to."""
        return max(self._closes(), default=None)

    def first_close(self) -> datetime | None:
        return min(self._closes(), default=None)

    def _closes(self) -> list[datetime]:
        return [datetime.fromisoformat(b["closed_at"]) for b in self.committed_batches()]
