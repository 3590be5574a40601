"""The landing zone: one directory per batch, one parquet file per table, and a manifest.

    landing/<batch_id>/<table>.parquet   one per table of the use case
    landing/<batch_id>/_batch.json       {"batch_id", "closed_at", ...}

The manifest is written last, so a batch without one is still being written by its producer
(a directory holding parquet files but no manifest is taken as closed now, for hand-made drops).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops.config.errors import UserError
from mlops.contracts.usecase import TableSpec, UseCase

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
            # Hidden folders are batches still being copied in (see entrypoints.lifecycle.land).
            children = sorted(
                p
                for p in path.iterdir()
                if p.is_dir() and not p.name.startswith(".") and is_batch_dir(p)
            )
            if not children:
                raise BatchUnreadable(f"{path}: holds no batch (no {MANIFEST}, no parquet).")
            found.extend(children)
    for directory in found:
        batch_id_of(directory)
    return found


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
        tables[spec.name] = _read_table(directory / spec.file_name)
    return LandedBatch(manifest["batch_id"], directory, closed_at, tables)


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


# `mlops land`: a user's files, one table each, become day batches in the landing zone.

BATCH_BY = ("day",)  # how `land_files` may split rows into batches
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
EXAMPLES = 3  # bad values quoted in an error


def land_files(
    use_case: UseCase, files: Sequence[Path], landing_dir: Path, batch_by: str = "day"
) -> list[Path]:
    """Land a user's tables as one batch per UTC day; return the batch directories, in order.

    Each file holds one table, named by the file (`<table>.csv`; a use case with a single
    table takes any name), as CSV (empty fields are missing values) or parquet. A table goes
    through `use_case.conform`, then its timestamp column is read as UTC (a time without an
    offset is UTC; ISO 8601 only, so 01/02 is never a guess). Rows are split by the UTC day of
    their time:

    - the event table's rows by their own time;
    - a table whose id column the event table carries (an entity's table) as the generator
      lands it, a snapshot of the entities the day's events name (their rows, whatever day
      they were created: a batch can be validated and featurized on its own);
    - any other table by its own time.

    A batch holds every table (an empty frame with the file's columns on a day without rows)
    and closes at the next midnight UTC. Batches are written aside and renamed into place, so
    a crash leaves no half batch. Landing the same files again changes nothing; a batch already
    there with other content is a `UserError` before anything is written.
    """
    if batch_by not in BATCH_BY:
        raise UserError(f"--batch-by {batch_by!r}: batches are made by {', '.join(BATCH_BY)}")
    tables = _read_tables(use_case, files)
    days = _split_by_day(use_case, tables)
    if not days:
        raise UserError(
            f"nothing to land: {', '.join(str(f) for f in files)} hold(s) no row of "
            f"{use_case.event_table}"
        )
    landing_dir.mkdir(parents=True, exist_ok=True)
    # Hidden (skipped by expand_batch_paths) and this call's own: never seen as a batch.
    staging = landing_dir / f".landing-{uuid.uuid4().hex}"
    meta = {"source": "mlops land", "files": [Path(f).name for f in files]}
    try:
        staged = {
            day: write_batch(staging / day.isoformat(), frames, _day_end(day), **meta)
            for day, frames in sorted(days.items())
        }
        conflicts = [
            landing_dir / path.name
            for path in staged.values()
            if (landing_dir / path.name).exists() and not same_batch(path, landing_dir / path.name)
        ]
        if conflicts:
            listed = ", ".join(str(p) for p in conflicts[:EXAMPLES])
            more = f" and {len(conflicts) - EXAMPLES} more" if len(conflicts) > EXAMPLES else ""
            raise UserError(
                f"already landed with other content for the same day: {listed}{more}. Nothing "
                "was written. To replace a landed day, delete its batch folder and land again "
                "(ingesting a batch again replaces what it stored before); or land into another "
                "directory with --out."
            )
        for path in staged.values():
            target = landing_dir / path.name
            if not target.exists():  # an identical batch is left alone
                os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [landing_dir / day.isoformat() for day in sorted(days)]


def batch_rows(directory: Path, specs: Iterable[TableSpec]) -> dict[str, int]:
    """Rows per table of a landed batch, from the parquet footers (no data read)."""
    return {spec.name: pq.read_metadata(directory / spec.file_name).num_rows for spec in specs}


def _read_tables(use_case: UseCase, files: Sequence[Path]) -> dict[str, pd.DataFrame]:
    """Every table of the use case, from its file: conformed, its times parsed to UTC."""
    names = [t.name for t in use_case.tables]
    found: dict[str, Path] = {}
    for path in map(Path, files):
        table = _table_of(path, use_case)
        if table in found:
            raise UserError(f"{found[table]} and {path} both hold table '{table}': give one file")
        found[table] = path
    if missing := [n for n in names if n not in found]:
        raise UserError(
            f"a batch of use case '{use_case.name}' holds {', '.join(names)}: give a file for "
            f"each, in one command (missing: {', '.join(missing)})"
        )
    tables = {}
    for table, path in found.items():
        spec = use_case.table(table)
        frame = read_file(path)
        try:
            frame = use_case.conform(table, frame)
        except UserError as err:
            raise type(err)(f"{path}: {err}") from None
        for column, role in ((spec.timestamp_column, "time"), (spec.id_column, "id")):
            if column not in frame.columns:
                raise UserError(
                    f"{path}: no column '{column}' (the {table} table's {role}); its columns "
                    f"are {', '.join(map(str, frame.columns)) or 'none'}"
                )
        frame = frame.reset_index(drop=True)
        column = spec.timestamp_column
        frame[column] = utc_times(frame[column], column, str(path))
        tables[table] = frame
    return tables


def _table_of(path: Path, use_case: UseCase) -> str:
    """The table a file holds: its name without the format's suffix."""
    suffix = next((s for s in (*CSV_SUFFIXES, *PARQUET_SUFFIXES) if path.name.endswith(s)), None)
    if suffix is None:
        raise UserError(f"{path}: not a CSV or parquet file (.csv, .csv.gz, .parquet)")
    if len(use_case.tables) == 1:
        return use_case.tables[0].name
    name = path.name.removesuffix(suffix)
    names = [t.name for t in use_case.tables]
    if name not in names:
        raise UserError(
            f"{path}: use case '{use_case.name}' has no table '{name}'; name each file after "
            f"its table: {', '.join(f'{n}.csv' for n in names)} (or .parquet)"
        )
    return name


def read_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    kind = "parquet" if path.name.endswith(PARQUET_SUFFIXES) else "CSV"
    try:
        if kind == "parquet":
            return pd.read_parquet(path, dtype_backend="numpy_nullable")
        # Nullable types keep an integer column with blanks integer. Only an empty field is
        # missing: "NA" is a country (Namibia), not a null.
        return pd.read_csv(
            path, dtype_backend="numpy_nullable", keep_default_na=False, na_values=[""]
        )
    except Exception as err:  # pandas and pyarrow raise many types for a damaged file
        what = f"{type(err).__name__}: {err}"
        raise UserError(f"{path}: not a readable {kind} file ({what})") from err


def utc_times(values: pd.Series, column: str, source: str) -> pd.Series:
    """The column as UTC times: ISO 8601 (so 01/02 is never a guess), a time without an offset
    is UTC. A row without a time, or a value that is not one, is a `UserError` naming the
    source, the column and examples."""
    if pd.api.types.is_datetime64_any_dtype(values):
        times = values.dt.tz_localize(UTC) if values.dt.tz is None else values.dt.tz_convert(UTC)
    elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise UserError(
            f"{source}: column '{column}' holds {values.dtype} values, not times (e.g. "
            f"{_examples(values.dropna())}); write ISO 8601 times such as 2026-01-01T12:30:00Z"
        )
    else:
        times = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    missing = values.isna()
    unparsed = times.isna() & ~missing
    if missing.any() or unparsed.any():
        problems = []
        if missing.any():
            problems.append(f"{int(missing.sum())} row(s) without a value")
        if unparsed.any():
            problems.append(
                f"{int(unparsed.sum())} value(s) that are not ISO 8601 times "
                f"(e.g. {_examples(values[unparsed])})"
            )
        raise UserError(
            f"{source}: column '{column}' has {' and '.join(problems)}; every row needs its "
            "time, e.g. 2026-01-01T12:30:00Z (without an offset: UTC)"
        )
    return times


def _examples(values: pd.Series) -> str:
    return ", ".join(repr(str(v)) for v in values.head(EXAMPLES))


def _split_by_day(
    use_case: UseCase, tables: Mapping[str, pd.DataFrame]
) -> dict[date, dict[str, pd.DataFrame]]:
    """Each day's batch: every table's rows for it (see `land_files` for which rows)."""
    events_spec = use_case.events
    events = tables[events_spec.name]

    def day_of(table: str) -> pd.Series:
        return tables[table][use_case.table(table).timestamp_column].dt.date

    linked = {
        t.name
        for t in use_case.tables
        if t.name != events_spec.name and t.id_column in events.columns
    }
    # One pass per table (a groupby keeps each day's rows in file order), not one per day.
    by_day = {
        name: {day: rows for day, rows in tables[name].groupby(day_of(name), sort=False)}
        for name in tables
        if name not in linked
    }
    days = sorted({day for groups in by_day.values() for day in groups})
    batches: dict[date, dict[str, pd.DataFrame]] = {}
    for day in days:
        frames = {name: groups.get(day, tables[name].iloc[:0]) for name, groups in by_day.items()}
        for name in linked:
            ids = frames[events_spec.name][use_case.table(name).id_column].dropna()
            entities = tables[name]
            frames[name] = entities[entities[use_case.table(name).id_column].isin(ids)]
        batches[day] = {t.name: frames[t.name].reset_index(drop=True) for t in use_case.tables}
    return batches


def _day_end(day: date) -> datetime:
    """A day batch closes at the next midnight UTC, as the generator's do."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


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
