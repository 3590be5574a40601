"""Flow results stored as JSON and read back as the flow's declared types, executing nothing
a stored file names."""

from __future__ import annotations

import json
import pickle

import pytest

from flows.results import RESULT_SERIALIZER, UnreadableResult, read_exception, read_result
from ingestion.batch_reports import BatchesRejected, BatchReport, IngestResult
from mlops.config.errors import EXIT_REJECTED, ServiceUnreachable, UserError


def ingest_result() -> IngestResult:
    return IngestResult(
        [
            BatchReport("2026-03-01", "ingested", "all rows valid", rows=10, valid=10),
            BatchReport(
                "2026-03-02",
                "rejected",
                "too many rows quarantined",
                rows=10,
                quarantined=4,
                quarantined_by_reason={"price: out of range": 4},
                tables={"impressions": {"rows": 10, "valid": 6, "quarantined": 4}},
            ),
        ]
    )


def ingest(batch_dirs: list[str] | None = None) -> IngestResult:  # the flow's signature
    raise NotImplementedError


def test_a_result_is_stored_as_json_and_read_back_equal() -> None:
    from flows.promote import Override, promote

    override = Override("adclick", "promoted", "3", "2", "better on the new slice", "ops")
    stored = RESULT_SERIALIZER.dumps(override)
    assert json.loads(stored)["champion_version"] == "3"  # plain JSON, no type tag to follow
    assert read_result(stored, promote.fn) == override

    result = ingest_result()
    assert read_result(RESULT_SERIALIZER.dumps(result), ingest) == result


def test_a_platform_exception_comes_back_with_its_type_and_data() -> None:
    rejected = BatchesRejected(ingest_result())
    back = read_exception(RESULT_SERIALIZER.dumps(rejected), ingest)
    assert isinstance(back, BatchesRejected) and back.exit_code == EXIT_REJECTED
    assert str(back) == str(rejected) and back.result == rejected.result

    outage = ServiceUnreachable("MLflow", "http://127.0.0.1:5000", "connection refused")
    back = read_exception(RESULT_SERIALIZER.dumps(outage), ingest)
    assert isinstance(back, ServiceUnreachable) and str(back) == str(outage)
    assert (back.service, back.url, back.cause) == (
        "MLflow",
        "http://127.0.0.1:5000",
        "connection refused",
    )

    back = read_exception(RESULT_SERIALIZER.dumps(UserError("fix it")), ingest)
    assert type(back) is UserError and str(back) == "fix it"
    back = read_exception(RESULT_SERIALIZER.dumps(ValueError("bad")), ingest)
    assert type(back) is ValueError


def test_a_stored_file_cannot_make_the_reader_run_code(tmp_path) -> None:
    # A pickle that would run a command when unpickled: refused, never loaded.
    class Payload:
        def __reduce__(self):  # pragma: no cover - never called by the reader
            return (print, ("pwned",))

    with pytest.raises(UnreadableResult):
        read_result(pickle.dumps(Payload()), ingest)
    # Prefect's own record format naming pickle: not a result of the declared type.
    record = {"metadata": {"serializer": {"type": "pickle"}}, "result": "gAR9lC4="}
    with pytest.raises(UnreadableResult):
        read_result(json.dumps(record).encode(), ingest)
    # An exception type outside the platform is named, not imported.
    foreign = {"__exc_type__": "antigravity.Fly", "message": "up"}
    back = read_exception(json.dumps(foreign).encode(), ingest)
    assert type(back) is RuntimeError and "antigravity.Fly" in str(back)
    import sys

    assert "antigravity" not in sys.modules
