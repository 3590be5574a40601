"""What every command shares: how it starts (settings and use case), answers (its result as
text or one JSON object, and its exit code) or fails, and the options and arguments several
commands parse the same way."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.config.errors import EXIT_FAILURE, UserError

if TYPE_CHECKING:
    from mlops.config.settings import Settings
    from mlops.contracts.usecase import UseCase
    from mlops.stores.services import ServiceName

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
# A command's work: its result (the JSON object), its text, its exit code.
Work = Callable[[], tuple[dict[str, Any], str, int]]
# What a command that runs the whole lifecycle (or may retrain) needs to answer.
ALL_SERVICES: tuple[ServiceName, ...] = ("prefect", "mlflow", "postgres", "redis")


def start(needs: Sequence[ServiceName] = ()) -> tuple[Settings, UseCase]:
    """The process set up (settings validated and applied, logs routed), each service the
    command `needs` asked whether it answers (those these settings make remote:
    `mlops.stores.services`), and the active use case loaded: a wrong setting, a service that
    does not answer (named, with its URL, within seconds) or a wrong use-case name stops here,
    before any work. Services first: a command that cannot work spares loading the use case."""
    from mlops.config.runtime import setup
    from mlops.contracts.usecase import active_use_case

    settings = setup()
    if needs:
        from mlops.stores.services import require

        require(settings, needs)
    return settings, active_use_case(settings)


def answer(
    as_json: bool,
    work: Work,
    exit_when_done: bool = True,
    done_so_far: Callable[[], str] | None = None,
) -> None:
    """Run a command: print its result (JSON or text) and exit with its code. A `UserError`
    becomes its message and exit code; anything else is a platform failure: one paragraph
    and exit 1, the traceback in the log file. No traceback reaches the terminal.
    Ctrl-C or SIGTERM is neither: "interrupted", what `done_so_far()` says (what was completed
    and what a rerun does), exit 130, within seconds and with the processes it started stopped.
    With `exit_when_done=False` a command that succeeded goes on (`serve` keeps serving)."""
    try:
        result, text, code = _until_interrupted(as_json, work, done_so_far)
    except UserError as err:
        _fail(as_json, str(err), err.exit_code)
    except Exception as err:
        where = _log_failure(err)
        _fail(as_json, f"the platform failed: {_platform_failure(err)}{where}", EXIT_FAILURE)
    typer.echo(json.dumps(result, default=str) if as_json else text)
    if exit_when_done or code:
        raise typer.Exit(code)
    sys.stdout.flush()


def _until_interrupted(
    as_json: bool, work: Work, done_so_far: Callable[[], str] | None
) -> tuple[dict[str, Any], str, int]:
    """`work()`; a stop signal ends it as an interruption, whatever it raised on its way out
    (Prefect's `TerminationSignal`, a child process the same Ctrl-C stopped)."""
    from mlops.config.interrupts import interruptible, received_signal

    with interruptible(lambda signum: _say_interrupted(as_json, signum, done_so_far)):
        try:
            return work()
        except BaseException as err:
            signum = received_signal()
            if signum is None:
                raise
            _interrupted(as_json, signum, done_so_far, err)
    raise AssertionError("unreachable: `_interrupted` exits")


def _interrupted(
    as_json: bool, signum: int, done_so_far: Callable[[], str] | None, err: BaseException
) -> None:
    """Tell and exit 130; where it stopped goes to the log file. What the command started
    stops on the way out, in order (`mlops.config.interrupts`)."""
    from mlops.config.interrupts import EXIT_INTERRUPTED, exiting_with, mark_told

    mark_told()
    _say_interrupted(as_json, signum, done_so_far)
    logging.getLogger(__name__).info("interrupted", exc_info=err)
    # Not `typer.Exit`: no `except Exception` may take it.
    raise SystemExit(exiting_with(EXIT_INTERRUPTED))


def _say_interrupted(as_json: bool, signum: int, done_so_far: Callable[[], str] | None) -> None:
    import signal

    try:
        done = done_so_far() if done_so_far else ""
    except Exception:  # what was done is a courtesy: the interruption is told regardless
        done = ""
    done = done or "what it completed stays; run it again to finish"
    message = f"interrupted ({signal.Signals(signum).name}): {done}"
    typer.echo(message, err=True)
    if as_json:
        typer.echo(json.dumps({"error": message, "interrupted": True}))
    sys.stdout.flush()
    sys.stderr.flush()


def _fail(as_json: bool, message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    if as_json:
        typer.echo(json.dumps({"error": message}))
    raise typer.Exit(code)


def _platform_failure(err: Exception) -> str:
    """What a platform failure says: a service that did not answer, wherever in the chain
    (a flow run's failure raised from MLflow's, MLflow's from a refused connection), names
    itself and its URL in one sentence, never in a library's words; any other failure says
    what it is."""
    try:
        from mlops.config.settings import get_settings
        from mlops.stores.services import unreachable_in

        try:
            settings: Settings | None = get_settings()
        except Exception:  # settings themselves broken: only the chain's own words are left
            settings = None
        outage = unreachable_in(err, settings)
    except Exception:  # reading the failure must never hide it
        outage = None
    if outage is not None:
        return str(outage)
    return str(err) if isinstance(err, RuntimeError) and str(err) else f"{err!r}"


def _log_failure(err: Exception) -> str:
    """Write the traceback to the log file; return where it is, for the message."""
    try:
        from mlops.config.runtime import PrivateFileHandler, log_path
        from mlops.config.settings import get_settings

        path = log_path(get_settings())
        handler = PrivateFileHandler(path, encoding="utf-8")
    except Exception:  # settings themselves broken: the message alone has to do
        return ""
    logger = logging.getLogger("entrypoints.cli.failure")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.error("platform failure", exc_info=err)
    finally:
        logger.removeHandler(handler)
        handler.close()
    return f" (full log: {path})"


def progress_bar(total: int, label: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A progress bar on stderr: a function to report how many are done, and one to stop."""
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(console=Console(stderr=True), transient=True)
    progress.start()
    bar = progress.add_task(label, total=total)
    return (lambda done: progress.update(bar, completed=done)), progress.stop


def parse_time(text: str, option: str) -> datetime:
    """An ISO date or time; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise UserError(f"{option} {text!r} is not an ISO date or time") from err
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_reason(text: str) -> str:
    if not text.strip():
        raise UserError("--reason must say why")
    return text.strip()


def parse_entity_row(args: list[str], use_case: UseCase) -> dict[str, Any]:
    """Entity keys from `--key-name VALUE` pairs, typed as the request schema types them (a
    string key such as "00042" stays a string)."""
    keys = use_case.entity_keys
    fields = use_case.request_model.model_fields
    allowed = {f"--{k.replace('_', '-')}": k for k in keys}
    usage = " ".join(f"{flag} VALUE" for flag in allowed)
    if len(args) % 2 or not args:
        raise UserError(f"expected {usage}")
    row: dict[str, Any] = {}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag not in allowed:
            raise UserError(f"unknown option {flag}; expected {usage}")
        is_int = fields[allowed[flag]].annotation is int
        row[allowed[flag]] = int(value) if is_int and value.lstrip("-").isdigit() else value
    if missing := [k for k in keys if k not in row]:
        raise UserError(f"missing {', '.join(missing)}; expected {usage}")
    return row
