"""Where batch prediction's scores go: files under MLOPS_HOME in the local profile, PostgreSQL in
the server profile (where every host of a deployment reads them).

    local    HOME/batch_predictions/model_version=<v>/run=<id>/scores.parquet (+ rejected.parquet)
    server   database <prefix>_predictions, tables
               <model>_batch_runs       a row per run written: version, counts, when
               <model>_batch_scores     the scored rows, each with its run and version
               <model>_batch_rejected   the refused rows, each with its reason and the row itself

A run is written whole or not at all, and once. Locally the scores file is written last, in
one rename; in PostgreSQL the run's row, its scores and its refused rows are one transaction,
the run's row (its primary key) first: a second writer of the same run waits for the first and
then writes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from mlops.config.errors import UserError
from mlops.config.settings import Settings

if TYPE_CHECKING:
    from psycopg import Connection

SCORES_FILE = "scores.parquet"
REJECTED_FILE = "rejected.parquet"
RUN = "run_id"
ROW = "input_row"  # each row's place in the input, kept through the join and into the output
REASON = "rejected_reason"
CONNECT_ATTEMPTS = 3  # a PostgreSQL restarting is asked again, then named (never "not written")


class ScoresStore(Protocol):
    def location(self, version: str, run: str) -> tuple[str, str]:
        """Where a run's scores and refused rows are (a path, or a table and run)."""

    def written(self, version: str, run: str) -> bool:
        """Whether the run was written (by this process or another, now or before)."""

    def write(self, version: str, run: str, scores: pd.DataFrame, rejected: pd.DataFrame) -> bool:
        """Write the run whole; False if it had been written already (nothing written)."""


def scores_store(settings: Settings, model_name: str) -> ScoresStore:
    """The profile's store: files under the home, or the server profile's PostgreSQL."""
    if settings.profile == "server":
        return PostgresScores(settings.database_url("predictions", "psycopg"), model_name)
    return ParquetScores(settings.batch_predictions_dir)


@dataclass(frozen=True)
class ParquetScores:
    directory: Path  # HOME/batch_predictions

    def _folder(self, version: str, run: str) -> Path:
        return self.directory / f"model_version={version}" / f"run={run}"

    def location(self, version: str, run: str) -> tuple[str, str]:
        folder = self._folder(version, run)
        return str(folder / SCORES_FILE), str(folder / REJECTED_FILE)

    def written(self, version: str, run: str) -> bool:
        return (self._folder(version, run) / SCORES_FILE).exists()

    def write(self, version: str, run: str, scores: pd.DataFrame, rejected: pd.DataFrame) -> bool:
        from mlops.contracts.batches import write_parquet

        if self.written(version, run):
            return False
        folder = self._folder(version, run)
        if len(rejected):
            write_parquet(rejected, folder / REJECTED_FILE)
        write_parquet(scores, folder / SCORES_FILE)  # last: it marks the run written
        return True


@dataclass(frozen=True)
class PostgresScores:
    url: str  # SQLAlchemy-style, as `Settings.database_url` gives it
    model_name: str

    def _table(self, kind: str) -> str:
        return f"{self.model_name}_batch_{kind}"

    def location(self, version: str, run: str) -> tuple[str, str]:
        database = self.url.rsplit("/", 1)[-1].split("?", 1)[0]
        where = f"WHERE {RUN} = '{run}'"
        return (
            f"postgresql: {database}.{self._table('scores')} {where}",
            f"postgresql: {database}.{self._table('rejected')} {where}",
        )

    def written(self, version: str, run: str) -> bool:
        from psycopg import sql

        with self._connect() as connection:
            if not self._exists(connection, self._table("runs")):
                return False
            found = connection.execute(
                sql.SQL("SELECT 1 FROM {} WHERE {} = %s").format(
                    sql.Identifier(self._table("runs")), sql.Identifier(RUN)
                ),
                (run,),
            )
            return found.fetchone() is not None

    def write(self, version: str, run: str, scores: pd.DataFrame, rejected: pd.DataFrame) -> bool:
        import psycopg
        from psycopg import sql

        runs = sql.Identifier(self._table("runs"))
        with self._connect() as connection:
            self._create_tables(connection, scores)
            try:
                connection.execute(
                    sql.SQL(
                        "INSERT INTO {} (run_id, model_version, scored, rejected) "
                        "VALUES (%s, %s, %s, %s)"
                    ).format(runs),
                    (run, version, len(scores), len(rejected)),
                )
            except psycopg.errors.UniqueViolation:
                connection.rollback()
                return False
            try:
                _copy(connection, self._table("scores"), scores)
            except psycopg.errors.UndefinedColumn as err:
                raise UserError(
                    f"{self._table('scores')} was made for other columns than these scores' "
                    f"({', '.join(scores.columns)}): {str(err).splitlines()[0]}"
                ) from err
            _copy(connection, self._table("rejected"), _rejected_rows(run, rejected))
            connection.commit()
        return True

    def _connect(self) -> Connection[Any]:
        from mlops.stores.databases import connect

        return connect(self.url.replace("postgresql+psycopg", "postgresql", 1), CONNECT_ATTEMPTS)

    def _exists(self, connection: Connection[Any], table: str) -> bool:
        found = connection.execute("SELECT to_regclass(%s)", (f'"{table}"',)).fetchone()
        return found is not None and found[0] is not None

    def _create_tables(self, connection: Connection[Any], scores: pd.DataFrame) -> None:
        import psycopg
        from psycopg import sql

        columns = [
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(_sql_type(scores[name])))
            for name in scores.columns
        ]
        statements = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id TEXT PRIMARY KEY, model_version TEXT NOT "
                "NULL, scored BIGINT NOT NULL, rejected BIGINT NOT NULL, written_at TIMESTAMPTZ "
                "NOT NULL DEFAULT now())"
            ).format(sql.Identifier(self._table("runs"))),
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (run_id, input_row))").format(
                sql.Identifier(self._table("scores")), sql.SQL(", ").join(columns)
            ),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id TEXT NOT NULL, input_row BIGINT NOT NULL, "
                "rejected_reason TEXT NOT NULL, input JSONB NOT NULL, "
                "PRIMARY KEY (run_id, input_row))"
            ).format(sql.Identifier(self._table("rejected"))),
        ]
        # Committed on their own: two first writers racing to make them, one fails; it retries.
        for attempt in (1, 2):
            try:
                for statement in statements:
                    connection.execute(statement)
                connection.commit()
                return
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                connection.rollback()
                if attempt == 2:
                    raise


def _copy(connection: Connection[Any], table: str, frame: pd.DataFrame) -> None:
    from psycopg import sql

    if frame.empty:
        return
    names = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False):
            copy.write_row(row)


def _rejected_rows(run: str, rejected: pd.DataFrame) -> pd.DataFrame:
    """Run, place and reason as columns; the row itself, whatever its columns, as JSON."""
    inputs = rejected.drop(columns=[ROW, REASON])
    return pd.DataFrame(
        {
            RUN: run,
            ROW: rejected[ROW],
            REASON: rejected[REASON],
            "input": [json.dumps(r, default=str) for r in inputs.to_dict("records")],
        }
    )


def _sql_type(column: pd.Series) -> str:
    kind = column.dtype.kind
    if kind == "M":
        return "TIMESTAMPTZ"
    return {"i": "BIGINT", "u": "BIGINT", "f": "DOUBLE PRECISION", "b": "BOOLEAN"}.get(kind, "TEXT")
