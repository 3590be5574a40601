"""MLflow's pyfunc for the platform's XGBoost models: model inputs as a client has them
(categories as plain strings, as the prediction log records them) in, predictions out.

MLflow's own xgboost flavor wraps a Booster in a pyfunc that refuses string categories
("enable_categorical must be set to True") and predicts with every tree instead of up to the
early-stopping round. A model logged here (`log_model`) keeps that native flavor as it is (the
service, the gate and monitoring load the Booster itself) and gets this module as its
`python_function` loader instead, so `mlflow.pyfunc.load_model`, `mlflow.models.predict` and
`mlflow models serve` score it as the service does.

The module travels inside every logged model (`code/booster_pyfunc.py`, imported by that bare
name), so it imports nothing of the platform: a model loads wherever xgboost, pandas and mlflow
are installed. What it needs from training (each categorical input's categories, in training's
order, the score's name and a multiclass model's classes) is written in the model's MLmodel
(`python_function.config`).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import xgboost as xgb
    from mlflow.models import Model, ModelSignature
    from mlflow.models.model import ModelInfo

LOADER_MODULE = Path(__file__).stem
CODE_DIR = "code"


PREDICTED_CLASS = "predicted_class"  # as the service answers it (serving/request_models.py)


def output_columns(score_name: str, classes: Sequence[str]) -> list[str]:
    """The prediction's columns: the score's name; for classes, `<score name>.<class>` each
    and the most probable class."""
    if not classes:
        return [score_name]
    return [*(f"{score_name}.{name}" for name in classes), PREDICTED_CLASS]


class BoosterScorer:
    """A Booster behind MLflow's pyfunc interface: `predict(frame)` gives one prediction per
    row, under the score's name (a multiclass model: each class's probability and the most
    probable class)."""

    def __init__(
        self,
        booster: xgb.Booster,
        categories: Mapping[str, Sequence[Any]],
        score_name: str,
        classes: Sequence[str] = (),
    ) -> None:
        self.booster = booster
        self.score_name = score_name
        self.classes = list(classes)
        self.feature_names = list(booster.feature_names or [])
        self.categories = {
            name: pd.CategoricalDtype(list(values)) for name, values in categories.items()
        }
        best = booster.attr("best_iteration")
        # The trees up to the early-stopping round, as training, the gate and serving predict.
        self.rounds = (0, int(best) + 1) if best is not None else (0, 0)
        # The base margin's recipe, as the platform saves it in the booster
        # (mlops.contracts.model_inputs.BaseMargin, not importable here): effects summed,
        # a missing one as 0, plus the intercept.
        saved = booster.attr("base_margin")
        self.margin = json.loads(saved) if saved is not None else None

    def inputs(self, model_input: pd.DataFrame) -> pd.DataFrame:
        """The booster's inputs, in its order: categories by training's categories (a value
        outside them, None or NaN is missing, as when served), numbers as float32; a column
        the caller left out is missing in every row."""
        columns: dict[str, Any] = {}
        for name in self.feature_names:
            if name in model_input:
                values = model_input[name]
            else:
                values = pd.Series(np.nan, index=model_input.index, dtype=object)
            if name in self.categories:
                known = values.astype(object).where(values.notna(), None)
                columns[name] = pd.Categorical(known, dtype=self.categories[name])
            else:
                columns[name] = pd.to_numeric(values).to_numpy(np.float32, na_value=np.nan)
        return pd.DataFrame(columns, index=model_input.index, copy=False)

    def start(self, inputs: pd.DataFrame) -> np.ndarray:
        assert self.margin is not None
        effects = inputs[self.margin["inputs"]].astype(np.float64).fillna(0.0)
        return float(self.margin["intercept"]) + effects.sum(axis=1).to_numpy()

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        inputs = self.inputs(frame)
        start = {"base_margin": self.start(inputs)} if self.margin else {}
        scores = self.booster.inplace_predict(inputs, iteration_range=self.rounds, **start)
        scores = np.asarray(scores, np.float64)
        if not self.classes:
            return pd.DataFrame({self.score_name: scores}, index=frame.index)
        columns = output_columns(self.score_name, self.classes)
        predicted = np.asarray(self.classes, dtype=object)[scores.argmax(axis=1)]
        result = pd.DataFrame(scores, columns=columns[:-1], index=frame.index)
        result[PREDICTED_CLASS] = predicted
        return result


def _load_pyfunc(data_path: str, model_config: dict[str, Any] | None = None) -> BoosterScorer:
    """MLflow's entry point: `data_path` is the native flavor's UBJ file."""
    import xgboost as xgb

    config = model_config or {}
    booster = xgb.Booster(model_file=data_path)
    return BoosterScorer(
        booster,
        config.get("categories", {}),
        config.get("score_name", "score"),
        config.get("classes", ()),
    )


def signature(
    booster: xgb.Booster,
    categories: Mapping[str, Sequence[Any]],
    score_name: str,
    classes: Sequence[str] = (),
) -> ModelSignature:
    """What a caller sends (each model input: a category as its value, anything else a number;
    any may be null or left out, which the model reads as missing) and what comes back."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    def input_type(name: str) -> DataType:
        if name not in categories:
            return DataType.double
        if all(isinstance(v, str) for v in categories[name]):
            return DataType.string
        if all(isinstance(v, int) for v in categories[name]):
            return DataType.long
        raise ValueError(f"categories of {name!r} mix types: {list(categories[name])}")

    names = list(booster.feature_names or [])
    return ModelSignature(
        inputs=Schema([ColSpec(input_type(n), n, required=False) for n in names]),
        outputs=Schema(
            [
                ColSpec(DataType.string if column == PREDICTED_CLASS else DataType.double, column)
                for column in output_columns(score_name, classes)
            ]
        ),
    )


def save_model(
    booster: xgb.Booster,
    path: str,
    mlflow_model: Model | None = None,
    *,
    categories: Mapping[str, Sequence[Any]],
    score_name: str,
    classes: Sequence[str] = (),
    input_example: pd.DataFrame | None = None,
    metadata: Mapping[str, Any] | None = None,
    pip_requirements: Sequence[str] | None = None,
) -> None:
    """MLflow's native xgboost flavor (UBJ), with this module as its pyfunc loader."""
    import mlflow.xgboost
    from mlflow import pyfunc
    from mlflow.models import Model

    if mlflow_model is None:
        mlflow_model = Model()
    used = {
        name: list(categories[name]) for name in booster.feature_names or [] if name in categories
    }
    mlflow.xgboost.save_model(
        booster,
        path,
        mlflow_model=mlflow_model,
        model_format="ubj",
        signature=signature(booster, used, score_name, classes),
        input_example=input_example,
        metadata=dict(metadata) if metadata is not None else None,
        pip_requirements=list(pip_requirements) if pip_requirements is not None else None,
    )
    code = Path(path) / CODE_DIR
    code.mkdir()
    shutil.copyfile(__file__, code / f"{LOADER_MODULE}.py")
    native = mlflow_model.flavors[pyfunc.FLAVOR_NAME]
    pyfunc.add_to_model(
        mlflow_model,
        loader_module=LOADER_MODULE,
        data=native[pyfunc.DATA],
        code=CODE_DIR,
        conda_env=native[pyfunc.ENV]["conda"],
        python_env=native[pyfunc.ENV]["virtualenv"],
        model_config={"categories": used, "score_name": score_name, "classes": list(classes)},
    )
    mlflow_model.save(str(Path(path) / "MLmodel"))


def log_model(
    booster: xgb.Booster,
    name: str,
    *,
    categories: Mapping[str, Sequence[Any]],
    score_name: str,
    classes: Sequence[str] = (),
    input_example: pd.DataFrame | None = None,
    metadata: Mapping[str, Any] | None = None,
    pip_requirements: Sequence[str] | None = None,
) -> ModelInfo:
    """Log the booster to the active run as `save_model` writes it. MLflow checks the input
    example by scoring it through the pyfunc."""
    from mlflow.models import Model

    return Model.log(
        artifact_path=None,
        name=name,
        flavor=sys.modules[__name__],
        booster=booster,
        categories=categories,
        score_name=score_name,
        classes=classes,
        input_example=input_example,
        metadata=dict(metadata) if metadata is not None else None,
        pip_requirements=pip_requirements,
    )
