"""The use cases' commands: `mlops use-cases` lists them and where the active one's data comes
from; `mlops init-use-case` drafts a new one from a sample of its table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from entrypoints.cli.conventions import JsonOption, answer, start

# mlops.contracts.tasks.TaskKind, spelled out: importing it would load numpy into every command
# (tests/unit/entrypoints/test_cli_parsing.py keeps the two equal).
TaskChoice = Literal["binary", "multiclass", "regression"]


def use_cases(as_json: JsonOption = False) -> None:
    """The use cases MLOPS_USE_CASE may name; for the active one, where its data comes from."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = start()
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

    answer(as_json, work)


def init_use_case(
    name: Annotated[str, typer.Argument(help="The new use case's name (a Python identifier).")],
    source: Annotated[
        Path,
        typer.Option("--from", help="A sample of the table: CSV or parquet, one row an event."),
    ],
    entity: Annotated[str, typer.Option(help="The column naming what a prediction is about.")],
    timestamp: Annotated[str, typer.Option(help="The column saying when a row became known.")],
    label: Annotated[
        str,
        typer.Option(
            help="The outcome: Yes/No, True/False or 1/0 (binary), 3-20 values (multiclass), "
            "numbers (regression)."
        ),
    ],
    id_column: Annotated[
        str | None,
        typer.Option("--id", help="The column identifying a row (default: the entity column)."),
    ] = None,
    task: Annotated[
        TaskChoice | None,
        typer.Option(help="What the label is, instead of inferring it from its values."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the use case's files if it exists.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a new use case from a sample of its table: contract, requirements card and
    validation suite, inferred and explained, ready to review; then `mlops land` it."""

    def work() -> tuple[dict[str, Any], str, int]:
        from entrypoints.scaffold import write_use_case
        from entrypoints.scaffold_inference import Roles
        from mlops.config.runtime import setup  # not start(): the use case does not exist yet
        from mlops.config.settings import DATA_ROOT

        settings = setup()
        root = settings.use_cases_root.resolve()
        roles = Roles(entity=entity, timestamp=timestamp, label=label, id=id_column, task=task)
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
            f"use case '{name}' written from {source.name} ({p.rows:,} rows over {p.days} day(s)):",
            *(f"  {f}" for f in done.files),
            f"inferred: table {inferred['table']}, id {inferred['id']}, entity "
            f"{inferred['entity']['name']} ({inferred['entity']['column']}, "
            f"{inferred['entity']['type']}), {p.task} label {label}: "
            f"{done.inference.notes[label]}",
            f"  features: {features}",
            *(f"  ignored: {column}: {why}" for column, why in inferred["ignored"].items()),
            f"  slices: {', '.join(inferred['slices']) or 'none'}; windows (days): "
            + ", ".join(f"{k.removesuffix('_days')} {v}" for k, v in inferred["windows"].items()),
            *(f"warning: {w}" for w in done.warnings),
            "next:",
            *(f"  {i}. {step}" for i, step in enumerate(steps, 1)),
        ]
        return result, "\n".join(lines), 0

    answer(as_json, work)
