"""Test data: small landed batches, some with rows broken on purpose; private copies of homes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
import pytest

from ingestion.landing import land_files
from mlops.config.settings import Settings
from mlops.contracts.batches import read_manifest, write_parquet
from mlops.contracts.usecase import UseCase, load_use_case
from mlops.stores.prediction_log import read_prediction_log
from tests.conftest import PINNED_USE_CASE, SERVICE_WORKERS, START

if TYPE_CHECKING:
    from mlops.stores.registry import ModelRegistry
    from models.train_report import TrainReport

MLOPS = str(Path(sys.executable).with_name("mlops"))
# Per request, for the client and the service (MLOPS_SERVING__TIMEOUT_SECONDS, 2 s by default,
# then 504): no verdict is about this machine's speed.
REQUEST_TIMEOUT_SECONDS = 30
# For a state to be reached (a service started or stopped, a champion served, a log flushed).
WAIT_SECONDS = 120
# The limits of a service `serving_environment` starts: small, for the tests to reach them.
POLL_SECONDS = 1.0
MAX_CONCURRENCY = 4
MAX_BATCH = 50
MAX_BODY_BYTES = 65536

# Row position in the day's impressions -> the rule it must be quarantined for.
INJECTED = {
    0: "user_id:not_null",
    1: "clicked:in_set",
    2: "event_timestamp:between",
    3: "ad_id:between",
    4: "device:in_set",
    5: "impression_id:unique",
    6: "impression_id:unique",
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
    # Rows 5 and 6 share an id now: both are quarantined, keyed by that one id.
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


# The prediction service as a real `bentoml serve` process, started by `mlops serve`.


@dataclass
class Served:
    settings: Settings
    report: TrainReport  # the training that made the @champion it started with
    process: subprocess.Popen[str]
    started: dict[str, Any]  # what `mlops serve --json` printed once ready
    client: httpx.Client
    env: dict[str, str]  # what `mlops serve` ran with

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return self.client.post(path, **kwargs)

    @property
    def registry(self) -> ModelRegistry:
        from mlops.stores.registry import ModelRegistry

        return ModelRegistry(self.settings.tracking_uri, self.env["MLOPS_USE_CASE"])

    def champion(self) -> str:
        """The registry's @champion, once the service serves it (it looks for a new one every
        poll): what a test compares answers with, whatever ran before it."""
        version = self.registry.champion()
        wait_until(
            lambda: self.client.get("/model").json()["model_version"] == version,
            f"the service to serve the @champion v{version}",
        )
        return version


def start_serving(env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """`mlops serve --json` on a free port; it prints its first line once /readyz answers 200
    (it polls, up to MLOPS_SERVING__STARTUP_TIMEOUT_SECONDS)."""
    from serving.process import free_port

    process = subprocess.Popen(
        [MLOPS, "serve", "--port", str(free_port()), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a stop that hangs can then kill the service with it
    )
    assert process.stdout is not None
    started = json.loads(process.stdout.readline() or "{}")
    if not started.get("model_version"):
        stop_serving(process)
        pytest.fail("mlops serve did not start; see its stderr")
    return process, started


def stop_serving(process: subprocess.Popen[str]) -> int:
    """SIGTERM, as a user's Ctrl+C: `mlops serve` stops the service cleanly. A stop that hangs
    is killed, with everything it started, and fails the caller."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def serving_environment(home: Path, prefect_api_url: str) -> dict[str, str]:
    """What `mlops serve` runs with on `home`: the limits above, generous request timeouts
    (none of the serving settings a test may have put in this environment)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLOPS_SERVING__")},
        "MLOPS_HOME": str(home),
        "PREFECT_API_URL": prefect_api_url,
        "MLOPS_SERVING__POLL_SECONDS": str(POLL_SECONDS),
        "MLOPS_SERVING__MAX_CONCURRENCY": str(MAX_CONCURRENCY),
        "MLOPS_SERVING__WORKERS": SERVICE_WORKERS,
        "MLOPS_SERVING__MAX_BATCH": str(MAX_BATCH),
        "MLOPS_SERVING__MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "MLOPS_SERVING__TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
    }


@contextmanager
def serving(home: Path, report: TrainReport, env: dict[str, str]) -> Iterator[Served]:
    """`mlops serve` on `home` (its @champion trained by `report`), stopped on the way out."""
    process, started = start_serving(env)
    try:
        with httpx.Client(base_url=started["url"], timeout=REQUEST_TIMEOUT_SECONDS) as client:
            yield Served(Settings(home=home), report, process, started, client, env)
    finally:
        stop_serving(process)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def wait_for_log(served: Served, ids: list[str], timeout: float = WAIT_SECONDS) -> dict[str, dict]:
    """The log records of `ids`, once the service's batched writer has flushed them."""
    deadline = time.monotonic() + timeout
    while True:
        records = {r["request_id"]: r for r in read_prediction_log(served.settings.predictions_dir)}
        if all(i in records for i in ids) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)
