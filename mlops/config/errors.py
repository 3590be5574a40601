"""The one error convention of the platform.

`UserError` is for what the user can fix: bad input (exit 2) or data a gate rejected (exit 3,
`Rejected`). Its message is all the user sees. Any other exception is a platform failure: the
entry point prints one paragraph, exits 1 and leaves the traceback in the log file;
`ServiceUnreachable` is the one that says which service did not answer, and where.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_REJECTED = 3


class UserError(Exception):
    """Bad input: arguments, settings, files or state the user can fix."""

    exit_code = EXIT_BAD_INPUT


class Rejected(UserError):
    """Data a gate refused; the message says which gate and why."""

    exit_code = EXIT_REJECTED


class ServiceUnreachable(RuntimeError):
    """A service the platform asks before deciding (MLflow, the Prefect API, PostgreSQL, Redis)
    did not answer within its bounded retries. A platform failure (exit 1), never read as
    "nothing there": the message names the service and where it was asked."""

    def __init__(self, service: str, url: str, cause: str) -> None:
        super().__init__(f"{service} at {url} does not answer ({cause}): is it up? `mlops status`")
        self.service = service
        self.url = url
        self.cause = cause
