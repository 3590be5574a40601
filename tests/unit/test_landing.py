import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlops.errors import EXIT_BAD_INPUT
from mlops.landing import (
    BatchUnreadable,
    InvalidBatchId,
    expand_batch_paths,
    read_batch,
    validate_batch_id,
    write_batch,
)
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


@pytest.mark.parametrize("batch_id", ["2026-01-01", "day_1.v2", "B7", 20260101, "a" * 128])
def test_safe_batch_ids_are_kept(batch_id) -> None:
    assert validate_batch_id(batch_id, "test") == str(batch_id)


@pytest.mark.parametrize(
    "batch_id",
    ["../../x", "/tmp/x", "it's", "a..b", "..", ".hidden", "", "a b", "x/y", "a" * 129, None, True],
)
def test_unsafe_batch_ids_are_refused_naming_the_id(batch_id) -> None:
    with pytest.raises(InvalidBatchId, match=re.escape(f"batch id {batch_id!r} (from test)")):
        validate_batch_id(batch_id, "test")


def test_a_manifest_or_folder_with_an_unsafe_id_is_refused_before_reading(tmp_path: Path) -> None:
    directory = _land(tmp_path / "landing" / "b1")
    (directory / "_batch.json").write_text(
        json.dumps({"batch_id": "../../x", "closed_at": CLOSED.isoformat()})
    )
    with pytest.raises(InvalidBatchId, match=re.escape("'../../x'")) as refused:
        read_batch(directory, TABLES)
    assert not isinstance(refused.value, BatchUnreadable)  # not a rejection: bad input, exit 2
    assert refused.value.exit_code == EXIT_BAD_INPUT
    with pytest.raises(InvalidBatchId, match=re.escape("'../../x'")):
        expand_batch_paths([tmp_path / "landing"])

    quoted = _land(tmp_path / "zone" / "it's")
    (quoted / "_batch.json").unlink()  # no manifest: the folder name is the id
    with pytest.raises(InvalidBatchId, match='"it\'s"'):
        expand_batch_paths([tmp_path / "zone"])
