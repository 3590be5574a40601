"""The serving commands: `mlops serve` the champion over HTTP, `mlops package` a version as a
bento."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from entrypoints.cli.conventions import JsonOption, answer, start
from mlops.config.errors import UserError


def serve(
    port: Annotated[int | None, typer.Option(help="Default: MLOPS_SERVING__PORT (3000).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Serve the @champion over HTTP (BentoML) until Ctrl+C; follows new champions."""
    import signal

    started: list[Any] = []

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = start()
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

    answer(as_json, work, exit_when_done=False)
    service = started[0]
    # SIGTERM stops it as cleanly as Ctrl+C: the service flushes its prediction log.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = service.process.wait()
    except KeyboardInterrupt:
        code = service.stop()
    raise typer.Exit(0 if code in (0, -signal.SIGTERM) else 1)


def package(
    version: Annotated[str | None, typer.Argument(help="Default: the @champion.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Import a model version into BentoML's model store and build a bento with it."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = start()
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
