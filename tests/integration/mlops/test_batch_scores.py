"""Batch scores in PostgreSQL (the server profile's store) against a real server: a run is
written whole or not at all, and once, whoever writes it and however often; a PostgreSQL that
does not answer is named, not taken for "nothing written"."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pandas as pd
import pytest

from mlops.config.errors import ServiceUnreachable
from mlops.stores import batch_scores
from mlops.stores.batch_scores import REASON, ROW, PostgresScores
from mlops.stores.databases import connect
from serving.process import free_port

pytestmark = pytest.mark.integration


def _scores(run: str, rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ROW: range(rows),
            "user_id": [7] * rows,
            "event_timestamp": [datetime(2026, 1, 2, tzinfo=UTC)] * rows,
            "score": [0.1 * i for i in range(rows)],
            "model_version": "3",
            "run_id": run,
            "scored_at": datetime.now(UTC),
        }
    )


def _rejected() -> pd.DataFrame:
    return pd.DataFrame({ROW: [3], "user_id": [None], REASON: ["user_id: Field required"]})


def _count(url: str, table: str, run: str) -> int:
    with connect(url.replace("postgresql+psycopg", "postgresql", 1)) as connection:
        exists = connection.execute("SELECT to_regclass(%s)", (f'"{table}"',)).fetchone()
        if exists is None or exists[0] is None:  # the tables are made in the run's transaction
            return 0
        found = connection.execute(f'SELECT count(*) FROM "{table}" WHERE run_id = %s', (run,))
        row = found.fetchone()
        return int(row[0]) if row else 0


def test_a_run_cut_short_leaves_nothing_and_its_rerun_writes_it_once(
    scratch_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresScores(scratch_postgres, "cut_short")
    copy = batch_scores._copy

    def crash_on_the_rejected_rows(connection, table, frame):  # type: ignore[no-untyped-def]
        if table.endswith("_rejected"):
            raise RuntimeError("killed mid-way")
        copy(connection, table, frame)

    monkeypatch.setattr(batch_scores, "_copy", crash_on_the_rejected_rows)
    with pytest.raises(RuntimeError, match="killed mid-way"):
        store.write("3", "r1", _scores("r1"), _rejected())
    assert not store.written("3", "r1")
    assert _count(scratch_postgres, "cut_short_batch_scores", "r1") == 0

    monkeypatch.setattr(batch_scores, "_copy", copy)
    assert store.write("3", "r1", _scores("r1"), _rejected())
    assert store.written("3", "r1")
    assert not store.write("3", "r1", _scores("r1"), _rejected())
    assert _count(scratch_postgres, "cut_short_batch_scores", "r1") == 3
    assert _count(scratch_postgres, "cut_short_batch_rejected", "r1") == 1


def test_two_writers_of_the_same_run_write_it_once(scratch_postgres: str) -> None:
    store = PostgresScores(scratch_postgres, "raced")  # no tables yet: both make them too
    outcomes: list[bool] = []
    barrier = threading.Barrier(2)

    def write() -> None:
        barrier.wait()
        outcomes.append(store.write("3", "r2", _scores("r2", 500), _rejected()))

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == [False, True]
    assert _count(scratch_postgres, "raced_batch_scores", "r2") == 500


def test_a_postgresql_that_does_not_answer_is_named() -> None:
    store = PostgresScores(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x", "m")
    with pytest.raises(ServiceUnreachable, match="PostgreSQL"):
        store.written("3", "r1")
