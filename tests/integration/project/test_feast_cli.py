"""Feast's own CLI agrees with the platform on the stores an ingest wrote (local profile; the
server profile's check is in tests/integration/serving/test_serving_server_profile.py).

Each `feast` command pays Feast's import (~8 s): three commands in all."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mlops.config.settings import Settings
from mlops.stores.feature_store import FEATURE_REPO
from serving.process import free_port
from tests.support.feast_cli import FEAST, assert_plans_no_change, feast, feast_environment
from tests.support.stores import offline_impressions
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_feast_plan_after_an_ingest_reports_no_change(ingested_week: Path) -> None:
    settings = Settings(home=ingested_week)
    registry = settings.feast_dir / "registry.db"
    before = _digest(registry)

    assert_plans_no_change(settings)
    assert _digest(registry) == before  # a dry run: the session's week is unchanged


def test_feast_materializes_and_serves_the_platforms_stores(week_settings: Settings, use_case):
    from mlops.stores.feature_store import online_features, open_store

    # The copy lives elsewhere: the platform opening it applies its own paths, as it would.
    store = open_store(week_settings, use_case)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0).isoformat()
    done = feast(week_settings, "materialize-incremental", now)
    assert done.returncode == 0, done.stdout + done.stderr
    views = store.list_feature_views()
    assert f"Materializing {len(views)} feature views" in _plain(done.stdout)

    first = offline_impressions(week_settings.offline_dir).iloc[0]
    entity = {key: int(first[key]) for key in use_case.entity_keys}
    expected = online_features(store, use_case, entity)
    served = _served_features(week_settings, use_case.feature_service, entity)
    assert served == pytest.approx(expected)
    assert any(value is not None for name, value in served.items() if name not in entity)


def _served_features(settings: Settings, service: str, entity: dict[str, int]) -> dict:
    """One `get-online-features` request to `feast serve` on the settings' stores."""
    port = free_port()
    server = subprocess.Popen(
        [FEAST, "-c", str(FEATURE_REPO), "serve", "-h", "127.0.0.1", "-p", str(port)],
        env=feast_environment(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/health", timeout=5).status_code == 200,
            "feast serve to answer",
            ignoring=(httpx.TransportError,),
        )
        body = {"feature_service": service, "entities": {k: [v] for k, v in entity.items()}}
        answer = httpx.post(f"{url}/get-online-features", json=body, timeout=30)
        answer.raise_for_status()
    finally:
        server.terminate()
        server.wait(timeout=60)
    found = answer.json()
    names = found["metadata"]["feature_names"]
    return {name: column["values"][0] for name, column in zip(names, found["results"], strict=True)}


def _plain(text: str) -> str:
    """Feast's CLI colours its output (ANSI escapes)."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
