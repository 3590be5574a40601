"""The platform's own row rules and the manifest's checks against the clock, the rows and the
ledger, as plain functions over small frames (no GX, no Prefect)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingestion.ingest_steps import check_close, exclude_older_than_allowed, refuse_reused_id
from ingestion.ledger import content_hash
from ingestion.row_rules import (
    copies_of_duplicates,
    naive_timestamp_columns,
    naive_timestamps_problem,
    row_reasons,
)
from ingestion.table_validation import REASON_COLUMN, TableValidation
from mlops.config.settings import Settings
from mlops.contracts.batches import LandedBatch
from mlops.contracts.usecase import MAX_INT_KEY, load_use_case
from mlops.stores.offline_store import OfflineStore
from tests.support.session import PINNED_USE_CASE

CLOSED = datetime(2026, 1, 2, tzinfo=UTC)


def test_infinities_and_ids_beyond_the_service_range_are_row_failures() -> None:
    frame = pd.DataFrame(
        {
            "score": [0.5, np.inf, -np.inf, np.nan],
            "user_id": [1, MAX_INT_KEY + 1, MAX_INT_KEY, -MAX_INT_KEY - 1],
            "count": [2**62, 1, 1, 1],  # not an id: any integer goes
        }
    )
    assert row_reasons(frame, {"user_id"}) == {
        1: ["score:finite", "user_id:in_key_range"],
        2: ["score:finite"],
        3: ["user_id:in_key_range"],
    }
    nullable = pd.DataFrame({"user_id": pd.array([None, 2**60], dtype="Int64")})
    assert row_reasons(nullable, {"user_id"}) == {1: ["user_id:in_key_range"]}


def test_of_a_duplicated_id_only_the_copies_fail() -> None:
    frame = pd.DataFrame({"id": [7, 3, 7, 7, 3]})
    assert copies_of_duplicates(frame, "id", [0, 1, 2, 3, 4]) == [2, 3, 4]


def test_naive_timestamps_are_named_with_what_to_fix() -> None:
    frame = pd.DataFrame(
        {
            "naive": pd.to_datetime(["2026-01-01"]),
            "aware": pd.to_datetime(["2026-01-01"], utc=True),
        }
    )
    assert naive_timestamp_columns(frame) == ["naive"]
    assert naive_timestamps_problem("naive").startswith(
        "column naive has timestamps without a time zone: write them as UTC, "
        "e.g. 2026-01-01T00:00:00Z"
    )


def _batch(tmp_path: Path, closed_at: datetime = CLOSED, shift: int = 0) -> LandedBatch:
    use_case = load_use_case(PINNED_USE_CASE)
    times = pd.to_datetime(["2025-06-01T00:00:00", "2026-01-01T12:00:00"], utc=True)
    events = pd.DataFrame({"impression_id": [1 + shift, 2], "event_timestamp": times})
    tables = {
        t.name: events if t.name == use_case.event_table else events[:0] for t in use_case.tables
    }
    return LandedBatch("b1", tmp_path / "landing" / "b1", closed_at, tables)


def _results(batch: LandedBatch) -> dict[str, TableValidation]:
    return {
        name: TableValidation(name, frame, frame[:0].assign(**{REASON_COLUMN: ""}))
        for name, frame in batch.tables.items()
    }


def test_events_older_than_the_card_allows_are_quarantined_with_their_reason(tmp_path) -> None:
    use_case = load_use_case(PINNED_USE_CASE)
    batch = _batch(tmp_path)
    max_age = use_case.card.gates.validation.max_event_age_days
    assert timedelta(days=max_age) < CLOSED - datetime(2025, 6, 1, tzinfo=UTC)

    events = exclude_older_than_allowed(batch, _results(batch), use_case)[use_case.event_table]

    assert list(events.clean["impression_id"]) == [2]
    assert list(events.quarantined["impression_id"]) == [1]
    assert list(events.quarantined[REASON_COLUMN]) == ["event_timestamp:within_max_event_age"]


def test_a_close_past_the_clock_and_its_allowance_is_refused(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    allowed = datetime.now(UTC) + timedelta(minutes=settings.max_close_ahead_minutes - 1)
    assert check_close(_batch(tmp_path, closed_at=allowed), settings) is None

    refused = check_close(_batch(tmp_path, closed_at=datetime(2999, 1, 1, tzinfo=UTC)), settings)

    assert refused is not None and not refused.passed
    assert "2999-01-01T00:00:00+00:00" in refused.reason
    assert "MLOPS_MAX_CLOSE_AHEAD_MINUTES" in refused.reason


def test_a_committed_id_with_other_content_is_refused_naming_both_sources(tmp_path) -> None:
    store = OfflineStore(tmp_path / "offline")
    committed = _batch(tmp_path)
    record = {"closed_at": CLOSED.isoformat(), "source": "/landing/day-one"}
    store.commit("b1", {**record, "landed": content_hash(committed.tables)})

    assert refuse_reused_id(committed, _results(committed), store) is None  # the same again
    other = _batch(tmp_path, shift=100)
    refused = refuse_reused_id(other, _results(other), store)

    assert refused is not None and not refused.passed
    assert "/landing/day-one" in refused.reason and str(other.path) in refused.reason
    assert refuse_reused_id(_batch(tmp_path / "new"), {}, OfflineStore(tmp_path / "x")) is None
    # Other content in the committed batch's own folder: a corrected day, it replaces the batch.
    store.update(["b1"], source=str(other.path))
    assert refuse_reused_id(other, _results(other), store) is None


@pytest.mark.parametrize("same", [True, False])
def test_a_ledger_record_without_the_landed_hash_compares_the_stored_content(
    tmp_path, same: bool
) -> None:
    """A record from before `landed` was written: the clean tables' hash, as stored."""
    from ingestion.ledger import stored_form

    store = OfflineStore(tmp_path / "offline")
    committed = _batch(tmp_path)
    stored = {n: stored_form(frame) for n, frame in committed.tables.items()}
    store.commit("b1", {"closed_at": CLOSED.isoformat(), "content": content_hash(stored)})
    incoming = committed if same else _batch(tmp_path, shift=100)

    assert (refuse_reused_id(incoming, _results(incoming), store) is None) is same
