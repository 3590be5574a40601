"""The data path's commands: `mlops generate` and `mlops land` put batches in the landing zone,
`mlops ingest` validates and stores them, `mlops features` reads the online store."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from entrypoints.cli.conventions import JsonOption, answer, parse_entity_row, progress_bar, start
from mlops.config.errors import EXIT_REJECTED, UserError


def generate(
    start_day: Annotated[
        str, typer.Option("--start", help="First day, YYYY-MM-DD (UTC).")
    ] = "2026-01-01",
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
        settings, use_case = start()
        from entrypoints.lifecycle import require_simulator, scenario_name
        from mlops.contracts.batches import batch_rows

        generator = require_simulator(use_case)
        chosen = scenario_name(generator, scenario, generator.scenarios[0])
        try:
            first_day = date.fromisoformat(start_day)
        except ValueError as err:
            raise UserError(f"--start {start_day!r} is not a date (YYYY-MM-DD)") from err
        update, stop = progress_bar(days, "generating")
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

    answer(as_json, work)


class BatchBy(StrEnum):
    """How `mlops land` splits rows into batches (`ingestion.BATCH_BY`)."""

    day = "day"


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
        settings, use_case = start()
        from ingestion import land_files
        from mlops.contracts.batches import batch_rows

        batches = land_files(use_case, files, out or settings.landing_dir, batch_by.value)
        rows = {b.name: batch_rows(b, use_case.tables) for b in batches}
        result = {"batches": [str(b) for b in batches], "rows": rows}
        text = "\n".join(
            f"{b}  " + ", ".join(f"{n:,} {table}" for table, n in rows[b.name].items())
            for b in batches
        )
        return result, text, 0

    answer(as_json, work)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Batch directories, or a landing zone.")],
    as_json: JsonOption = False,
) -> None:
    """Validate batches, quarantine bad rows, store features offline and online."""
    asked: list[Any] = []  # the settings and batches, once known: for an interruption

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = start(needs=("prefect", "postgres", "redis"))
        from mlops.contracts.batches import expand_batch_paths

        batch_dirs = expand_batch_paths(paths)  # unreadable paths: said before the flow runs
        asked.extend([settings, batch_dirs])
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

    def done_so_far() -> str:
        """The batches committed (a commit is whole or rolled forward by the next run)."""
        if not asked:
            return "no batch was ingested; run it again"
        from mlops.contracts.batches import batch_id_of
        from mlops.stores.offline_store import OfflineStore

        settings, batch_dirs = asked
        committed = {r["batch_id"] for r in OfflineStore(settings.offline_dir).committed_batches()}
        done = sum(batch_id_of(b) in committed for b in batch_dirs)
        return f"{done} of {len(batch_dirs)} batches committed; a rerun ingests the rest"

    answer(as_json, work, done_so_far=done_so_far)


# `mlops features` takes the use case's entity keys as options of their own names.
FEATURES_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def features(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Online features for one entity row, e.g. `mlops features --user-id 3 --ad-id 7`.

    The options are the use case's entity join keys, written with dashes.
    """

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = start(needs=("postgres", "redis"))
        row = parse_entity_row(ctx.args, use_case)
        from mlops.stores.feature_store import online_features, open_store

        values = online_features(open_store(settings, use_case), use_case, row)
        text = "\n".join(f"{k}: {v}" for k, v in values.items())
        return values, text, 0

    answer(as_json, work)
