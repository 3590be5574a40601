"""The CLI's one error convention: a `UserError` is its message and exit code; anything else is
a platform failure, exit 1, one paragraph on the terminal and the traceback in the log file."""

from __future__ import annotations

import json

import pytest
import typer

from entrypoints.cli.conventions import answer
from mlops.config.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_REJECTED,
    Rejected,
    ServiceUnreachable,
    UserError,
)
from mlops.config.settings import get_settings


def _exit_code(work, capsys, as_json: bool = False) -> tuple[int, str, str]:
    with pytest.raises(typer.Exit) as exited:
        answer(as_json, work)
    out, err = capsys.readouterr()
    return exited.value.exit_code, out, err


def test_a_user_error_is_its_message_and_exit_code(settings, capsys) -> None:
    def bad_input():
        raise UserError("--days must be positive")

    def rejected():
        raise Rejected("batch 2026-01-02 rejected: too many bad rows")

    assert _exit_code(bad_input, capsys) == (EXIT_BAD_INPUT, "", "error: --days must be positive\n")
    code, out, err = _exit_code(rejected, capsys, as_json=True)
    assert code == EXIT_REJECTED and json.loads(out) == {"error": err.removeprefix("error: ")[:-1]}


def test_a_platform_failure_is_one_paragraph_and_the_traceback_goes_to_the_log(
    settings, capsys
) -> None:
    def broken():
        return {}["no such key"]

    code, _, err = _exit_code(broken, capsys)

    log = settings.logs_dir / "mlops.log"
    assert code == EXIT_FAILURE
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: the platform failed: KeyError('no such key')")
    assert f"(full log: {log})" in err
    assert "Traceback" in log.read_text() and "KeyError" in log.read_text()


def test_a_value_error_is_not_taken_for_bad_input(settings, capsys) -> None:
    def bug():
        raise ValueError("a bug, not the user's input")

    assert _exit_code(bug, capsys)[0] == EXIT_FAILURE


def _refused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_service_that_did_not_answer_is_named_not_the_library_error(
    settings, capsys, monkeypatch
) -> None:
    import requests
    from mlflow.exceptions import MlflowException

    mlflow_url = f"http://127.0.0.1:{_refused_port()}"
    monkeypatch.setenv("MLOPS_MLFLOW_TRACKING_URI", mlflow_url)
    get_settings.cache_clear()

    def models() -> tuple[dict, str, int]:
        url = f"{mlflow_url}/api/2.0/mlflow/registered-models/search"
        try:  # MLflow's REST client raises its own exception inside requests' handler
            requests.get(url, timeout=5)
        except requests.ConnectionError as err:
            raise MlflowException(f"API request to {url} failed with exception {err}") from None
        raise AssertionError("nothing listens there")

    code, _, err = _exit_code(models, capsys)

    assert code == EXIT_FAILURE and err.count("\n") == 1
    assert err.startswith(
        f"error: the platform failed: MLflow at {mlflow_url} does not answer (connection "
        "refused): is it up? `mlops status` (full log: "
    )
    for library_words in ("MlflowException", "HTTPConnectionPool", "Max retries", "Errno"):
        assert library_words not in err
    assert "MlflowException" in (settings.logs_dir / "mlops.log").read_text()  # kept there


def test_an_outage_inside_a_flow_failure_is_that_outage(settings, capsys) -> None:
    def flow_run() -> tuple[dict, str, int]:
        try:
            raise ServiceUnreachable("the Prefect API", "http://prefect:4200/api", "no answer")
        except ServiceUnreachable as err:
            raise RuntimeError("Flow run 'train' failed") from err

    code, _, err = _exit_code(flow_run, capsys, as_json=True)

    assert code == EXIT_FAILURE
    assert err.startswith(
        "error: the platform failed: the Prefect API at http://prefect:4200/api does not "
        "answer (no answer): is it up? `mlops status`"
    )
    assert "Flow run 'train' failed" not in err


def _cli(*args: str) -> tuple[int, str, str]:
    """`mlops ARGS` in this process: exit code, stdout, stderr."""
    from typer.testing import CliRunner

    from entrypoints.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_land_refuses_a_file_that_is_no_table_of_the_use_case(settings, tmp_path) -> None:
    (tmp_path / "clicks.csv").write_text("impression_id,event_timestamp\n1,2026-01-01T00:00:00Z\n")
    code, out, err = _cli("land", str(tmp_path / "clicks.csv"), "--json")
    assert code == EXIT_BAD_INPUT
    assert "has no table 'clicks'; name each file after its table: impressions.csv" in err
    assert "Traceback" not in err and json.loads(out)["error"] in err
    assert not settings.landing_dir.exists() or not any(settings.landing_dir.iterdir())


def test_land_refuses_a_missing_file_and_an_unknown_batching(settings, tmp_path) -> None:
    missing = tmp_path / "impressions.csv"
    code, _, err = _cli(
        "land", str(missing), str(tmp_path / "users.csv"), str(tmp_path / "ads.csv")
    )
    assert code == EXIT_BAD_INPUT and f"error: {missing}: no such file" in err
    code, _, err = _cli("land", str(missing), "--batch-by", "week")
    assert code == EXIT_BAD_INPUT and "'week' is not one of 'day'" in err


@pytest.mark.parametrize("command", ["generate", "run"])
def test_an_unknown_scenario_is_refused_listing_the_simulators(settings, command) -> None:
    from mlops.contracts.usecase import load_use_case

    scenarios = load_use_case("adclick").generator.scenarios
    code, _, err = _cli(command, "--scenario", "heatwave")
    assert code == EXIT_BAD_INPUT
    assert "unknown scenario 'heatwave' (--scenario): this use case's simulator has " in err
    assert ", ".join(scenarios) in err


def test_use_cases_lists_them_and_what_the_active_one_offers(settings) -> None:
    code, out, _ = _cli("use-cases", "--json")
    listed = json.loads(out)
    assert code == 0 and "adclick" in listed["use_cases"] and listed["active"] == "adclick"
    assert listed["data_source"] == "simulator" and "concept-drift" in listed["scenarios"]


def test_generate_reports_what_it_wrote_in_the_simulators_plain_world(settings) -> None:
    code, out, _ = _cli("generate", "--days", "2", "--events-per-day", "50", "--json")
    generated = json.loads(out)
    assert code == 0 and generated["events"] == 100 and len(generated["batches"]) == 2
    assert generated["scenario"] == "baseline"  # the simulator's first scenario
