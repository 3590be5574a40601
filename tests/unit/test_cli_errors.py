"""The CLI's one error convention: a `UserError` is its message and exit code; anything else is
a platform failure, exit 1, one paragraph on the terminal and the traceback in the log file."""

from __future__ import annotations

import json

import pytest
import typer

from mlops.cli import _run
from mlops.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_REJECTED, Rejected, UserError


def _exit_code(work, capsys, as_json: bool = False) -> tuple[int, str, str]:
    with pytest.raises(typer.Exit) as exited:
        _run(as_json, work)
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
