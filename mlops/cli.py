"""`mlops`: the command line. Every command takes `--json` and then prints exactly one JSON
object on stdout; logs and progress go to stderr.

Exit codes: 0 done, 2 bad input (arguments, settings, unreadable data), 3 data rejected by a gate.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from mlops.landing import BatchUnreadable
from mlops.settings import Settings, get_settings

app = typer.Typer(
    name="mlops",
    help="An MLOps platform template: the ML lifecycle as Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
log = logging.getLogger("mlops.cli")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
EXIT_BAD_INPUT = 2
EXIT_REJECTED = 3


class CommandError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@app.callback()
def main() -> None:
    """Validate the settings once, before any command runs."""


def _start() -> Settings:
    try:
        settings = get_settings().apply()
    except ValidationError as err:
        raise CommandError(f"invalid settings: {err}") from err
    _configure_logging(settings)
    return settings


def _configure_logging(settings: Settings) -> None:
    import warnings

    # Third-party deprecation chatter (ibis under Feast) says nothing a user can act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    formatter = logging.Formatter(
        "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s", "%H:%M:%S"
    )
    to_stderr = logging.StreamHandler(sys.stderr)
    to_file = logging.FileHandler(settings.logs_dir / "mlops.log")
    for handler in (to_stderr, to_file):
        handler.setFormatter(formatter)
    for name in ("mlops", "usecases"):
        logger = logging.getLogger(name)
        logger.setLevel(settings.log_level)
        logger.handlers = [to_stderr, to_file]
        logger.propagate = False


def _run(as_json: bool, work: Callable[[], tuple[dict[str, Any], str, int]]) -> None:
    """Run a command: print its result (JSON or text) and exit with its code; errors become
    one paragraph on stderr (and `{"error": ...}` on stdout with --json), never a traceback."""
    try:
        result, text, code = work()
    except (CommandError, BatchUnreadable, ValueError) as err:
        code = getattr(err, "exit_code", EXIT_BAD_INPUT)
        typer.echo(f"error: {err}", err=True)
        if as_json:
            typer.echo(json.dumps({"error": str(err)}))
        raise typer.Exit(code) from None
    typer.echo(json.dumps(result, default=str) if as_json else text)
    raise typer.Exit(code)


def _progress(total: int, label: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(console=Console(stderr=True), transient=True)
    progress.start()
    bar = progress.add_task(label, total=total)
    return (lambda done: progress.update(bar, completed=done)), progress.stop


@app.command()
def generate(
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD (UTC).")] = "2026-01-01",
    days: Annotated[int, typer.Option(min=1)] = 7,
    events_per_day: Annotated[int, typer.Option(min=1)] = 20_000,
    seed: int = 7,
    scenario: Annotated[
        str, typer.Option(help="baseline | covariate-shift | concept-drift | data-incident")
    ] = "baseline",
    drift_day: Annotated[
        int | None, typer.Option(min=0, help="Day index the scenario starts.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Landing zone (default: MLOPS_HOME/landing).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Generate synthetic data: one batch per day in the landing zone."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings = _start()
        use_case = _use_case(settings)
        try:
            first_day = date.fromisoformat(start)
        except ValueError as err:
            raise CommandError(f"--start {start!r} is not a date (YYYY-MM-DD)") from err
        update, stop = _progress(days, "generating")
        try:
            batches = use_case.generate(
                out or settings.landing_dir,
                start=first_day,
                days=days,
                events_per_day=events_per_day,
                seed=seed,
                scenario=scenario,
                drift_day=drift_day,
                progress=update,
            )
        finally:
            stop()
        result = {
            "batches": [str(b) for b in batches],
            "events": days * events_per_day,
            "scenario": scenario,
            "seed": seed,
        }
        return result, "\n".join(result["batches"]), 0

    _run(as_json, work)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Batch directories, or a landing zone.")],
    as_json: JsonOption = False,
) -> None:
    """Validate batches, quarantine bad rows, store features offline and online."""

    def work() -> tuple[dict[str, Any], str, int]:
        _start()
        from mlops.landing import expand_batch_paths

        batch_dirs = expand_batch_paths(paths)
        reports = _ingest(batch_dirs)
        result = (
            reports[0]
            if len(reports) == 1
            else {"batches": reports, "offline_rows": reports[-1]["offline_rows"]}
        )
        rejected = [r for r in reports if r["status"] == "rejected"]
        for r in rejected:
            typer.echo(f"error: batch {r['batch_id']} was rejected: {r['reason']}", err=True)
        text = "\n".join(
            f"{r['batch_id']}: {r['status']}, {r['valid']} of {r['rows']} rows clean, "
            f"{r['quarantined']} quarantined; offline store holds {r['offline_rows']}"
            for r in reports
        )
        return result, text, EXIT_REJECTED if rejected else 0

    _run(as_json, work)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def features(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Online features for one entity row, e.g. `mlops features --user-id 3 --ad-id 7`.

    The options are the use case's entity join keys, written with dashes.
    """

    def work() -> tuple[dict[str, Any], str, int]:
        settings = _start()
        use_case = _use_case(settings)
        row = _entity_row(ctx.args, use_case.entity_keys)
        from mlops.feature_store import online_features, open_store

        values = online_features(open_store(settings, use_case), use_case, row)
        text = "\n".join(f"{k}: {v}" for k, v in values.items())
        return values, text, 0

    _run(as_json, work)


@app.command()
def run(
    days: Annotated[int, typer.Option(min=1)] = 7,
    events_per_day: Annotated[int, typer.Option(min=1)] = 20_000,
    seed: int = 7,
    scenario: Annotated[str, typer.Option(help="See `mlops generate`.")] = "data-incident",
    drift_day: Annotated[int, typer.Option(min=0)] = 4,
    as_json: JsonOption = False,
) -> None:
    """The main job: generate a week of traffic (by default with a broken feature pipeline on
    day 5, so the quarantine has work to do) and ingest it through the data path."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings = _start()
        use_case = _use_case(settings)
        batches = use_case.generate(
            settings.landing_dir,
            start=date(2026, 1, 1),
            days=days,
            events_per_day=events_per_day,
            seed=seed,
            scenario=scenario,
            drift_day=drift_day,
        )
        reports = _ingest(batches)
        lines = [
            f"{r['batch_id']}: {r['status']}, {r['valid']}/{r['rows']} clean, "
            f"{r['quarantined']} quarantined {r['quarantined_by_reason'] or ''}; "
            f"offline store {r['offline_rows']} rows"
            for r in reports
        ]
        lines.append(f"State, quarantine and data docs are under {settings.home}")
        code = EXIT_REJECTED if any(r["status"] == "rejected" for r in reports) else 0
        return {"batches": reports, "home": str(settings.home)}, "\n".join(lines), code

    _run(as_json, work)


@app.command("settings")
def show_settings(as_json: JsonOption = False) -> None:
    """Print the settings in force (after MLOPS_* variables)."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings = _start()
        values = json.loads(settings.model_dump_json())
        return values, "\n".join(f"{k}: {v}" for k, v in values.items()), 0

    _run(as_json, work)


def _ingest(batch_dirs: list[Path]) -> list[dict[str, Any]]:
    """Run the ingest flow; its per-batch reports, whether or not a batch was rejected."""
    from flows.ingest import ingest as ingest_flow

    state = ingest_flow(batch_dirs, return_state=True)
    reports = state.result(raise_on_failure=False)
    if not isinstance(reports, list):  # the flow itself crashed, not a batch rejected
        raise CommandError(f"ingest flow {state.name}: {state.message}", exit_code=1)
    return reports


def _use_case(settings: Settings) -> Any:
    from mlops.usecase import load_use_case

    return load_use_case(settings.use_case)


def _entity_row(args: list[str], keys: tuple[str, ...]) -> dict[str, Any]:
    allowed = {f"--{k.replace('_', '-')}": k for k in keys}
    usage = " ".join(f"{flag} VALUE" for flag in allowed)
    if len(args) % 2 or not args:
        raise CommandError(f"expected {usage}")
    row: dict[str, Any] = {}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag not in allowed:
            raise CommandError(f"unknown option {flag}; expected {usage}")
        row[allowed[flag]] = int(value) if value.lstrip("-").isdigit() else value
    if missing := [k for k in keys if k not in row]:
        raise CommandError(f"missing {', '.join(missing)}; expected {usage}")
    return row
