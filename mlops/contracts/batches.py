"""The landing zone: one directory per batch, one parquet file per table, and a manifest.

    landing/<batch_id>/<table>.parquet   one per table of the use case
    landing/<batch_id>/_batch.json       {"batch_id", "closed_at", ...}

The manifest is written last, so a batch without one is still being written by its producer
(a directory holding parquet files but no manifest is taken as closed now, for hand-made drops).
Use cases' generators write batches here; a user's files are landed by `ingestion.landing`.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops.config.errors import UserError
from mlops.contracts.usecase import TableSpec

MANIFEST = "_batch.json"
# A batch id names folders (quarantine, offline partitions, the ledger) and appears in queries:
# letters, digits, '.', '_' and '-', starting with a letter or digit, never '..'.
BATCH_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ARROW_STRINGS = {
    pa.string(): pd.StringDtype("pyarrow"),
    pa.large_string(): pd.StringDtype("pyarrow"),
}


class BatchUnreadable(UserError):
    """A batch that cannot be read as the contract says: the message names file and problem."""


class InvalidBatchId(UserError):
    """A batch id that could escape its folder or break a query: refused before anything runs."""


class OutsideLandingZone(UserError):
    """A symlink in the landing zone to a directory elsewhere: refused before anything runs
    (whoever can write the landing zone would otherwise have the platform read any folder)."""


def _inside(path: Path, root: Path) -> bool:
    """Whether `path`, its symlinks followed, stays below `root` (followed too)."""
    return path.resolve().is_relative_to(root.resolve())


def validate_batch_id(batch_id: object, source: Path | str) -> str:
    """The id itself when it is safe as a path component and a partition value; otherwise an
    `InvalidBatchId` naming the id and where it came from (`source`)."""
    # A JSON number is a fine id; anything else that is not a string is not.
    is_number = isinstance(batch_id, int) and not isinstance(batch_id, bool)
    text = str(batch_id) if is_number else batch_id if isinstance(batch_id, str) else None
    if text is None or not BATCH_ID_PATTERN.fullmatch(text) or ".." in text:
        raise InvalidBatchId(
            f"batch id {batch_id!r} (from {source}) is refused: a batch id is 1-128 letters, "
            "digits, '.', '_' or '-', starts with a letter or digit and has no '..'. "
            f"Rename the directory or fix 'batch_id' in its {MANIFEST}."
        )
    return text


@dataclass(frozen=True)
class LandedBatch:
    batch_id: str
    path: Path
    closed_at: datetime
    tables: dict[str, pd.DataFrame]

    @property
    def rows(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.tables.items()}


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically (temp file + rename), timestamps in microseconds (DuckDB reads them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own: two processes finishing the same write never share a temp file.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, tmp, coerce_timestamps="us", allow_truncated_timestamps=True)
    os.replace(tmp, path)


def write_batch(
    directory: Path, tables: Mapping[str, pd.DataFrame], closed_at: datetime, **meta: Any
) -> Path:
    """Land one batch: tables first, the manifest last (it marks the batch complete)."""
    for name, frame in tables.items():
        write_parquet(frame, directory / f"{name}.parquet")
    manifest = {"batch_id": directory.name, "closed_at": closed_at.isoformat(), **meta}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return directory


def is_batch_dir(path: Path) -> bool:
    return (path / MANIFEST).exists() or any(path.glob("*.parquet"))


def expand_batch_paths(paths: Iterable[Path]) -> list[Path]:
    """Batch directories named directly, or found one level below a landing zone, sorted.

    Every batch's id (manifest or directory name) is checked here, before anything runs: an
    unsafe id is an `InvalidBatchId` naming it."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise BatchUnreadable(f"{path}: no such batch directory or landing zone.")
        if is_batch_dir(path):
            found.append(path)
        else:
            # Hidden folders are batches still being copied in
            # (see entrypoints.lifecycle.deliver_to_landing_zone).
            children = sorted(
                p
                for p in path.iterdir()
                if p.is_dir() and not p.name.startswith(".") and is_batch_dir(p)
            )
            for child in children:
                if not _inside(child, path):
                    raise OutsideLandingZone(
                        f"{child} is a symlink to {child.resolve()}, outside the landing zone "
                        f"{path}: refused, nothing was ingested. Copy the batch into the "
                        "landing zone, or remove the link."
                    )
            if not children:
                raise BatchUnreadable(f"{path}: holds no batch (no {MANIFEST}, no parquet).")
            found.extend(children)
    for directory in found:
        batch_id_of(directory)
    return found


def newest_batch(landing_dir: Path) -> Path:
    """The landing zone's newest batch (batch folders sort by day); a UserError if it holds
    none."""
    if not landing_dir.is_dir():
        raise BatchUnreadable(f"{landing_dir}: no landing zone yet (`mlops land` first)")
    return expand_batch_paths([landing_dir])[-1]


def batch_id_of(directory: Path) -> str:
    """A landed batch's id: its manifest's `batch_id`, else its directory name; validated."""
    try:
        return str(read_manifest(directory)["batch_id"])
    except BatchUnreadable:  # a damaged manifest: the batch is recorded under its folder name
        return validate_batch_id(directory.name, directory)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The batch's manifest (`batch_id` validated, `closed_at` checked as ISO); a directory
    without one is its own name, closed now."""
    manifest_path = directory / MANIFEST
    _refuse_link_out(manifest_path, directory)
    if not manifest_path.exists():
        batch_id = validate_batch_id(directory.name, directory)
        return {"batch_id": batch_id, "closed_at": datetime.now(UTC).isoformat()}
    try:
        manifest = json.loads(manifest_path.read_text())
        datetime.fromisoformat(manifest["closed_at"])
    except (ValueError, KeyError, TypeError) as err:
        raise BatchUnreadable(
            f"{manifest_path}: the manifest is not valid JSON with an ISO 'closed_at' ({err})."
        ) from err
    if "batch_id" in manifest:
        manifest["batch_id"] = validate_batch_id(manifest["batch_id"], manifest_path)
    else:
        manifest["batch_id"] = validate_batch_id(directory.name, directory)
    return manifest


def read_batch(directory: Path, specs: Iterable[TableSpec]) -> LandedBatch:
    """Read every table of a batch; raise `BatchUnreadable` naming the file and the problem."""
    manifest = read_manifest(directory)
    closed_at = datetime.fromisoformat(manifest["closed_at"])
    if closed_at.tzinfo is None:
        closed_at = closed_at.replace(tzinfo=UTC)
    tables = {}
    for spec in specs:
        _refuse_link_out(directory / spec.file_name, directory)
        tables[spec.name] = _read_table(directory / spec.file_name)
    return LandedBatch(manifest["batch_id"], directory, closed_at, tables)


def _refuse_link_out(path: Path, directory: Path) -> None:
    """A batch's file that is a symlink leaving its batch directory is unreadable: the batch is
    refused rather than the platform reading a file from elsewhere."""
    if path.is_symlink() and not _inside(path, directory):
        raise BatchUnreadable(
            f"{path} is a symlink to {path.resolve()}, outside its batch directory: refused. "
            "Copy the file into the batch."
        )


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise BatchUnreadable(f"{path}: the file is missing; every batch must carry it.")
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for damaged files
        raise BatchUnreadable(
            f"{path}: not a readable parquet file ({type(err).__name__}: {err})."
        ) from err
    # Arrow-backed strings: GX checks them per column instead of calling Python per value.
    frame = table.to_pandas(types_mapper=ARROW_STRINGS.get)
    # pandas turns an integer column with a null into floats; keep it an integer column so the
    # null is a row to quarantine, not a type change that rejects the whole table.
    for column in table.schema:
        if pa.types.is_integer(column.type) and table.column(column.name).null_count:
            frame[column.name] = table.column(column.name).to_pandas(
                types_mapper={column.type: pd.Int64Dtype()}.get
            )
    return frame


def batch_rows(directory: Path, specs: Iterable[TableSpec]) -> dict[str, int]:
    """Rows per table of a landed batch, from the parquet footers (no data read)."""
    return {spec.name: pq.read_metadata(directory / spec.file_name).num_rows for spec in specs}


def same_batch(one: Path, other: Path) -> bool:
    """Whether two batch directories hold the same tables (names, types, values) and close at
    the same time; the rest of their manifests may differ."""
    try:
        closes = {datetime.fromisoformat(read_manifest(b)["closed_at"]) for b in (one, other)}
        names = {p.name for p in one.glob("*.parquet")}
        if len(closes) != 1 or names != {p.name for p in other.glob("*.parquet")}:
            return False
        return all(pq.read_table(one / n).equals(pq.read_table(other / n)) for n in names)
    except Exception:  # a damaged or half-written batch is not the same batch
        return False
