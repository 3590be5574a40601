"""A model version as the service scores with it (`ServedModel`), loaded from a logged MLflow
model directory: the registry's, or the one a bento carries."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.contracts.model_inputs import BaseMargin

if TYPE_CHECKING:
    import xgboost as xgb

    from mlops.stores.registry import ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """One model version, ready to score; replaced whole on a hot-swap, never edited."""

    name: str
    version: str
    booster: xgb.Booster
    defaults: dict[str, Any]  # raw column -> value filled in when missing (None: keep missing)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Read from the booster once: each attribute read is a call into XGBoost's C API.
    feature_names: list[str] = field(init=False)
    rounds: tuple[int, int] = field(init=False)
    margin: BaseMargin | None = field(init=False)

    def __post_init__(self) -> None:
        best = self.booster.attr("best_iteration")
        object.__setattr__(self, "feature_names", list(self.booster.feature_names or []))
        object.__setattr__(self, "rounds", (0, int(best) + 1) if best is not None else (0, 0))
        object.__setattr__(self, "margin", BaseMargin.of(self.booster))
        # One request is one row: threads cost more than they save, and the cores are shared.
        self.booster.set_param({"nthread": 1})

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if self.margin is None:
            return self.booster.inplace_predict(matrix, iteration_range=self.rounds)
        start = self.margin.matrix_margin(matrix, self.feature_names)
        return self.booster.inplace_predict(matrix, iteration_range=self.rounds, base_margin=start)

    def describe(self) -> dict[str, Any]:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "loaded_at": self.loaded_at.isoformat(),
            "features": self.feature_names,
        }


def load_model_dir(path: Path, name: str, version: str) -> ServedModel:
    """A logged MLflow model directory (from the registry, or from a bento) as a ServedModel."""
    import mlflow.xgboost
    from mlflow.models import Model

    booster = mlflow.xgboost.load_model(str(path))
    metadata = Model.load(str(path / "MLmodel")).metadata or {}
    if "serving_defaults" not in metadata:
        log.warning("%s v%s has no serving defaults: missing values stay missing", name, version)
    return ServedModel(name, str(version), booster, dict(metadata.get("serving_defaults", {})))


def load_registered(registry: ModelRegistry, version: str) -> ServedModel:
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        return load_model_dir(registry.download(version, Path(tmp)), registry.name, version)
