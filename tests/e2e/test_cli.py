"""The `mlops` command as a user runs it: a subprocess, JSON on stdout, clear errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tests.support.cli import cli_runner

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(tmp_path: Path, prefect_api_url: str):
    return cli_runner(tmp_path / "home", prefect_api_url)


def test_an_unreadable_batch_gets_one_clear_paragraph_and_a_non_zero_exit(
    cli, tmp_path, use_case
) -> None:
    # The batch is made in this process (`mlops generate` has its own test above).
    (batch,) = use_case.generator.generate(
        cli.home / "landing", start=date(2026, 1, 1), days=1, events_per_day=300
    )
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
    code, result, stderr = cli("train")
    assert code == 2 and "nothing has been ingested yet" in result["error"]
    assert "Traceback" not in stderr
    code, result, stderr = cli("monitor")
    assert code == 2 and "has no @champion yet" in result["error"]
    assert "Traceback" not in stderr


def test_what_needs_no_flow_is_answered_before_any_flow_runs(cli, tmp_path) -> None:
    code, result, stderr = cli("promote", "9", "--reason", "why not")
    assert code == 2 and "has no version 9" in result["error"]
    code, result, stderr = cli("reject", "9", "--reason", "why not")
    assert code == 2 and "has no version 9" in result["error"]
    code, result, stderr = cli("rollback", "--reason", "why not")
    assert code == 2 and "nothing to roll back to" in result["error"]
    code, result, stderr = cli("predict", "rows.csv")
    assert code == 2 and "has no @champion" in result["error"]
    code, result, stderr = cli("run", "--days", "3")
    assert code == 2 and "--days must exceed the 7 days" in result["error"]
    # No flow ran: Prefect (the session's server) never saw these commands.
    assert "Flow run" not in stderr and "Traceback" not in stderr
    assert not (cli.home / "logs" / "prefect.log").exists()


def test_an_unknown_use_case_is_refused_with_the_valid_names(cli) -> None:
    code, result, _ = cli("settings", env={"MLOPS_USE_CASE": "no-such-case"})
    assert code == 2 and "no use case 'no-such-case'" in result["error"]
    assert "adclick" in result["error"]


def test_a_corrupt_registry_is_one_paragraph_and_the_log_path(cli) -> None:
    mlflow_db = cli.home / "mlflow" / "mlflow.db"
    mlflow_db.parent.mkdir(parents=True)
    mlflow_db.write_bytes(b"this is not a SQLite database" * 100)

    code, result, stderr = cli("models")

    assert code == 1
    assert result["error"].startswith("the platform failed:")
    assert f"(full log: {cli.home / 'logs' / 'mlops.log'})" in result["error"]
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 3
    assert "Traceback" in (cli.home / "logs" / "mlops.log").read_text()
