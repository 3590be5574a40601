"""The lifecycle run's own checks, before it touches anything."""

from __future__ import annotations

import pytest

from mlops.errors import UserError
from mlops.lifecycle import Scenario, land, run_lifecycle
from mlops.settings import Settings
from usecases.adclick import USE_CASE


def test_a_run_shorter_than_the_bootstrap_is_refused(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(UserError, match="must exceed the 7 days"):
        run_lifecycle(settings, USE_CASE, Scenario(days=5))
    assert not settings.home.exists()  # refused before any state was written


def test_a_batch_lands_whole_and_only_once(tmp_path) -> None:
    batch = tmp_path / "future" / "2026-01-08"
    batch.mkdir(parents=True)
    (batch / "impressions.parquet").write_bytes(b"x")
    landing = tmp_path / "landing"
    landing.mkdir()
    landed = land(batch, landing)
    assert landed == landing / "2026-01-08" and (landed / "impressions.parquet").exists()
    (landed / "impressions.parquet").write_bytes(b"already ingested")
    assert land(batch, landing) == landed
    assert (landed / "impressions.parquet").read_bytes() == b"already ingested"
    assert [p.name for p in landing.iterdir()] == ["2026-01-08"]  # no partial copy left
