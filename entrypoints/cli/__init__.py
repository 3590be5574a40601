"""`mlops`: the command line. Every command takes `--json` and then prints exactly one JSON
object on stdout; logs and progress go to stderr.

Exit codes (`mlops.config.errors`): 0 done, 1 the platform failed (one paragraph, the traceback in
MLOPS_HOME/logs/mlops.log), 2 bad input (arguments, settings, unreadable data, missing state),
3 data rejected by a gate, 130 interrupted (Ctrl-C or SIGTERM; `mlops serve` exits 0 on SIGTERM).

Heavy libraries are imported inside the commands that use them: `mlops --help` and argument
errors answer without importing pandas, Prefect or MLflow.

The commands live by concern (the list below is `mlops --help`'s order); what they share, how a
command starts, answers and fails, is in `conventions`:

    data_commands       generate, land, ingest, features
    use_case_commands   use-cases, init-use-case
    run_command         run
    model_commands      train, monitor, promote, reject, rollback, models
    serving_commands    serve, predict, package
    stack_commands      deploy, up, down, status, settings
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from entrypoints.cli import (
    data_commands,
    model_commands,
    run_command,
    serving_commands,
    stack_commands,
    use_case_commands,
)

app = typer.Typer(
    name="mlops",
    help="An MLOps platform template: the ML lifecycle as Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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


app.command()(data_commands.generate)
app.command()(data_commands.land)
app.command("use-cases")(use_case_commands.use_cases)
app.command("init-use-case")(use_case_commands.init_use_case)
app.command()(data_commands.ingest)
app.command(context_settings=data_commands.FEATURES_CONTEXT)(data_commands.features)
app.command()(run_command.run)
app.command()(model_commands.train)
app.command()(model_commands.monitor)
app.command()(model_commands.promote)
app.command()(model_commands.reject)
app.command()(model_commands.rollback)
app.command()(model_commands.models)
app.command()(serving_commands.serve)
app.command()(serving_commands.predict)
app.command()(serving_commands.package)
app.command()(stack_commands.deploy)
app.command()(stack_commands.up)
app.command()(stack_commands.down)
app.command()(stack_commands.status)
app.command("settings")(stack_commands.show_settings)
