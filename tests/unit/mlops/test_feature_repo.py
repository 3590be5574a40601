"""feature_repo/feature_store.yaml (for Feast's CLI) says what the platform's code config says."""

from pathlib import Path

import pytest

from mlops.config.settings import PROJECT_ROOT, Settings
from mlops.stores.feature_store import repo_config


def test_feature_store_yaml_matches_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_case
):
    from feast.repo_config import load_repo_config

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_USE_CASE", use_case.name)
    repo = PROJECT_ROOT / "feature_repo"
    from_yaml = load_repo_config(repo, repo / "feature_store.yaml")
    from_code = repo_config(Settings(home=tmp_path), use_case)

    assert from_yaml.project == from_code.project
    assert from_yaml.registry.path == from_code.registry.path
    assert from_yaml.online_store.path == from_code.online_store.path
    assert from_yaml.offline_store.type == from_code.offline_store.type
    assert from_yaml.entity_key_serialization_version == from_code.entity_key_serialization_version
