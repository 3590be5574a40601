"""The `mlops` command as a user runs it: a subprocess, JSON on stdout, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
MLOPS = str(Path(sys.executable).with_name("mlops"))


@pytest.fixture
def cli(tmp_path: Path, prefect_api_url: str):
    """Run `mlops ... --json` against a fresh MLOPS_HOME and the session's Prefect server."""
    env = {**os.environ, "MLOPS_HOME": str(tmp_path / "home"), "PREFECT_API_URL": prefect_api_url}

    def run(*args: str) -> tuple[int, dict, str]:
        done = subprocess.run(
            [MLOPS, *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return (
            done.returncode,
            json.loads(done.stdout),
            done.stderr,
        )  # one JSON object, nothing else

    run.home = tmp_path / "home"
    return run


def test_generate_ingest_and_read_features(cli) -> None:
    code, generated, _ = cli("generate", "--days", "2", "--events-per-day", "800", "--seed", "3")
    assert code == 0
    assert len(generated["batches"]) == 2

    code, ingested, _ = cli("ingest", str(cli.home / "landing"))
    assert code == 0
    assert {r["status"] for r in ingested["batches"]} == {"ingested"}
    assert ingested["offline_rows"] == 1600

    code, single, _ = cli("ingest", generated["batches"][0])
    assert code == 0
    assert {"batch_id", "rows", "valid", "quarantined", "quarantine_path", "offline_rows"} <= set(
        single
    )
    assert single["offline_rows"] == 1600  # re-ingested, nothing added

    code, features, _ = cli("features", "--user-id", "1", "--ad-id", "1")
    assert code == 0
    assert features["user_id"] == 1 and "user_ctr_7d" in features and "ad_category" in features


def test_an_unreadable_batch_gets_one_clear_paragraph_and_a_non_zero_exit(cli, tmp_path) -> None:
    _, generated, _ = cli("generate", "--days", "1", "--events-per-day", "300")
    batch = Path(generated["batches"][0])
    (batch / "impressions.parquet").write_text("this is not parquet")

    code, result, stderr = cli("ingest", str(batch))

    assert code == 3
    assert result["status"] == "rejected"
    assert "impressions.parquet: not a readable parquet file" in result["reason"]
    assert f"error: batch {batch.name} was rejected: {batch}/impressions.parquet" in stderr
    assert "Traceback" not in stderr


def test_bad_arguments_are_refused_without_a_traceback(cli) -> None:
    code, result, stderr = cli("ingest", "/no/such/batch")
    assert code == 2 and "no such batch directory" in result["error"]
    code, result, stderr = cli("features", "--user-id", "1")
    assert code == 2 and "missing ad_id" in result["error"]
    code, result, stderr = cli("generate", "--scenario", "meteor")
    assert code == 2 and "unknown scenario" in result["error"]
    assert "Traceback" not in stderr
