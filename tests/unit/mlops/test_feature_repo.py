"""feature_repo/ (for Feast's CLI) says what the platform's code config says, in both profiles."""

from pathlib import Path

import pytest

from mlops.config.settings import Settings
from mlops.stores.feature_store import FEATURE_REPO, cli_environment, repo_config


def _from_yaml(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """The configuration Feast's CLI loads in the environment the platform gives it."""
    from feast.repo_config import load_repo_config
    from feast.utils import get_default_yaml_file_path

    for key, value in cli_environment(settings).items():
        monkeypatch.setenv(key, value)
    if settings.profile == "local":
        monkeypatch.delenv("FEAST_FS_YAML_FILE_PATH", raising=False)
    return load_repo_config(FEATURE_REPO, get_default_yaml_file_path(FEATURE_REPO))


def test_feature_store_yaml_matches_the_local_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_case
):
    settings = Settings(home=tmp_path, use_case=use_case.name)
    from_yaml = _from_yaml(settings, monkeypatch)
    from_code = repo_config(settings, use_case)

    assert from_yaml.project == from_code.project
    assert from_yaml.registry.registry_type == from_code.registry.registry_type == "file"
    assert from_yaml.registry.path == from_code.registry.path
    assert from_yaml.online_store.type == from_code.online_store.type == "sqlite"
    assert from_yaml.online_store.path == from_code.online_store.path
    assert from_yaml.offline_store.type == from_code.offline_store.type
    assert from_yaml.entity_key_serialization_version == from_code.entity_key_serialization_version


def test_the_server_yaml_matches_the_server_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_case
):
    settings = Settings(
        home=tmp_path,
        use_case=use_case.name,
        profile="server",
        postgres_dsn="postgresql://feast:secret@db.example:5433/postgres",
        database_prefix="fork",
        redis_url="redis://:pw@cache.example:6380/2",
    )
    from_yaml = _from_yaml(settings, monkeypatch)
    from_code = repo_config(settings, use_case)

    assert from_yaml.project == from_code.project
    assert from_yaml.registry.registry_type == from_code.registry.registry_type == "sql"
    assert from_yaml.registry.path == from_code.registry.path
    assert from_yaml.registry.path == "postgresql+psycopg://feast:secret@db.example:5433/fork_feast"
    assert from_yaml.registry.cache_ttl_seconds == from_code.registry.cache_ttl_seconds
    assert from_yaml.registry.serve_features_while_materializing
    assert from_yaml.online_store.type == from_code.online_store.type == "redis"
    assert from_yaml.online_store.connection_string == from_code.online_store.connection_string
    assert from_yaml.offline_store.type == from_code.offline_store.type
    assert from_yaml.entity_key_serialization_version == from_code.entity_key_serialization_version
