from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlops.landing import BatchUnreadable, expand_batch_paths, read_batch, write_batch
from usecases.adclick.contract import TABLES

CLOSED = datetime(2026, 1, 2, tzinfo=UTC)


def _land(directory: Path) -> Path:
    frame = pd.DataFrame({"x": [1, 2]})
    return write_batch(directory, {t.name: frame for t in TABLES}, closed_at=CLOSED)


def test_a_landing_zone_expands_to_its_batches_in_order(tmp_path: Path) -> None:
    for day in ("2026-01-02", "2026-01-01"):
        _land(tmp_path / "landing" / day)
    found = expand_batch_paths([tmp_path / "landing"])
    assert [p.name for p in found] == ["2026-01-01", "2026-01-02"]
    assert expand_batch_paths([tmp_path / "landing" / "2026-01-02"])[0].name == "2026-01-02"


def test_read_batch_takes_id_and_close_time_from_the_manifest(tmp_path: Path) -> None:
    batch = read_batch(_land(tmp_path / "b1"), TABLES)
    assert batch.batch_id == "b1"
    assert batch.closed_at == CLOSED
    assert batch.rows == {"impressions": 2, "users": 2, "ads": 2}


def test_integer_column_with_a_null_stays_integer(tmp_path: Path) -> None:
    directory = _land(tmp_path / "b")
    pd.DataFrame({"x": pd.array([1, None], dtype="Int64")}).to_parquet(directory / "users.parquet")
    assert str(read_batch(directory, TABLES).tables["users"]["x"].dtype) == "Int64"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "ads.parquet").unlink(), "ads.parquet: the file is missing"),
        (
            lambda d: (d / "users.parquet").write_bytes(b"PAR1 not really"),
            "users.parquet: not a readable parquet",
        ),
        (
            lambda d: (d / "_batch.json").write_text("{oops"),
            "_batch.json: the manifest is not valid",
        ),
    ],
)
def test_unreadable_batches_name_the_file_and_the_problem(tmp_path: Path, damage, message) -> None:
    directory = _land(tmp_path / "b")
    damage(directory)
    with pytest.raises(BatchUnreadable, match=message):
        read_batch(directory, TABLES)


def test_a_path_that_is_not_a_batch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BatchUnreadable, match="no such batch"):
        expand_batch_paths([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchUnreadable, match="holds no batch"):
        expand_batch_paths([tmp_path / "empty"])
