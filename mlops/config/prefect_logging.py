"""Pieces of `prefect_logging.yml`, Prefect's logging config for this platform. Prefect builds
them when it configures logging, so this module may import Prefect (nothing else imports it)."""

from __future__ import annotations

import logging
from typing import Any

from prefect.logging.formatters import PrefectFormatter

from mlops.config.runtime import PrivateFileHandler, WithoutTraceback
from mlops.config.settings import get_settings


class OneLineFormatter(WithoutTraceback, PrefectFormatter):
    """Prefect's console format, without tracebacks."""


def file_handler() -> logging.Handler:
    """Everything Prefect logs, tracebacks included, in MLOPS_HOME/logs/prefect.log."""
    logs = get_settings().logs_dir
    logs.mkdir(parents=True, exist_ok=True)
    return PrivateFileHandler(logs / "prefect.log", encoding="utf-8")


def api_handler() -> logging.Handler:
    """Prefect's handler that ships flow and task run logs to the API, whose failures are
    logged instead of written to the terminal. Prefect's log shipper writes a failed batch
    ("--- Error logging to API ---" and the client's error) straight to sys.stderr, once a
    batch for as long as the API is away: a library's words on the terminal, nothing in the
    file. Here it is a warning on Prefect's logger: in logs/prefect.log with its traceback, on
    the terminal only with `--verbose`. The CLI names the Prefect API when the run fails."""
    from prefect.logging.handlers import APILogHandler, APILogWorker

    if not getattr(APILogWorker._handle_batch, "logs_failures", False):

        async def handle_batch(self: APILogWorker, items: list[dict[str, Any]]) -> None:
            try:
                await self._client.create_logs(items)
            except Exception:
                logging.getLogger("prefect.logging").warning(
                    "could not send %d log records to the Prefect API", len(items), exc_info=True
                )

        handle_batch.logs_failures = True  # type: ignore[attr-defined]
        APILogWorker._handle_batch = handle_batch  # type: ignore[method-assign]
    return APILogHandler()
