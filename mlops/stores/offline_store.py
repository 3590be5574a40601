"""The offline store: validated tables and feature rows as parquet, one partition per batch.

    offline/tables/<table>/batch_id=<id>/part.parquet
    offline/features/<view>/batch_id=<id>/part.parquet
    offline/batches/<id>.json      the ledger: one record per committed batch
    offline/staging/<id>/...       a batch's partitions while it is written (same layout below)

A batch's partitions become visible together, through a small commit protocol:

    1. stage    every partition is written under staging/<id>/ (no reader, Feast included, sees it)
    2. commit   staging/<id>/_commit.json, renamed into place: the commit point
    3. publish  each staged file is renamed over its partition
    4. record   offline/batches/<id>.json, then staging/<id>/ is removed

A crash before 2 leaves nothing visible: the batch is still pending and a rerun stages it again.
A crash after 2 is finished by `recover()` (run when an ingest starts and when the feature store
opens). DuckDB readers skip a batch between 2 and 4, so they never see half of one. Writing a
batch replaces its partitions whole, so re-ingesting a batch never duplicates a row.

One writer at a time: `lock()` (an flock on offline/write.lock) is held by every commit and
ledger update, and by an ingest from its duplicate check to its materialization, so two ingests
on one MLOPS_HOME take turns there (they validate in parallel). Readers never take it.

Every query takes values and file lists as parameters; table and column names come from the
use case's contract and are checked (`identifier`) before they are quoted into SQL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.config.errors import UserError
from mlops.contracts.batches import ARROW_STRINGS, validate_batch_id, write_parquet

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

PARTITION_FILE = "part.parquet"
COMMIT_FILE = "_commit.json"
LOCK_FILE = "write.lock"
# Table, view and column names that may be quoted into SQL and used as folder names.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def identifier(name: str) -> str:
    """`name` if it is a plain identifier (letters, digits, '_'); a `UserError` otherwise."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise UserError(
            f"{name!r} is not a usable table, view or column name: the use case's contract "
            "must name them with letters, digits and '_' (not starting with a digit)"
        )
    return name


def quoted(name: str) -> str:
    """A checked identifier, double-quoted for SQL."""
    return f'"{identifier(name)}"'


def has_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether `OfflineStore.connect` gave the table a view (not when nothing was ingested)."""
    views = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    return name in {row[0] for row in views}


_held = threading.local()  # path -> depth of the locks this thread holds (`exclusive`)


@contextlib.contextmanager
def exclusive(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Yield whether this thread holds the exclusive lock (flock) on `path`, waiting for it
    unless not `blocking`. Reentrant within a thread (a holder's nested call just yields True);
    another thread or process waits. The kernel drops the lock when its process dies, so a
    crash never leaves it taken."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    if depth.get(key):
        depth[key] += 1
        try:
            yield True
        finally:
            depth[key] -= 1
        return
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                yield False
                return
            log.info("waiting for another process to release %s", path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        depth[key] = 1
        try:
            yield True
        finally:
            depth.pop(key, None)
            fcntl.flock(handle, fcntl.LOCK_UN)


class OfflineStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def lock(self, blocking: bool = True) -> contextlib.AbstractContextManager[bool]:
        """The store's writer lock (see the module's docstring); yields whether it is held."""
        return exclusive(self.root / LOCK_FILE, blocking)

    def table_dir(self, table: str) -> Path:
        return self.root / "tables" / identifier(table)

    def feature_dir(self, view: str) -> Path:
        return self.root / "features" / identifier(view)

    def partition(self, directory: Path, batch_id: str) -> Path:
        return (
            directory
            / f"batch_id={validate_batch_id(batch_id, 'the offline store')}"
            / (PARTITION_FILE)
        )

    # Writing: stage, then commit.
    def staging_dir(self, batch_id: str) -> Path:
        return self.root / "staging" / validate_batch_id(batch_id, "the offline store")

    def staged(self, directory: Path, batch_id: str) -> Path:
        """Where a partition waits for its batch's commit (mirrors the published layout)."""
        relative = self.partition(directory, batch_id).relative_to(self.root)
        return self.staging_dir(batch_id) / relative

    def stage(self, directory: Path, batch_id: str, frame: pd.DataFrame) -> Path:
        path = self.staged(directory, batch_id)
        write_parquet(frame, path)
        return path

    def clear_staged(self, batch_id: str) -> None:
        """Forget an abandoned attempt at a batch (one that never reached its commit point)."""
        staging = self.staging_dir(batch_id)
        with self.lock():
            if (staging / COMMIT_FILE).exists():
                self._publish(batch_id)  # committed: finish it rather than lose it
            shutil.rmtree(staging, ignore_errors=True)

    def write(self, directory: Path, batch_id: str, frame: pd.DataFrame) -> Path:
        """Write a published partition directly, outside the commit protocol (fixtures and
        benchmarks that fabricate a table); ingestion stages and commits instead."""
        path = self.partition(directory, batch_id)
        write_parquet(frame, path)
        return path

    def commit(self, batch_id: str, record: dict[str, Any]) -> None:
        """Make everything staged for the batch visible at once and record it in the ledger."""
        staging = self.staging_dir(batch_id)
        with self.lock():
            staging.mkdir(parents=True, exist_ok=True)
            _write_json(staging / COMMIT_FILE, {"batch_id": batch_id, **record})  # commit point
            self._publish(batch_id)

    def recover(self) -> list[str]:
        """Finish every commit a crash interrupted (steps 3-4); return those batch ids.

        Nothing to do while another process holds the writer lock: a live writer finishes its
        own commits (and every ingest recovers first), and readers skip batches mid-commit, so
        a reader opening the feature store does not wait for an ingest."""
        if not any((self.root / "staging").glob(f"*/{COMMIT_FILE}")):
            return []
        finished = []
        with self.lock(blocking=False) as held:
            if not held:
                return []
            for marker in sorted((self.root / "staging").glob(f"*/{COMMIT_FILE}")):
                self._publish(marker.parent.name)
                finished.append(marker.parent.name)
        return finished

    def _publish(self, batch_id: str) -> None:
        staging = self.staging_dir(batch_id)
        try:
            record = json.loads((staging / COMMIT_FILE).read_text())
        except FileNotFoundError:  # another process finished it meanwhile
            return
        for staged in sorted(staging.glob(f"*/*/batch_id={batch_id}/{PARTITION_FILE}")):
            target = self.root / staged.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # a concurrent recovery published it
                os.replace(staged, target)
        _write_json(self._record_path(batch_id), record)
        shutil.rmtree(staging, ignore_errors=True)

    def _publishing(self) -> set[str]:
        """Batches between their commit point and their ledger record: readers skip them."""
        return {p.parent.name for p in (self.root / "staging").glob(f"*/{COMMIT_FILE}")}

    # Reading.
    def partitions(self, directory: Path) -> dict[str, Path]:
        """Batch id -> published partition of a table or view, batches mid-commit left out."""
        publishing = self._publishing()
        found: dict[str, Path] = {}
        for path in sorted(directory.glob(f"batch_id=*/{PARTITION_FILE}")):
            batch_id = path.parent.name.removeprefix("batch_id=")
            if batch_id not in publishing:
                found[batch_id] = path
        return found

    def read(self, directory: Path, batch_id: str, staged: bool = False) -> pd.DataFrame:
        """One batch's partition as written (strings arrow-backed, as the landing zone reads
        them); `staged`: the copy waiting for the batch's commit."""
        import pyarrow.parquet as pq

        path = self.staged(directory, batch_id) if staged else self.partition(directory, batch_id)
        return pq.read_table(path).to_pandas(types_mapper=ARROW_STRINGS.get)

    def files(
        self, directory: Path, batches: Collection[str] | None = None, staged: str | None = None
    ) -> list[str]:
        """Partition files of a table or view: every published batch, or only `batches`, plus
        the staged partition of batch `staged` in place of its published one."""
        found = self.partitions(directory)
        if batches is not None:
            found = {b: p for b, p in found.items() if b in batches}
        if staged is not None:
            found.pop(staged, None)
            path = self.staged(directory, staged)
            if path.exists():
                found[staged] = path
        return [str(found[b]) for b in sorted(found)]

    def connect(
        self,
        tables: Iterable[str],
        batches: Collection[str] | None = None,
        staged: str | None = None,
    ) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with one view per table over its partitions (see `files`); a
        table with no partition gets no view."""
        import duckdb

        con = duckdb.connect()
        for table in tables:
            files = self.files(self.table_dir(table), batches, staged)
            if files:
                # A relation over the file list: no path is ever pasted into SQL.
                con.read_parquet(files, hive_partitioning=True).create_view(identifier(table))
        return con

    def count_rows(self, table: str) -> int:
        import pyarrow.parquet as pq

        files = self.files(self.table_dir(table))
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    # The ledger: which batches are committed, when each closed, and what is done with them.
    def _record_path(self, batch_id: str) -> Path:
        return self.root / "batches" / f"{validate_batch_id(batch_id, 'the ledger')}.json"

    def committed_batches(self) -> list[dict[str, Any]]:
        ledger = sorted((self.root / "batches").glob("*.json"))
        return [json.loads(p.read_text()) for p in ledger]

    def record(self, batch_id: str) -> dict[str, Any] | None:
        path = self._record_path(batch_id)
        return json.loads(path.read_text()) if path.exists() else None

    def update(self, batch_ids: Iterable[str], **fields: Any) -> None:
        """Add or replace fields of committed batches' records (a `None` value removes one)."""
        with self.lock():  # read, change, write: no commit may rewrite a record in between
            for batch_id in batch_ids:
                record = self.record(batch_id)
                if record is None:
                    continue
                record.update(fields)
                _write_json(
                    self._record_path(batch_id), {k: v for k, v in record.items() if v is not None}
                )

    def watermark(self) -> datetime | None:
        """The latest close time of any committed batch: what the online store is current to,
        and the default end of a training window. Only validated closes get here: ingestion
        refuses a batch whose manifest closes later than now plus the allowed clock skew
        (`max_close_ahead_minutes`), and quarantines its event rows that fall outside it."""
        return max(self._closes(), default=None)

    def first_close(self) -> datetime | None:
        return min(self._closes(), default=None)

    def _closes(self) -> list[datetime]:
        return [datetime.fromisoformat(b["closed_at"]) for b in self.committed_batches()]


def _write_json(path: Path, content: dict[str, Any]) -> None:
    """Atomically (a temp file of this writer's own, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(content, indent=2, default=str))
    os.replace(tmp, path)
