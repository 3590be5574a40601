"""`setup()`: what every entry point does first (the CLI, the service, a flow run on a worker,
`flow.serve`). It validates the settings, creates the state folders, exports the environment
the libraries read on import, routes logs (one line per record on the console, everything with
tracebacks in MLOPS_HOME/logs/), makes the processes it starts die with it, and spares Feast's
import its runtime type checks. Safe to call twice."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import IO, Any

from pydantic import ValidationError

from mlops.config.errors import UserError
from mlops.config.settings import PLATFORM_LOGGERS, Settings, get_settings

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
    children_die_with_this_process()
    skip_feast_runtime_type_checks()
    return settings


def skip_feast_runtime_type_checks() -> None:
    """Feast wraps its classes in typeguard's `@typechecked`, which recompiles each method when
    Feast is imported: 3.3 of the 4.7 s of CPU an import of Feast took here, paid again by every
    CLI command, flow run and service worker. typeguard skips it under `python -O` (its checks
    are "not meant to be run in production"); this skips it without also turning asserts off.
    Only typeguard's argument-type checks go: what Feast is given is built from the validated
    contract, and Feast still validates its objects when they are applied. No effect once Feast
    is imported."""
    if "feast" in sys.modules:
        return
    try:
        import typeguard
    except ImportError:  # Feast requires it: without it there is no Feast to spare
        return

    def unchecked(target: Any = None, **_options: Any) -> Any:
        return unchecked if target is None else target

    typeguard.typechecked = unchecked


def children_die_with_this_process() -> None:
    """Every child process started from now on (the ephemeral Prefect server, `bentoml serve`)
    gets SIGTERM when this process ends, even killed with SIGKILL, so no orphan keeps serving
    or holding a port. Linux only (`prctl(PR_SET_PDEATHSIG)`); elsewhere children are stopped
    on a clean exit only. Each is also put in a process group of its own: a terminal's Ctrl-C
    reaches this process alone, which stops them in order (the flow reports its end to the
    Prefect server before that server stops: `mlops.config.interrupts`). A child started in a
    session of its own (`start_new_session=True`: `mlops up`'s services) is meant to outlive
    this process and is left alone."""
    if sys.platform == "linux":
        subprocess.Popen = _DyingWithParent  # type: ignore[misc]


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _DyingWithParent(subprocess.Popen):
    def __init__(self, *args: Any, preexec_fn: Callable[[], Any] | None = None, **kw: Any) -> None:
        if kw.get("start_new_session"):
            super().__init__(*args, preexec_fn=preexec_fn, **kw)  # type: ignore[call-overload]
            return
        if preexec_fn is None and kw.get("process_group") is None:
            # Its own group, in this session. Not when the caller has its own `preexec_fn`: it
            # may start a session (circus does, for `bentoml serve`'s workers), which a group
            # leader cannot.
            kw["process_group"] = 0

        def before_exec() -> None:
            _die_with_parent()
            if preexec_fn is not None:
                preexec_fn()

        super().__init__(*args, preexec_fn=before_exec, **kw)  # type: ignore[call-overload]


def log_path(settings: Settings) -> str:
    return str(settings.logs_dir / LOG_FILE)


def open_private(path: str | os.PathLike[str], mode: str = "ab") -> IO[Any]:
    """`open(path, mode)` for a file only its owner may read (0600, an existing file too): logs
    and service records may hold what a library printed about its connection."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    descriptor = os.open(path, flags, 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, mode, encoding=None if "b" in mode else "utf-8")


class PrivateFileHandler(logging.FileHandler):
    """A `logging.FileHandler` whose file only its owner may read (see `open_private`)."""

    def _open(self) -> Any:
        return open_private(self.baseFilename, "a")


def _route_logs(settings: Settings) -> None:
    """Everything to the log file; to the terminal, the platform's warnings (its info too, and
    every library's, with `verbose`). Python warnings become log records: dependencies'
    deprecation chatter says nothing a user can act on, so it stays in the file."""
    to_file = PrivateFileHandler(log_path(settings), encoding="utf-8")
    to_file.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(WithoutTraceback(_FORMAT, "%H:%M:%S"))
    to_stderr.setLevel(logging.NOTSET if settings.verbose else logging.WARNING)
    if not settings.verbose:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.captureWarnings(True)
    _replace_handlers(logging.getLogger(), [to_file, *([to_stderr] if settings.verbose else [])])
    logging.getLogger().setLevel(logging.INFO if settings.verbose else logging.WARNING)
    for name in PLATFORM_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(settings.log_level)
        _replace_handlers(logger, [to_stderr, to_file])
        logger.propagate = False


def _replace_handlers(logger: logging.Logger, handlers: list[logging.Handler]) -> None:
    """A second `setup()` replaces, never doubles, the handlers."""
    for old in logger.handlers:
        if old not in handlers:
            old.close()
    logger.handlers = handlers


class WithoutTraceback(logging.Formatter):
    """The console's format: the message without its traceback, which the log file keeps."""

    def format(self, record: logging.LogRecord) -> str:
        kept = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = kept
