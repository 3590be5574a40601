"""`mlops land`: a user's files, one table each, become day batches in the landing zone.

The batch directory format they are written in (manifest, batch ids, parquet tables) is
`mlops.contracts.batches`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd

from mlops.config.errors import UserError
from mlops.contracts.batches import same_batch, write_batch
from mlops.contracts.usecase import UseCase

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
