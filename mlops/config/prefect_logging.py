"""Pieces of `prefect_logging.yml`, Prefect's logging config for this platform. Prefect builds
them when it configures logging, so this module may import Prefect (nothing else imports it)."""

from __future__ import annotations

import logging

from prefect.logging.formatters import PrefectFormatter

from mlops.config.runtime import WithoutTraceback
from mlops.config.settings import get_settings


class OneLineFormatter(WithoutTraceback, PrefectFormatter):
    """Prefect's console format, without tracebacks."""


def file_handler() -> logging.Handler:
    """Everything Prefect logs, tracebacks included, in MLOPS_HOME/logs/prefect.log."""
    logs = get_settings().logs_dir
    logs.mkdir(parents=True, exist_ok=True)
    return logging.FileHandler(logs / "prefect.log", encoding="utf-8")
