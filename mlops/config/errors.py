"""The one error convention of the platform.

`UserError` is for what the user can fix: bad input (exit 2) or data a gate rejected (exit 3,
`Rejected`). Its message is all the user sees. Any other exception is a platform failure: the
entry point prints one paragraph, exits 1 and leaves the traceback in the log file.
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
