"""The lifecycle flows' results as they cross processes on the server profile: stored as JSON
by a real flow run, and read back (as `run_flow` reads a worker's) equal to the local result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.results import RESULT_SERIALIZER, read_exception, read_result
from mlops.config.errors import UserError

pytestmark = pytest.mark.integration


def test_a_training_report_reads_back_equal(trained_week):
    from flows.train import train

    report = trained_week.report
    assert read_result(RESULT_SERIALIZER.dumps(report), train.fn) == report


def test_a_failed_flow_run_stores_its_exception_as_json(champion_settings):
    from flows.dispatch import _stored_key
    from flows.promote import promote

    failed = promote(version="1", reason="a drill", by="tests", return_state=True)
    assert failed.is_failed()  # v1 is already @champion
    key = _stored_key(failed)
    assert key is not None
    stored = Path(key).read_bytes()
    assert json.loads(stored)["__exc_type__"].endswith("UserError")  # JSON: nothing to unpickle
    raised = failed.result(raise_on_failure=False)
    back = read_exception(stored, promote.fn)
    assert isinstance(raised, UserError)
    assert type(back) is type(raised) and str(back) == str(raised)
