"""Test data and stores: small landed batches (some with rows broken on purpose), private
copies of homes, and snapshots of every store to compare two runs with."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from ingestion.landing import land_files
from mlops.contracts.batches import read_manifest, write_parquet
from mlops.contracts.usecase import UseCase, load_use_case
from tests.support.session import PINNED_USE_CASE, START

# Row position in the day's impressions -> the rule it must be quarantined for.
INJECTED = {
    0: "user_id:not_null",
    1: "clicked:in_set",
    2: "event_timestamp:between",
    3: "ad_id:between",
    4: "device:in_set",
    6: "impression_id:unique",  # a copy of row 5's id; row 5, the first, is kept
}


def copy_home(source: Path, target: Path) -> Path:
    """A private copy of an MLOPS_HOME, its model registry included, without Prefect's state (the
    session's server keeps it). MLflow records absolute artifact locations (in its database, in
    each MLmodel file): they are moved to the copy's, so the copy never reads or writes the
    source. A copy costs well under a second; training the same model again costs ~10 s."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("prefect"))
    old, new = str(source), str(target)
    database = target / "mlflow" / "mlflow.db"
    if database.exists():
        connection = sqlite3.connect(database)
        try:
            with connection:
                tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                for (table,) in tables.fetchall():
                    for column in connection.execute(f'PRAGMA table_info("{table}")').fetchall():
                        name = f'"{column[1]}"'
                        connection.execute(
                            f'UPDATE "{table}" SET {name} = replace({name}, ?, ?) '
                            f"WHERE typeof({name}) = 'text' AND instr({name}, ?) > 0",
                            (old, new, old),
                        )
        finally:
            connection.close()
    for mlmodel in (target / "mlflow").rglob("MLmodel"):
        mlmodel.write_text(mlmodel.read_text().replace(old, new))
    return target


def land_days(landing: Path, days: int = 3, events_per_day: int = 1_500, **kwargs) -> list[Path]:
    """Days of the pinned use case's simulated world."""
    return use_case_days(load_use_case(PINNED_USE_CASE), landing, days, events_per_day, **kwargs)


def use_case_days(
    use_case: UseCase, landing: Path, days: int, events_per_day: int = 1_500, **kwargs: Any
) -> list[Path]:
    """The first `days` batches of a use case: simulated, or landed from its shipped files."""
    if use_case.generator is None:
        return land_files(use_case, use_case.data_files, landing)[:days]
    return use_case.generator.generate(
        landing, start=START, days=days, events_per_day=events_per_day, seed=11, **kwargs
    )


def inject_bad_rows(batch_dir: Path) -> dict[int, str]:
    """Break rows 0-6 of a landed batch as INJECTED says; return impression id -> reason."""
    path = batch_dir / "impressions.parquet"
    frame = pd.read_parquet(path)
    closed_at = pd.Timestamp(read_manifest(batch_dir)["closed_at"])
    frame["user_id"] = frame["user_id"].astype("Int64")
    frame.loc[0, "user_id"] = pd.NA
    frame.loc[1, "clicked"] = 3
    frame.loc[2, "event_timestamp"] = closed_at + timedelta(hours=1)
    frame.loc[3, "ad_id"] = -5
    frame.loc[4, "device"] = "fax"
    frame.loc[6, "impression_id"] = frame.loc[5, "impression_id"]
    write_parquet(frame, path)
    ids = frame["impression_id"]
    # Rows 5 and 6 share an id now: the copy (6) is quarantined, keyed by that id; 5 is kept.
    return {int(ids[i]): reason for i, reason in INJECTED.items()}


def offline_impressions(offline_dir: Path) -> pd.DataFrame:
    files = sorted((offline_dir / "tables" / "impressions").glob("batch_id=*/part.parquet"))
    return pd.concat(pd.read_parquet(f) for f in files) if files else pd.DataFrame()


# Snapshots of every store, to compare a drill's end state with a clean run's.
LEDGER_FIELDS = ("closed_at", "rows", "content", "features_from", "earliest_feature")


def _partitions(directory: Path) -> pd.DataFrame:
    files = sorted(directory.glob("batch_id=*/part.parquet"))
    frames = [
        pd.read_parquet(f).assign(batch_id=f.parent.name.removeprefix("batch_id=")) for f in files
    ]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def offline_snapshot(offline_dir: Path) -> dict[str, pd.DataFrame]:
    """Every published partition of every table and feature view, with its batch id."""
    return {
        f"{kind}/{d.name}": _partitions(d)
        for kind in ("tables", "features")
        for d in sorted((offline_dir / kind).glob("*"))
    }


def quarantine_snapshot(quarantine_dir: Path) -> dict[str, pd.DataFrame]:
    return {
        f"{f.parent.name}/{f.name}": pd.read_parquet(f).drop(columns="_quarantined_at")
        for f in sorted(quarantine_dir.glob("*/*.parquet"))
    }


def ledger_snapshot(offline_dir: Path) -> dict[str, dict]:
    """What the ledger says of each batch, without wall-clock times and landing paths."""
    from mlops.stores.offline_store import OfflineStore

    return {
        r["batch_id"]: {k: r.get(k) for k in LEDGER_FIELDS}
        for r in OfflineStore(offline_dir).committed_batches()
    }


def online_snapshot(settings, use_case) -> dict[str, list]:
    """The online values of every user and ad the offline store knows (what serving reads)."""
    from mlops.stores.feature_store import open_store

    offline = settings.offline_dir / "tables"
    users = sorted(set(_partitions(offline / "users")["user_id"]))
    ads = sorted(set(_partitions(offline / "ads")["ad_id"]))
    rows = [
        {"user_id": int(users[i % len(users)]), "ad_id": int(ads[i % len(ads)])}
        for i in range(max(len(users), len(ads)))
    ]
    store = open_store(settings, use_case)
    service = store.get_feature_service(use_case.feature_service)
    return store.get_online_features(features=service, entity_rows=rows).to_dict()


def store_snapshot(settings, use_case) -> dict[str, object]:
    return {
        "offline": offline_snapshot(settings.offline_dir),
        "quarantine": quarantine_snapshot(settings.quarantine_dir),
        "ledger": ledger_snapshot(settings.offline_dir),
        "online": online_snapshot(settings, use_case),
    }


def assert_same_stores(actual: dict, expected: dict, parts=("offline", "ledger", "online")) -> None:
    """Equal stores, part by part (frames with pandas' own check, so a failure says where)."""
    for part in parts:
        if part in ("offline", "quarantine"):
            assert sorted(actual[part]) == sorted(expected[part]), part
            for name, frame in expected[part].items():
                pd.testing.assert_frame_equal(actual[part][name], frame, obj=f"{part} {name}")
        else:
            assert actual[part] == expected[part], part
