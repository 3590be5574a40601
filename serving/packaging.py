"""Packaging: a registered version into BentoML's model store, then a bento (`mlops package`).

The bento carries the service code, the use case and the model (the MLflow model directory,
booster and serving defaults); `bentoml containerize <tag>` turns it into an OCI image where a
container engine runs. A bento serves the model it was built with instead of following the
registry: in its container (MLOPS_SERVING__MODEL_SOURCE=bento, from the bento's envs) and with
`bentoml serve` in its directory or of its tag (BentoML then loads the service from the bento,
whose envs it does not apply; the service sees the bento it was loaded from).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from mlops.config.settings import PROJECT_ROOT, Settings
from mlops.contracts.usecase import UseCase
from mlops.stores.registry import ModelRegistry
from serving.model_loading import ServedModel, load_model_dir

if TYPE_CHECKING:
    import bentoml
    from bentoml import Bento

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


def packaged_model(use_case: UseCase, bento: Bento | None) -> bentoml.Model:
    """The model `bento` was built with; without a bento (MLOPS_SERVING__MODEL_SOURCE=bento set
    by hand, or a bento's container, whose store holds its model alone), the newest imported."""
    import bentoml

    tags = (
        [m.tag for m in bento.info.all_models if m.tag.name == use_case.model_name] if bento else []
    )
    return bentoml.models.get(tags[0] if tags else f"{use_case.model_name}:latest")


def packaged_version(model: bentoml.Model) -> str:
    return str(model.info.labels[MLFLOW_VERSION])


def load_packaged(model: bentoml.Model, use_case: UseCase, version: str) -> ServedModel:
    return load_model_dir(Path(model.path), use_case.model_name, version)
