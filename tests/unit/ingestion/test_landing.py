import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from ingestion.landing import land_files
from mlops.config.errors import EXIT_BAD_INPUT, UserError
from mlops.contracts.batches import (
    BatchUnreadable,
    InvalidBatchId,
    expand_batch_paths,
    read_batch,
    read_manifest,
    validate_batch_id,
    write_batch,
)
from mlops.contracts.usecase import load_use_case
from tests.support.session import PINNED_USE_CASE

TABLES = load_use_case(PINNED_USE_CASE).tables
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


# `mlops land`: a user's files become day batches (the pinned use case: `use_case`, adclick).


def _tables() -> dict[str, pd.DataFrame]:
    """Three impressions over two UTC days (one only in UTC: 23:30 at -02:00 is the next day),
    the users and ads they name, and a user nobody saw."""
    impressions = pd.DataFrame(
        {
            "impression_id": [1, 2, 3],
            "event_timestamp": [
                "2026-01-01 08:00:00",  # no offset: UTC
                "2026-01-01T23:30:00-02:00",  # 2026-01-02T01:30Z
                "2026-01-02T12:00:00Z",
            ],
            "user_id": [10, 11, 10],
            "ad_id": [100, 100, 101],
            "device": ["mobile", "desktop", "NA"],  # "NA" is a value, not a null
            "ad_position": [1, 2, 3],
            "clicked": [0, 1, 0],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [10, 11, 12],
            "signup_at": ["2025-12-01T00:00:00Z"] * 3,
            "age_bucket": ["18-24", "25-34", "55+"],
            "country": ["DE", "US", "FR"],
        }
    )
    ads = pd.DataFrame(
        {
            "ad_id": [100, 101],
            "created_at": ["2025-11-01T00:00:00Z"] * 2,
            "advertiser_id": [1, 2],
            "category": ["travel", "food"],
        }
    )
    return {"impressions": impressions, "users": users, "ads": ads}


def _files(directory: Path, tables: dict[str, pd.DataFrame], suffix: str = ".csv") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in tables.items():
        path = directory / f"{name}{suffix}"
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_files_land_as_one_batch_per_utc_day_with_every_table(use_case, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    batches = land_files(use_case, _files(tmp_path / "in", _tables()), landing)

    assert [b.name for b in batches] == ["2026-01-01", "2026-01-02"]
    first, second = (read_batch(b, use_case.tables) for b in batches)
    assert first.rows == {"impressions": 1, "users": 1, "ads": 1}
    assert second.rows == {"impressions": 2, "users": 2, "ads": 2}
    # Times are UTC; the entity tables hold the entities the day's events name, as generated.
    assert list(second.tables["impressions"]["event_timestamp"].astype(str)) == [
        "2026-01-02 01:30:00+00:00",
        "2026-01-02 12:00:00+00:00",
    ]
    assert sorted(second.tables["users"]["user_id"]) == [10, 11]
    assert list(second.tables["impressions"]["device"]) == ["desktop", "NA"]
    assert second.closed_at == datetime(2026, 1, 3, tzinfo=UTC)  # the next midnight
    manifest = read_manifest(batches[0])
    assert manifest["batch_id"] == "2026-01-01"
    assert manifest["closed_at"] == "2026-01-02T00:00:00+00:00"
    assert manifest["files"] == ["impressions.csv", "users.csv", "ads.csv"]
    assert sorted(p.name for p in landing.iterdir()) == ["2026-01-01", "2026-01-02"]  # no temp


def test_parquet_files_land_the_same_days(use_case, tmp_path: Path) -> None:
    tables = _tables()
    tables["impressions"]["event_timestamp"] = pd.to_datetime(
        tables["impressions"]["event_timestamp"], format="ISO8601", utc=True
    )
    files = _files(tmp_path / "in", tables, ".parquet")
    batches = land_files(use_case, files, tmp_path / "landing")
    assert [read_batch(b, use_case.tables).rows["impressions"] for b in batches] == [1, 2]


def test_a_day_without_rows_of_a_table_holds_it_empty_with_its_columns(
    use_case, tmp_path: Path
) -> None:
    tables = _tables()
    tables["users"] = tables["users"][tables["users"]["user_id"] != 11]  # named by the 2nd day
    tables["impressions"] = tables["impressions"].iloc[1:2]
    (batch,) = land_files(use_case, _files(tmp_path / "in", tables), tmp_path / "landing")
    users = read_batch(batch, use_case.tables).tables["users"]
    assert users.empty and list(users.columns) == ["user_id", "signup_at", "age_bucket", "country"]


def test_landing_the_same_files_again_changes_nothing(use_case, tmp_path: Path) -> None:
    files, landing = _files(tmp_path / "in", _tables()), tmp_path / "landing"
    first = land_files(use_case, files, landing)
    before = _snapshot(landing)
    assert land_files(use_case, files, landing) == first
    assert _snapshot(landing) == before


def test_a_day_landed_with_other_content_is_refused_and_nothing_is_written(
    use_case, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    tables = _tables()
    land_files(use_case, _files(tmp_path / "in", tables), landing)
    tables["impressions"].loc[0, "clicked"] = 1  # 2026-01-01 changes
    tables["impressions"].loc[3] = [4, "2026-01-05T00:00:00Z", 10, 100, "mobile", 1, 0]
    before = _snapshot(landing)
    with pytest.raises(UserError, match=re.escape(f"{landing / '2026-01-01'}")) as refused:
        land_files(use_case, _files(tmp_path / "changed", tables), landing)
    assert "delete its batch folder and land again" in str(refused.value)
    assert _snapshot(landing) == before  # not even the new day 2026-01-05


def test_a_time_that_cannot_be_read_is_refused_naming_file_column_and_values(
    use_case, tmp_path: Path
) -> None:
    tables = _tables()
    tables["impressions"]["event_timestamp"] = ["yesterday", None, "01/02/2026 10:00"]
    files = _files(tmp_path / "in", tables)
    with pytest.raises(UserError) as refused:
        land_files(use_case, files, tmp_path / "landing")
    message = str(refused.value)
    assert message.startswith(f"{files[0]}: column 'event_timestamp' has 1 row(s) without")
    assert (
        "2 value(s) that are not ISO 8601 times (e.g. 'yesterday', '01/02/2026 10:00')" in message
    )
    assert not (tmp_path / "landing").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d, f: f[0].rename(d / "clicks.csv"), "has no table 'clicks'; name each file"),
        (lambda d, f: f[2].unlink(), "give a file for each, in one command (missing: ads)"),
        (lambda d, f: f[1].write_text("user_id,age_bucket\n1,18-24\n"), "no column 'signup_at'"),
        (
            lambda d, f: (f[2].unlink(), (d / "ads.parquet").write_bytes(b"PAR1 not really")),
            "ads.parquet: not a readable parquet file",
        ),
        (lambda d, f: f[0].rename(d / "impressions.json"), "not a CSV or parquet file"),
    ],
)
def test_bad_files_are_refused_naming_the_file(use_case, tmp_path: Path, change, message) -> None:
    directory = tmp_path / "in"
    files = _files(directory, _tables())
    change(directory, files)
    with pytest.raises(UserError, match=re.escape(message)):
        land_files(use_case, sorted(directory.iterdir()), tmp_path / "landing")


def test_symlinks_leaving_the_landing_zone_are_refused(tmp_path: Path) -> None:
    from mlops.contracts.batches import OutsideLandingZone

    landing = tmp_path / "landing"
    _land(landing / "2026-01-01")
    elsewhere = _land(tmp_path / "elsewhere" / "secret")
    (landing / "linked").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutsideLandingZone, match="outside the landing zone") as refused:
        expand_batch_paths([landing])
    assert refused.value.exit_code == EXIT_BAD_INPUT
    (landing / "linked").unlink()

    inside = landing / "2026-01-01"
    (inside / "ads.parquet").unlink()
    (inside / "ads.parquet").symlink_to(elsewhere / "ads.parquet")
    with pytest.raises(BatchUnreadable, match="outside its batch directory"):
        read_batch(inside, TABLES)
    (inside / "ads.parquet").unlink()
    (inside / "ads.parquet").symlink_to(inside / "users.parquet")  # staying inside: fine
    assert read_batch(inside, TABLES).rows["ads"] == 2
