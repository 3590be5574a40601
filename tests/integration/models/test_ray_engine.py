"""The Ray engine (`MLOPS_ENGINE=ray`) against the local one, on one local Ray of 2 CPUs with a
capped object store for the whole module: the same stores after an ingest, the same training
set, and a model as good as the local one, judged by the same gate."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mlops.config.settings import Settings, get_settings
from tests.support.session import PINNED_USE_CASE, START, settings_at
from tests.support.stores import copy_home

pytestmark = pytest.mark.integration

RAY_CAPS = {"MLOPS_RAY_NUM_CPUS": "2", "MLOPS_RAY_OBJECT_STORE_MB": "256"}


@pytest.fixture(scope="module")
def ray_session(prefect_api_url: str) -> Iterator[None]:
    """One local Ray for the module (~6 s to start), shut down after it."""
    import ray

    from mlops.compute.ray_engine import start_ray

    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in RAY_CAPS.items():
            monkeypatch.setenv(name, value)
        start_ray(Settings(engine="ray"))
    yield
    ray.shutdown()


def on_engine(home: Path, engine: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLOPS_ENGINE", engine)
    return settings_at(home, monkeypatch)


def test_ingest_on_ray_gives_the_same_offline_store_quarantine_and_online_store(
    tmp_path, ray_session, monkeypatch
):
    from flows.ingest import ingest
    from mlops.contracts.usecase import load_use_case

    # Days long past, as `mlops run` replays them: Feast's own Ray engine would materialize
    # only rows within each view's TTL of the wall clock (see mlops.compute.feast_ray).
    generator = load_use_case(PINNED_USE_CASE).generator
    assert generator is not None
    landed = generator.generate(
        tmp_path / "landing",
        start=START,
        days=2,
        events_per_day=1_500,
        seed=5,
        scenario="data-incident",
        drift_day=1,  # the second day has rows to quarantine
    )
    homes = {}
    for engine in ("local", "ray"):
        settings = on_engine(tmp_path / engine, engine, monkeypatch)
        shutil.copytree(tmp_path / "landing", settings.landing_dir, dirs_exist_ok=True)
        result = ingest([settings.landing_dir / d.name for d in landed])
        assert [b.status for b in result.batches] == ["ingested"] * 2
        homes[engine] = settings
    get_settings.cache_clear()

    local, ray = homes["local"], homes["ray"]
    assert sum(len(f) for f in quarantined(local).values()) > 0
    assert_same_frames(offline_store(local), offline_store(ray))
    assert_same_frames(quarantined(local), quarantined(ray))
    assert_same_frames(online_store(local), online_store(ray))


def test_point_in_time_join_on_ray_matches_feasts_row_for_row(week_settings, use_case, ray_session):
    from mlops.stores.feature_store import open_store
    from mlops.stores.offline_store import OfflineStore
    from models import dataset, distributed

    offline = OfflineStore(week_settings.offline_dir)
    windows = dataset.TimeWindows.ending_at(
        dataset.training_end(offline, None), use_case.card.training
    )
    events = dataset.labelled_events(offline, use_case, windows)
    expected = dataset.build_training_set(
        open_store(week_settings, use_case), events, use_case, windows
    )

    ray_settings = week_settings.model_copy(update={"engine": "ray"})
    joined = distributed.build_training_set(
        open_store(ray_settings, use_case), offline, use_case, windows, baseline_rows=10**9
    )

    assert joined.rows == {w: len(expected.window(w)) for w in distributed.WINDOWS}
    assert joined.batch_ids == expected.lineage(use_case)["batch_ids"]
    columns = [*expected.frame.columns]
    actual = joined.held.frame[columns]
    assert len(actual) == len(expected.frame)
    for column in columns:
        pd.testing.assert_series_equal(
            actual[column], expected.frame[column], check_dtype=False, obj=column
        )


def test_a_model_trained_on_ray_is_as_good_and_gets_the_same_verdict(
    trained_week, tmp_path, monkeypatch, ray_session, prefect_api_url
):
    """The champion, v1, is the local engine's model on this data (one trial, as here): the gate
    scores both on the same test window, and rejects a retrain that is the same model."""
    from flows.train import train

    home = copy_home(trained_week.home, tmp_path / "mlops-home")
    on_engine(home, "ray", monkeypatch)
    on_ray = train(search_trials=1)
    get_settings.cache_clear()

    local = trained_week.report
    assert (local.engine, on_ray.engine, on_ray.params["engine"]) == ("local", "ray", "ray")
    assert abs(on_ray.metrics["nce"] - local.metrics["nce"]) <= 0.01
    assert on_ray.champion_metrics == pytest.approx(on_ray.metrics, abs=1e-6)
    # What the local engine's identical retrain gets (tests/integration/flows/test_train_flow.py).
    assert on_ray.decision == "rejected"
    assert "< margin 0.002" in on_ray.reason
    assert on_ray.lineage["rows"] == local.lineage["rows"]


def test_batch_prediction_on_ray_scores_as_the_local_engine(
    trained_week, tmp_path, monkeypatch, ray_session, prefect_api_url
):
    """The predict flow on the Ray engine (the point-in-time join on Ray, through Feast's Ray
    offline store) scores the newest landed day as the local engine does, to 1e-6."""
    from flows.predict import predict

    home = copy_home(trained_week.home, tmp_path / "mlops-home")
    on_engine(home, "local", monkeypatch)
    local = predict()
    expected = pd.read_parquet(local.scores_path).drop(columns="scored_at")
    shutil.rmtree(Path(local.scores_path).parent)  # the same run again, on the other engine
    on_engine(home, "ray", monkeypatch)
    on_ray = predict()
    get_settings.cache_clear()

    assert on_ray.written and on_ray.run_id == local.run_id
    assert (on_ray.scored, on_ray.rejected) == (local.scored, local.rejected) and local.scored
    actual = pd.read_parquet(on_ray.scores_path).drop(columns="scored_at")
    pd.testing.assert_frame_equal(actual, expected, check_exact=False, atol=1e-6)


# What the stores hold, as frames to compare.
def offline_store(settings: Settings) -> dict[str, pd.DataFrame]:
    root = settings.offline_dir
    return {
        str(path.relative_to(root)): pd.read_parquet(path)
        for path in sorted(root.glob("*/*/batch_id=*/part.parquet"))
    }


def quarantined(settings: Settings) -> dict[str, pd.DataFrame]:
    root = settings.quarantine_dir
    return {
        str(path.relative_to(root)): pd.read_parquet(path).drop(columns="_quarantined_at")
        for path in sorted(root.glob("*/*.parquet"))
    }


def online_store(settings: Settings) -> dict[str, pd.DataFrame]:
    import sqlite3

    connection = sqlite3.connect(settings.feast_dir / "online.db")
    try:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {
            table: pd.read_sql(
                f'SELECT entity_key, feature_name, value, event_ts FROM "{table}" ORDER BY 1, 2',
                connection,
            )
            for (table,) in tables.fetchall()
        }
    finally:
        connection.close()


def assert_same_frames(expected: dict[str, pd.DataFrame], actual: dict[str, pd.DataFrame]) -> None:
    assert expected
    assert sorted(actual) == sorted(expected)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(actual[name], frame, obj=name)
