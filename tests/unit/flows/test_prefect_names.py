"""Flow run names: each run is named by what it works on (batches, version), rendered from the
run's parameters as Prefect renders a flow's `flow_run_name` when the run starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.ingest import ingest, validate_batches
from flows.prefect_names import (
    ROLLBACK_RUN_NAME,
    batch_dirs_run_name,
    batches_run_name,
    promote_run_name,
    rollback_run_name,
)
from flows.promote import promote, rollback


def test_a_run_over_batches_is_named_by_its_first_and_last_batch() -> None:
    assert batches_run_name("ingest", ["2026-01-08"]) == "ingest-2026-01-08"
    days = [f"2026-01-0{d}" for d in range(1, 8)]
    assert batches_run_name("ingest", days) == "ingest-2026-01-01-to-2026-01-07"
    assert batches_run_name("ingest", []) == "ingest-no-batch"


@pytest.mark.parametrize(
    ("batch_dirs", "expected"),
    [
        (None, "ingest-pending"),  # as scheduled: renamed once the pending batches are known
        ([Path("/landing/2026-01-08")], "ingest-2026-01-08"),
        (["/landing/2026-01-08", "/landing/2026-01-09"], "ingest-2026-01-08-to-2026-01-09"),
        ([], "ingest-no-batch"),
    ],
)
def test_an_ingest_run_is_named_from_its_batch_dirs(batch_dirs, expected: str) -> None:
    assert batch_dirs_run_name("ingest")({"batch_dirs": batch_dirs}) == expected


def test_overrides_are_named_by_their_versions() -> None:
    assert promote_run_name({"version": "3", "reason": "r", "by": "me"}) == "promote-v3"
    assert rollback_run_name("3", "2") == "rollback-v3-to-v2"


def test_every_flow_names_its_runs_and_the_names_render_outside_a_run() -> None:
    """Outside a run Prefect's runtime has no parameters: an ingest is then named as
    scheduled; a rollback's name needs none."""
    for lifecycle_flow in (ingest, validate_batches, promote, rollback):
        assert lifecycle_flow.flow_run_name, lifecycle_flow.name
    assert callable(ingest.flow_run_name) and ingest.flow_run_name() == "ingest-pending"
    assert callable(validate_batches.flow_run_name)
    assert validate_batches.flow_run_name() == "validate-pending"
    assert rollback.flow_run_name == ROLLBACK_RUN_NAME == "rollback-champion"
