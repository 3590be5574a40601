"""`mlops`: the command line. Every command takes `--json` and then prints exactly one JSON
object on stdout; logs and progress go to stderr.

Exit codes (`mlops.config.errors`): 0 done, 1 the platform failed (one paragraph, the traceback in
MLOPS_HOME/logs/mlops.log), 2 bad input (arguments, settings, unreadable data, missing state),
3 data rejected by a gate.

Heavy libraries are imported inside the commands that use them: `mlops --help` and argument
errors answer without importing pandas, Prefect or MLflow.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.config.errors import EXIT_FAILURE, EXIT_REJECTED, UserError

if TYPE_CHECKING:
    from mlops.config.settings import Settings
    from mlops.contracts.usecase import UseCase
    from models import TrainReport

app = typer.Typer(
    name="mlops",
    help="An MLOps platform template: the ML lifecycle as Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
log = logging.getLogger("entrypoints.cli")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Work = Callable[[], tuple[dict[str, Any], str, int]]


@app.callback()
def main(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Libraries' logs on the terminal too (always in logs/)."
        ),
    ] = False,
) -> None:
    """Settings are validated by each command, before it does anything."""
    if verbose:  # read by the settings, which every command creates after this
        os.environ["MLOPS_VERBOSE"] = "true"


def _start() -> tuple[Settings, UseCase]:
    """The process set up (settings validated and applied, logs routed) and the active use
    case loaded: a wrong setting or use-case name stops here, before any flow."""
    from mlops.config.runtime import setup
    from mlops.contracts.usecase import active_use_case

    settings = setup()
    return settings, active_use_case(settings)


def _run(as_json: bool, work: Work, exit_when_done: bool = True) -> None:
    """Run a command: print its result (JSON or text) and exit with its code. A `UserError`
    becomes its message and exit code; anything else is a platform failure: one paragraph
    and exit 1, the traceback in the log file. No traceback reaches the terminal.
    With `exit_when_done=False` a command that succeeded goes on (`serve` keeps serving)."""
    try:
        result, text, code = work()
    except UserError as err:
        _fail(as_json, str(err), err.exit_code)
    except Exception as err:
        where = _log_failure(err)
        what = str(err) if isinstance(err, RuntimeError) and str(err) else f"{err!r}"
        _fail(as_json, f"the platform failed: {what}{where}", EXIT_FAILURE)
    typer.echo(json.dumps(result, default=str) if as_json else text)
    if exit_when_done or code:
        raise typer.Exit(code)
    sys.stdout.flush()


def _fail(as_json: bool, message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    if as_json:
        typer.echo(json.dumps({"error": message}))
    raise typer.Exit(code)


def _log_failure(err: Exception) -> str:
    """Write the traceback to the log file; return where it is, for the message."""
    try:
        from mlops.config.runtime import log_path
        from mlops.config.settings import get_settings

        path = log_path(get_settings())
        handler = logging.FileHandler(path, encoding="utf-8")
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
    events_per_day: Annotated[
        int | None, typer.Option(min=1, help="Default: the use case's simulator's.")
    ] = None,
    seed: int = 7,
    scenario: Annotated[
        str | None,
        typer.Option(help="One of the simulator's (`mlops use-cases`); default: its plain world."),
    ] = None,
    drift_day: Annotated[
        int | None, typer.Option(min=0, help="Day index the scenario starts.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Landing zone (default: MLOPS_HOME/landing).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Generate synthetic data with the use case's simulator: one batch per day.

    Into the landing zone, for `mlops ingest`. Real data lands with `mlops land`."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = _start()
        from entrypoints.lifecycle import scenario_name, simulator
        from mlops.contracts.batches import batch_rows

        generator = simulator(use_case)
        chosen = scenario_name(generator, scenario, generator.scenarios[0])
        try:
            first_day = date.fromisoformat(start)
        except ValueError as err:
            raise UserError(f"--start {start!r} is not a date (YYYY-MM-DD)") from err
        update, stop = _progress(days, "generating")
        try:
            batches = generator.generate(
                out or settings.landing_dir,
                start=first_day,
                days=days,
                events_per_day=events_per_day or generator.events_per_day,
                seed=seed,
                scenario=chosen,
                drift_day=drift_day,
                progress=update,
            )
        finally:
            stop()
        landed = [str(b) for b in batches]
        result = {
            "batches": landed,
            # What was written, not what was asked: a simulator may write more or fewer.
            "events": sum(batch_rows(b, [use_case.events])[use_case.event_table] for b in batches),
            "scenario": chosen,
            "seed": seed,
        }
        return result, "\n".join(landed), 0

    _run(as_json, work)


class BatchBy(StrEnum):
    """How `mlops land` splits rows into batches (`mlops.contracts.batches.BATCH_BY`)."""

    day = "day"


@app.command()
def land(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="CSV or parquet files, one table each, named after it (<table>.csv); "
            "every table of the use case, in one command."
        ),
    ],
    batch_by: Annotated[
        BatchBy, typer.Option(help="Rows go to the batch of their time's UTC day.")
    ] = BatchBy.day,
    out: Annotated[
        Path | None, typer.Option(help="Landing zone (default: MLOPS_HOME/landing).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Land real data: CSV or parquet files, one per table, as one batch per UTC day.

    Into the landing zone, for `mlops ingest` (or `mlops run`, for a use case without a
    simulator). Landing the same files again changes nothing; a day already landed with other
    content is refused."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = _start()
        from mlops.contracts.batches import batch_rows, land_files

        batches = land_files(use_case, files, out or settings.landing_dir, batch_by.value)
        rows = {b.name: batch_rows(b, use_case.tables) for b in batches}
        result = {"batches": [str(b) for b in batches], "rows": rows}
        text = "\n".join(
            f"{b}  " + ", ".join(f"{n:,} {table}" for table, n in rows[b.name].items())
            for b in batches
        )
        return result, text, 0

    _run(as_json, work)


@app.command("use-cases")
def use_cases(as_json: JsonOption = False) -> None:
    """The use cases MLOPS_USE_CASE may name; for the active one, where its data comes from."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = _start()
        from entrypoints.lifecycle import story_source
        from mlops.contracts.usecase import available_use_cases

        names = available_use_cases(settings.use_cases_root)
        source = story_source(use_case)
        generator = use_case.generator
        result: dict[str, Any] = {
            "use_cases": names,
            "active": settings.use_case,
            "data_source": source,
            "tables": [t.name for t in use_case.tables],
            "scenarios": list(generator.scenarios) if generator else [],
            "story": generator.story if generator else None,
            "data_files": [str(p) for p in use_case.data_files],
        }
        if generator:
            offers = (
                f"a simulator (`mlops generate`); scenarios {', '.join(generator.scenarios)}; "
                f"`mlops run` tells {generator.story}"
            )
        elif use_case.data_files:
            offers = f"data files ({', '.join(p.name for p in use_case.data_files)})"
        else:
            offers = "no simulator nor data files: `mlops land FILE...`, then `mlops run`"
        lines = [f"{n}{' (active)' if n == settings.use_case else ''}" for n in names]
        lines += [
            "",
            f"{settings.use_case}: tables {', '.join(result['tables'])}",
            f"  data: {offers}",
        ]
        return result, "\n".join(lines), 0

    _run(as_json, work)


@app.command("init-use-case")
def init_use_case(
    name: Annotated[str, typer.Argument(help="The new use case's name (a Python identifier).")],
    source: Annotated[
        Path,
        typer.Option("--from", help="A sample of the table: CSV or parquet, one row an event."),
    ],
    entity: Annotated[str, typer.Option(help="The column naming what a prediction is about.")],
    timestamp: Annotated[str, typer.Option(help="The column saying when a row became known.")],
    label: Annotated[str, typer.Option(help="The binary outcome: Yes/No, True/False or 1/0.")],
    id_column: Annotated[
        str | None,
        typer.Option("--id", help="The column identifying a row (default: the entity column)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the use case's files if it exists.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a new use case from a sample of its table: contract, requirements card and
    validation suite, inferred and explained, ready to review; then `mlops land` it."""

    def work() -> tuple[dict[str, Any], str, int]:
        from entrypoints.scaffold import Roles, write_use_case
        from mlops.config.runtime import setup  # not _start: the use case does not exist yet
        from mlops.config.settings import DATA_ROOT

        settings = setup()
        root = settings.use_cases_root.resolve()
        roles = Roles(entity=entity, timestamp=timestamp, label=label, id=id_column)
        done = write_use_case(name, source, root, roles, force=force)
        inferred = done.summary()
        env = f"MLOPS_USE_CASE={name}"
        if root != DATA_ROOT.resolve():
            env += f" MLOPS_USE_CASES_ROOT={root}"
        suite = next(f for f in done.files if f.suffix == ".json")
        steps = [
            f"review {root / 'usecases' / name}/contract.yaml (types, ignored columns), "
            f"card.yaml (the TODOs, every threshold) and {suite}",
            f"{env} mlops land {source}, then mlops ingest, train, serve and monitor",
        ]
        result = {
            "use_case": name,
            "files": [str(f) for f in done.files],
            "inferred": inferred,
            "warnings": done.warnings,
            "next": steps,
        }
        p = done.inference.profile
        kinds = list(inferred["features"].values())
        counts = ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))
        shown = [f"{column} ({kind})" for column, kind in inferred["features"].items()]
        more = f" and {len(shown) - 8} more" if len(shown) > 8 else ""
        features = f"{len(kinds)} ({counts}): {', '.join(shown[:8])}{more}"
        lines = [
            f"use case '{name}' written from {source.name} ({p.rows:,} rows over {p.days} "
            f"day(s), {p.positive_rate:.1%} positive):",
            *(f"  {f}" for f in done.files),
            f"inferred: table {inferred['table']}, id {inferred['id']}, entity "
            f"{inferred['entity']['name']} ({inferred['entity']['column']}, "
            f"{inferred['entity']['type']}), label {label}: {inferred['label']['positive']} -> 1, "
            f"{inferred['label']['negative']} -> 0",
            f"  features: {features}",
            *(f"  ignored: {column}: {why}" for column, why in inferred["ignored"].items()),
            f"  slices: {', '.join(inferred['slices']) or 'none'}; windows (days): "
            + ", ".join(f"{k.removesuffix('_days')} {v}" for k, v in inferred["windows"].items()),
            *(f"warning: {w}" for w in done.warnings),
            "next:",
            *(f"  {i}. {step}" for i, step in enumerate(steps, 1)),
        ]
        return result, "\n".join(lines), 0

    _run(as_json, work)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Batch directories, or a landing zone.")],
    as_json: JsonOption = False,
) -> None:
    """Validate batches, quarantine bad rows, store features offline and online."""

    def work() -> tuple[dict[str, Any], str, int]:
        _start()
        from mlops.contracts.batches import expand_batch_paths

        batch_dirs = expand_batch_paths(paths)  # unreadable paths: said before the flow runs
        from flows.ingest import ingest_batches

        ingested = ingest_batches(batch_dirs)
        reports = ingested.batches
        result = reports[0].to_dict() if len(reports) == 1 else ingested.to_dict()
        for r in ingested.rejected:
            typer.echo(f"error: batch {r.batch_id} was rejected: {r.reason}", err=True)
        text = "\n".join(
            f"{r.batch_id}: {r.status}, {r.valid} of {r.rows} rows clean, "
            f"{r.quarantined} quarantined; offline store holds {r.offline_rows}"
            for r in reports
        )
        return result, text, EXIT_REJECTED if ingested.rejected else 0

    _run(as_json, work)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def features(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Online features for one entity row, e.g. `mlops features --user-id 3 --ad-id 7`.

    The options are the use case's entity join keys, written with dashes.
    """

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = _start()
        row = _entity_row(ctx.args, use_case)
        from mlops.stores.feature_store import online_features, open_store

        values = online_features(open_store(settings, use_case), use_case, row)
        text = "\n".join(f"{k}: {v}" for k, v in values.items())
        return values, text, 0

    _run(as_json, work)


@app.command()
def run(
    days: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Days in the story, the first week included (default: 14 simulated, or "
            "every landed day).",
        ),
    ] = None,
    events_per_day: Annotated[
        int | None, typer.Option(min=100, help="Simulated only; default: the simulator's.")
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help="Simulated only: one of the simulator's (`mlops use-cases`)."),
    ] = None,
    drift_day: Annotated[
        int, typer.Option(min=0, help="Simulated only: day index the scenario starts.")
    ] = 10,
    incident_day: Annotated[
        int, typer.Option(min=-1, help="Simulated only: day index of a data incident (-1: none).")
    ] = 8,
    seed: int = 7,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Delete MLOPS_HOME first (landed days a replay tells stay): replay from scratch.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The main job, the closed loop: bootstrap a champion on the first week, then each day
    send traffic through the real service, ingest the day, monitor, and retrain and promote
    when the gate says so. A simulated story has by default a data incident on day 8 and the
    simulator's story scenario from day 10; a use case without a simulator replays its data
    files, or the days `mlops land` put in the landing zone."""

    def work() -> tuple[dict[str, Any], str, int]:
        from entrypoints.lifecycle import (
            LANDING_ZONE,
            Scenario,
            check_scenario,
            closing_summary,
            reset_home,
            run_lifecycle,
            story_line,
            story_source,
        )

        settings, use_case = _start()
        chosen = Scenario(
            days=days,
            events_per_day=events_per_day,
            scenario=scenario,
            drift_day=drift_day,
            incident_day=incident_day if incident_day >= 0 else None,
            seed=seed,
        )
        check_scenario(use_case, chosen)
        if reset:  # a replay of the landing zone keeps what `mlops land` put there
            reset_home(settings, keep_landing=story_source(use_case) == LANDING_ZONE)
            settings, use_case = _start()  # the state folders again, and a fresh log file

        def tell(day: Any) -> None:
            if not as_json:
                typer.echo(story_line(day))

        def progress(step: str) -> None:
            if not as_json:
                typer.echo(f"{step} ...")

        result = run_lifecycle(settings, use_case, chosen, on_day=tell, on_progress=progress)
        logs = sorted(str(p) for p in settings.logs_dir.glob("*.log"))
        return result.to_dict(), closing_summary(settings, result, logs), 0

    _run(as_json, work)


def _train_summary(report: TrainReport) -> str:
    baselines, oracle = report.baseline_metrics, report.oracle_metrics or {}
    compared = [
        f"logistic {baselines['logistic']['nce']:.4f}",
        f"prior {baselines['prior']['nce']:.4f}",
    ]
    if oracle.get("nce") is not None:
        compared.append(f"oracle {oracle['nce']:.4f}")
    lines = [
        f"{report.model_name} v{report.version}: {report.decision}"
        + (f" (trained on {report.engine})" if report.engine != "local" else ""),
        f"  {report.verdict}",  # the reason; its warnings get a line each
        *(f"  warning: {warning}" for warning in report.warnings),
        f"  test nce {report.metrics['nce']:.4f} ({', '.join(compared)})",
    ]
    if noise := report.noise:

        def number(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        floors = [
            f"{metric} {f['floor']}: {number(f['value'])} in "
            f"[{number(f['low'])}, {number(f['high'])}]"
            for metric, f in noise["floors"].items()
        ]
        lines.append(
            f"  floors, {noise['confidence'] * 100:g}% bootstrap interval on {noise['rows']} "
            f"test rows: {'; '.join(floors)}"
        )
    lines.append(f"  MLflow run: {report.run_url}")
    return "\n".join(lines)


@app.command()
def train(
    as_of: Annotated[
        str | None,
        typer.Option(help="End of the test window, ISO time (default: the newest batch's close)."),
    ] = None,
    exclude_feature: Annotated[
        list[str] | None, typer.Option(help="Train without this model input (repeatable).")
    ] = None,
    seed: int = 0,
    search_trials: Annotated[
        int | None, typer.Option(min=1, help="Override the card's number of search trials.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a challenger, score it and the champion on the same fresh window, and promote it
    only if it passes the gate. A rejection is a normal outcome: exit 0 either way."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = _start()
        from mlops.stores.offline_store import OfflineStore
        from models import training_end

        end = _timestamp(as_of, "--as-of") if as_of else None
        training_end(OfflineStore(settings.offline_dir), end)  # nothing ingested: said now
        from flows.train import train as train_flow

        report = train_flow(
            as_of=end, exclude_features=exclude_feature, seed=seed, search_trials=search_trials
        )
        return report.to_dict(), _train_summary(report), 0

    _run(as_json, work)


@app.command()
def monitor(
    as_of: Annotated[
        str | None,
        typer.Option(help="End of the window, ISO time (default: the newest batch's close)."),
    ] = None,
    retrain: Annotated[bool, typer.Option(help="Start retraining when the gate says so.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Judge the last window of traffic against the champion (drift, data quality,
    performance on the labels that arrived): none, retrain, or alert, with the reason."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = _start()
        from mlops.stores.offline_store import OfflineStore
        from mlops.stores.registry import ModelRegistry
        from monitoring import window_bounds

        # What can be refused without a flow is refused first: no champion, no data.
        ModelRegistry(settings.tracking_uri, use_case.model_name).champion()
        end = _timestamp(as_of, "--as-of") if as_of else None
        window_bounds(OfflineStore(settings.offline_dir), use_case.card.gates.monitoring, end)
        from flows.monitor import monitor as monitor_flow

        monitored = monitor_flow(as_of=end, retrain=retrain)
        judged = monitored.judged
        lines = [f"{judged.day} {judged.decision}: {judged.reason}", *judged.reports]
        if monitored.retraining is not None:
            lines += _train_summary(monitored.retraining).splitlines()
        elif monitored.retraining_note:
            lines.append(f"retraining: {monitored.retraining_note}")
        return monitored.to_dict(), "\n".join(lines), 0

    _run(as_json, work)


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="The model version to make @champion.")],
    reason: Annotated[str, typer.Option(help="Why; recorded on the version.")],
    as_json: JsonOption = False,
) -> None:
    """Human override: make VERSION the champion (the former one becomes @previous)."""

    def work() -> tuple[dict[str, Any], str, int]:
        why = _reason(reason)
        settings, use_case = _start()
        from mlops.stores.registry import ModelRegistry, human

        ModelRegistry(settings.tracking_uri, use_case.model_name).version(version)  # exists?
        from flows.promote import promote as promote_flow

        done = promote_flow(version=version, reason=why, by=human())
        text = (
            f"{done.model_name} @champion is v{done.champion_version} "
            f"(@previous v{done.previous_version})"
        )
        return done.to_dict(), text, 0

    _run(as_json, work)


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why; recorded on both versions.")],
    as_json: JsonOption = False,
) -> None:
    """Human override: give @champion back to @previous."""

    def work() -> tuple[dict[str, Any], str, int]:
        why = _reason(reason)
        settings, use_case = _start()
        from mlops.stores.registry import PREVIOUS, ModelRegistry, human

        registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
        if registry.alias(PREVIOUS) is None:
            raise UserError(f"nothing to roll back to: model '{registry.name}' has no @{PREVIOUS}")
        from flows.promote import rollback as rollback_flow

        done = rollback_flow(reason=why, by=human())
        text = (
            f"{done.model_name} @champion is v{done.champion_version} again "
            f"(v{done.rolled_back_version} rolled back)"
        )
        return done.to_dict(), text, 0

    _run(as_json, work)


@app.command()
def models(as_json: JsonOption = False) -> None:
    """The registered versions: aliases, decisions and reasons, newest first."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = _start()
        from mlops.stores.registry import DECIDED_BY, REASON, ModelRegistry

        registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
        versions = [
            {
                "version": v.version,
                "aliases": list(v.aliases),
                "decision": v.decision,
                "by": v.tags.get(DECIDED_BY),
                "reason": v.tags.get(REASON),
                "run_id": v.run_id,
            }
            for v in registry.versions()
        ]
        text = "\n".join(
            f"v{v['version']} {'@' + ',@'.join(v['aliases']) if v['aliases'] else ''} "
            f"{v['decision']} by {v['by']}: {v['reason']}"
            for v in versions
        )
        return {"model_name": registry.name, "versions": versions}, text or "no versions yet", 0

    _run(as_json, work)


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Default: MLOPS_SERVING__PORT (3000).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Serve the @champion over HTTP (BentoML) until Ctrl+C; follows new champions."""
    import signal

    started: list[Any] = []

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = _start()
        from mlops.stores.registry import ModelRegistry
        from serving import start_service

        version = settings.serving.model_version
        if version is None:
            version = ModelRegistry(settings.tracking_uri, use_case.model_name).champion()
        url = f"http://{settings.serving.host}:{port or settings.serving.port}"
        if not as_json:
            typer.echo(
                f"starting the service for {use_case.model_name} v{version} on {url} "
                f"(up to {settings.serving.startup_timeout_seconds:g} s) ...",
                err=True,
            )
        service = start_service(settings, port=port)
        started.append(service)
        info = {
            "url": service.url,
            "model_version": service.model_version(),
            "pid": service.process.pid,
            "log": str(service.log_path),
        }
        text = (
            f"serving {use_case.model_name} v{info['model_version']} on {service.url} "
            f"(schema {service.url}/openapi.json, metrics {service.url}/metrics, "
            f"log {service.log_path}); Ctrl+C stops it"
        )
        return info, text, 0

    _run(as_json, work, exit_when_done=False)
    service = started[0]
    # SIGTERM stops it as cleanly as Ctrl+C: the service flushes its prediction log.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = service.process.wait()
    except KeyboardInterrupt:
        code = service.stop()
    raise typer.Exit(0 if code in (0, -signal.SIGTERM) else 1)


@app.command()
def package(
    version: Annotated[str | None, typer.Argument(help="Default: the @champion.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Import a model version into BentoML's model store and build a bento with it."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = _start()
        from mlops.stores.registry import CHAMPION, ModelRegistry
        from serving import build_bento, import_model

        chosen = version or ModelRegistry(settings.tracking_uri, use_case.model_name).alias(
            CHAMPION
        )
        if chosen is None:
            raise UserError(f"model '{use_case.model_name}' has no @{CHAMPION} to package")
        model_tag = import_model(settings, use_case, chosen)
        bento_tag = build_bento(model_tag)
        result = {"model_version": chosen, "model": model_tag, "bento": bento_tag}
        text = (
            f"v{chosen} is BentoML model {model_tag}, packaged in bento {bento_tag}\n"
            f"containerize it where Docker runs: bentoml containerize {bento_tag}"
        )
        return result, text, 0

    _run(as_json, work)


@app.command()
def deploy(as_json: JsonOption = False) -> None:
    """Register the deployments of prefect.yaml (ingest, monitor, train) and their `process`
    work pool with a running Prefect server (PREFECT_API_URL); then start a worker with
    `prefect worker start --pool mlops-process`."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = _start()
        from flows.deployments import register

        deployed = register(settings)
        text = "\n".join(
            [f"registered {d['name']} ({d['schedule'] or 'no schedule'})" for d in deployed]
            + [f"start a worker: prefect worker start --pool {deployed[0]['work_pool']}"]
        )
        return {"deployments": deployed}, text, 0

    _run(as_json, work)


@app.command()
def up(as_json: JsonOption = False) -> None:
    """Server profile: start the Prefect server, the deployments' worker, the MLflow server
    and the prediction service as local processes (PostgreSQL and Redis must be running);
    wait until each is healthy. Idempotent: what already runs is left alone."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = _start()
        from entrypoints.supervisor import up

        found = up(settings, on_progress=lambda line: typer.echo(line, err=True))
        return found, _status_text(settings, found), _status_code(found)

    _run(as_json, work)


@app.command()
def down(as_json: JsonOption = False) -> None:
    """Stop the services `mlops up` started (PostgreSQL, Redis and all state stay)."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = _start()
        from entrypoints.supervisor import down

        found = down(settings, on_progress=lambda line: typer.echo(line, err=True))
        return found, _status_text(settings, found), 0

    _run(as_json, work)


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Each service's health, address and pid; exit 1 unless all are healthy."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = _start()
        from entrypoints.supervisor import status

        found = status(settings)
        return found, _status_text(settings, found), _status_code(found)

    _run(as_json, work)


def _status_text(settings: Settings, found: dict[str, Any]) -> str:
    lines = []
    for name, s in found["services"].items():
        health = "healthy" if s["healthy"] else "DOWN"
        pid = f"pid {s['pid']}" if s["pid"] else ""
        detail = f"  ({s['detail']})" if s["detail"] and not s["healthy"] else ""
        lines.append(f"{name:<9} {health:<8} {s['url'] or '':<40} {pid}{detail}")
    lines.append(f"pids: {settings.home / 'services'}; logs: {settings.logs_dir}")
    return "\n".join(lines)


def _status_code(found: dict[str, Any]) -> int:
    return 0 if all(s["healthy"] for s in found["services"].values()) else EXIT_FAILURE


@app.command("settings")
def show_settings(as_json: JsonOption = False) -> None:
    """Print the settings in force (after MLOPS_* variables)."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = _start()  # an unknown use case is refused like any bad setting
        values = json.loads(settings.model_dump_json())
        return values, "\n".join(f"{k}: {v}" for k, v in values.items()), 0

    _run(as_json, work)


def _timestamp(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise UserError(f"{option} {text!r} is not an ISO date or time") from err
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _reason(text: str) -> str:
    if not text.strip():
        raise UserError("--reason must say why")
    return text.strip()


def _entity_row(args: list[str], use_case: UseCase) -> dict[str, Any]:
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
