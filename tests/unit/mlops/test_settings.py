from pathlib import Path

import pytest
from pydantic import ValidationError

from mlops.config.settings import PROJECT_ROOT, Settings


def test_defaults_keep_all_state_under_one_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    settings = Settings()
    assert settings.profile == "local"
    assert settings.home == PROJECT_ROOT / ".mlops"
    for folder in (
        settings.landing_dir,
        settings.quarantine_dir,
        settings.offline_dir,
        settings.feast_dir,
        settings.prefect_home,
        settings.logs_dir,
    ):
        assert folder.is_relative_to(settings.home)


def test_environment_overrides_and_resolves_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "x" / ".." / "state"))
    assert Settings().home == (tmp_path / "state").resolve()


def test_server_profile_defaults_fit_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_PROFILE", "server")
    settings = Settings()
    assert settings.prefect_api_url == "http://127.0.0.1:4200/api"
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert settings.artifact_location is None  # the tracking server proxies artifacts
    assert settings.database_url("feast", "psycopg") == (
        "postgresql+psycopg://postgres@127.0.0.1:5432/mlops_feast"
    )


def test_a_dsn_that_is_not_a_url_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_POSTGRES_DSN", "not a url")
    with pytest.raises(ValidationError, match="MLOPS_POSTGRES_DSN"):
        Settings()


def test_redis_urls_become_feasts_connection_string() -> None:
    from mlops.stores.databases import feast_redis_connection

    assert feast_redis_connection("rediss://:pw@cache:6380/3") == (
        "cache:6380,db=3,password=pw,ssl=true"
    )


def test_unknown_profile_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_PROFILE", "cloud")
    with pytest.raises(ValidationError):
        Settings()


def test_library_environment_turns_telemetry_off(tmp_path: Path) -> None:
    env = Settings(home=tmp_path).library_environment()
    assert env["DO_NOT_TRACK"] == "true"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["BENTOML_DO_NOT_TRACK"] == "true"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_HOME"] == str(tmp_path / "prefect")


def test_secrets_are_masked_wherever_settings_are_printed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from entrypoints.cli import app
    from mlops.config.settings import get_settings

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_POSTGRES_DSN", "postgresql://app:hunter2@127.0.0.1:5432/feast")
    monkeypatch.setenv("MLOPS_REDIS_URL", "redis://:hunter2@127.0.0.1:6379/0")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        printed = CliRunner().invoke(app, ["settings", "--json"])
        text = CliRunner().invoke(app, ["settings"])
    finally:
        get_settings.cache_clear()

    assert printed.exit_code == 0 and text.exit_code == 0, printed.output
    for shown in (printed.output, text.output, repr(settings), str(settings.model_dump())):
        assert "hunter2" not in shown
    assert settings.postgres_dsn is not None
    assert "hunter2" in settings.postgres_dsn.get_secret_value()  # the client still gets it


def test_the_engine_is_local_unless_ray_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops.compute.ray_engine import ray_init_options

    assert Settings().engine == "local"
    monkeypatch.setenv("MLOPS_ENGINE", "ray")
    monkeypatch.setenv("MLOPS_RAY_NUM_CPUS", "2")
    monkeypatch.setenv("MLOPS_RAY_OBJECT_STORE_MB", "300")
    local_ray = ray_init_options(Settings())
    assert (local_ray["num_cpus"], local_ray["object_store_memory"]) == (2, 300 * 2**20)
    assert "address" not in local_ray
    monkeypatch.setenv("MLOPS_RAY_ADDRESS", "ray://head:10001")
    cluster = ray_init_options(Settings())
    assert cluster["address"] == "ray://head:10001"
    assert "num_cpus" not in cluster  # a cluster has its own resources
    monkeypatch.setenv("MLOPS_ENGINE", "spark")
    with pytest.raises(ValidationError, match="engine"):
        Settings()
