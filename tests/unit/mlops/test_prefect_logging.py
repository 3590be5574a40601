"""Prefect's logging as the platform configures it: a log shipment the Prefect API did not take
is a warning in the log files, not "--- Error logging to API ---" on the terminal."""

from __future__ import annotations

import logging
import socket

from mlops.config.prefect_logging import api_handler


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_logs_the_api_did_not_take_are_logged_not_printed(capfd) -> None:
    from prefect.logging.handlers import APILogHandler, APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert isinstance(api_handler(), APILogHandler)  # what prefect_logging.yml builds
    kept = Kept()
    logger = logging.getLogger("prefect.logging")
    logger.addHandler(kept)
    try:
        with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}):
            record = {"name": "flows", "level": 20, "message": "a flow run's line"}
            APILogWorker.instance().send({**record, "timestamp": "2026-01-01T00:00:00Z"})
            APILogWorker.drain_all()
    finally:
        logger.removeHandler(kept)

    _, err = capfd.readouterr()
    assert "Error logging to API" not in err and "ConnectError" not in err
    (warning,) = [r for r in kept.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == "could not send 1 log records to the Prefect API"
    assert warning.exc_info is not None  # the client's error, for the log file
