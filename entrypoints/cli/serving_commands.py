"""The serving commands: `mlops serve` the champion over HTTP, `mlops predict` a table of rows
in one batch, `mlops package` a version as a bento."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from entrypoints.cli.conventions import JsonOption, answer, start
from mlops.config.errors import UserError

# `bentoml serve` gets this long to stop cleanly after SIGTERM, then is killed: a stop must
# leave time within the 10 s a stop signal is promised to take.
SERVICE_STOP_SECONDS = 5.0
# The watchdog's bound on `serve`'s way out: the service's clean stop, then its children's
# (1 s), with room to spare. A bound shorter than the stop cut a loaded service's last log
# flush short and exited 130 on a SIGTERM.
SERVE_GRACE_SECONDS = 8.0


def serve(
    port: Annotated[int | None, typer.Option(help="Default: MLOPS_SERVING__PORT (3000).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Serve the @champion over HTTP (BentoML) until Ctrl+C; follows new champions."""
    started: list[Any] = []

    def work() -> tuple[dict[str, Any], str, int]:
        # The champion is read from MLflow, features from the online store.
        settings, use_case = start(needs=("mlflow", "redis"))
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

    from mlops.config.interrupts import Interrupted, interruptible

    # One watch from start to stop: no moment between "ready" and serving a signal misses.
    with interruptible(lambda signum: None, grace_seconds=SERVE_GRACE_SECONDS):
        try:
            answer(as_json, work, exit_when_done=False)  # interrupted while starting: exits 130
        except Interrupted:  # while the answer was printed
            if not started:
                raise
        raise typer.Exit(_serve_until_stopped(started[0]))


def _serve_until_stopped(service: Any) -> int:
    """Wait while the service serves. SIGINT or SIGTERM to this process (not only to its
    process group) stops the service cleanly (SIGTERM to `bentoml serve`: it flushes its
    prediction log), killed if it hangs, with anything else this process started. The exit
    code: 0 for SIGTERM (how a supervisor stops a service), 130 for Ctrl-C (interrupted), 1 if
    the service died by itself."""
    import signal

    from mlops.config.interrupts import (
        EXIT_INTERRUPTED,
        Interrupted,
        exiting_with,
        mark_told,
        received_signal,
        stop_children,
    )

    try:
        # A signal that came while the answer was printed is served here, at once.
        code = None if received_signal() else service.process.wait()
    except Interrupted:
        code = None
    if code is not None:
        return 0 if code in (0, -signal.SIGTERM) else 1
    mark_told()
    stopped_by = received_signal() or signal.SIGINT
    # Known now, so a watchdog that has to end the stop exits with it too.
    code = exiting_with(0 if stopped_by == signal.SIGTERM else EXIT_INTERRUPTED)
    service.stop(timeout=SERVICE_STOP_SECONDS)
    stop_children()
    typer.echo(f"stopped ({signal.Signals(stopped_by).name})", err=True)
    return code


def predict(
    source: Annotated[
        str | None,
        typer.Argument(
            help="A Parquet or CSV file of entity rows with their times, or a landed batch "
            "folder. Default: the newest batch in the landing zone."
        ),
    ] = None,
    model: Annotated[
        str, typer.Option(help="`champion`, `@<alias>` or a version number.")
    ] = "champion",
    explain: Annotated[
        bool,
        typer.Option(
            help="Also write each row's contributions (XGBoost's TreeSHAP): every model "
            "input's share of the row's margin, as JSON in the `contributions` column."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Batch prediction: score a table of rows with one model version.

    Each row on its entities' features as of its time, the way the service scores a request; a
    row the request model refuses is kept with the reason. Scores go to
    MLOPS_HOME/batch_predictions; the same rows and version again write nothing."""

    def work() -> tuple[dict[str, Any], str, int]:
        # The model from MLflow, features from the offline store, the run on Prefect.
        settings, use_case = start(needs=("prefect", "mlflow", "postgres"))
        from pathlib import Path

        from mlops.contracts.batches import newest_batch
        from mlops.stores.registry import ModelRegistry

        # What can be refused without a flow is refused first: no such model, nothing to score.
        version = ModelRegistry(settings.tracking_uri, use_case.model_name).resolve(model)
        path = Path(source) if source else newest_batch(settings.landing_dir)
        if not path.exists():
            raise UserError(f"{path}: no such file or batch folder to score")
        from flows.predict import predict as predict_flow

        result = predict_flow(source=str(path), model=version, explain=explain)
        done = "scored" if result.written else "already scored (nothing written)"
        lines = [
            f"v{result.model_version}: {result.scored} of {result.rows} rows {done}: "
            f"{result.scores_path}"
        ]
        if result.rejected:
            lines.append(f"{result.rejected} refused, with their reasons: {result.rejected_path}")
        return result.to_dict(), "\n".join(lines), 0

    answer(as_json, work)


def package(
    version: Annotated[str | None, typer.Argument(help="Default: the @champion.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Import a model version into BentoML's model store and build a bento with it."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = start(needs=("mlflow",))
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

    answer(as_json, work)
