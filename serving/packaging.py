"""Packaging: a registered version into BentoML's model store, then a bento (`mlops package`).

The bento carries the service code, the use case and the model (the MLflow model directory,
booster and serving defaults); `bentoml containerize <tag>` turns it into an OCI image where a
container engine runs. A bento serves the model it was built with (MLOPS_SERVING__MODEL_SOURCE
=bento) instead of following the registry.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from mlops.config.settings import PROJECT_ROOT, Settings
from mlops.contracts.usecase import UseCase
from mlops.stores.registry import ModelRegistry
from serving.model_loading import ServedModel, load_model_dir

BENTOFILE = PROJECT_ROOT / "serving" / "bentofile.yaml"
MLFLOW_VERSION = "mlflow_version"


def import_model(settings: Settings, use_case: UseCase, version: str) -> str:
    """Copy a registered version into BentoML's model store; return its BentoML tag."""
    import bentoml

    registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
    info = registry.version(version)
    with tempfile.TemporaryDirectory(prefix="package-") as tmp:
        source = registry.download(version, Path(tmp))
        with bentoml.models.create(
            use_case.model_name,
            labels={MLFLOW_VERSION: str(version), "use_case": use_case.name},
            metadata={"mlflow_run_id": info.run_id, "decision": info.decision},
        ) as model:
            shutil.copytree(source, model.path, dirs_exist_ok=True)
    return str(model.tag)


def build_bento(model_tag: str) -> str:
    """Build a bento from serving/bentofile.yaml with the given model; return its tag."""
    import bentoml

    config = yaml.safe_load(BENTOFILE.read_text())
    config["models"] = [model_tag]
    with tempfile.TemporaryDirectory(prefix="bentofile-") as tmp:
        bentofile = Path(tmp) / "bentofile.yaml"
        bentofile.write_text(yaml.safe_dump(config))
        bento = bentoml.bentos.build_bentofile(str(bentofile), build_ctx=str(PROJECT_ROOT))
    return str(bento.tag)


def packaged_version(use_case: UseCase) -> str:
    import bentoml

    return str(bentoml.models.get(f"{use_case.model_name}:latest").info.labels[MLFLOW_VERSION])


def load_packaged(use_case: UseCase, version: str) -> ServedModel:
    import bentoml

    model = bentoml.models.get(f"{use_case.model_name}:latest")
    return load_model_dir(Path(model.path), use_case.model_name, version)
