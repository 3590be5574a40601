"""`setup()`: what every entry point does first (the CLI, the service, a flow run on a worker,
`flow.serve`). It validates the settings, creates the state folders, exports the environment
the libraries read on import, and routes logs: one line per record on the console, everything
with tracebacks in MLOPS_HOME/logs/. Safe to call twice."""

from __future__ import annotations

import logging
import sys
import warnings

from pydantic import ValidationError

from mlops.errors import UserError
from mlops.settings import PLATFORM_LOGGERS, Settings, get_settings

LOG_FILE = "mlops.log"
_FORMAT = "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"


def setup() -> Settings:
    """The process's settings, applied; bad settings are a `UserError` naming what is wrong."""
    try:
        settings = get_settings().apply()
    except ValidationError as err:
        problems = "; ".join(
            f"MLOPS_{'__'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in err.errors()
        )
        raise UserError(f"invalid settings: {problems}") from None
    _route_logs(settings)
    return settings


def log_path(settings: Settings) -> str:
    return str(settings.logs_dir / LOG_FILE)


def _route_logs(settings: Settings) -> None:
    # Dependencies' deprecation chatter says nothing a user can act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    to_file = logging.FileHandler(log_path(settings), encoding="utf-8")
    to_file.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(WithoutTraceback(_FORMAT, "%H:%M:%S"))
    for name in PLATFORM_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(settings.log_level)
        for old in logger.handlers:  # a second call replaces, never doubles, the handlers
            old.close()
        logger.handlers = [to_stderr, to_file]
        logger.propagate = False


class WithoutTraceback(logging.Formatter):
    """The console's format: the message without its traceback, which the log file keeps."""

    def format(self, record: logging.LogRecord) -> str:
        kept = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = kept
