"""MLflow's own client on every bundled use case's @champion in a real registry:
`mlflow.pyfunc.load_model("models:/<name>@champion")` scores the model's input example and the
model inputs the prediction log records, and `mlflow.models.predict` scores the example, all
with the service's scores.

adclick's champion is the session's `trained_week`; the others' are the ones
tests/integration/conftest.py trains (`<name>_trained`, built once per run).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.config.settings import Settings, get_settings
from mlops.contracts.model_inputs import as_float, category_codes
from mlops.contracts.usecase import UseCase, load_use_case
from mlops.stores.registry import CHAMPION, ModelRegistry
from tests.integration.usecases.test_bundled_use_cases import BUNDLED
from tests.support.session import TrainedWeek, settings_at
from tests.support.stores import copy_home

# The champions are the session's trained fixtures (asked for by name, so the `server` tier
# is not derived from them): trained on the session's Prefect server.
pytestmark = [pytest.mark.integration, pytest.mark.server]


@dataclass(frozen=True)
class Champion:
    use_case: UseCase
    settings: Settings
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.use_case.model_name}@{CHAMPION}"


@pytest.fixture(params=BUNDLED)
def champion(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Champion]:
    """A private copy of the use case's trained home; MLflow's client pointed at its registry."""
    import mlflow

    use_case = load_use_case(request.param)
    fixture = "trained_week" if use_case.name == "adclick" else f"{use_case.name}_trained"
    trained: TrainedWeek = request.getfixturevalue(fixture)
    monkeypatch.setenv("MLOPS_USE_CASE", use_case.name)
    settings = settings_at(copy_home(trained.home, tmp_path / "mlops-home"), monkeypatch)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    version = ModelRegistry(settings.tracking_uri, use_case.model_name).alias(CHAMPION)
    assert version is not None
    yield Champion(use_case, settings, version)
    get_settings.cache_clear()


def served_scores(champion: Champion, inputs: pd.DataFrame) -> np.ndarray:
    """Model inputs scored by the service's model object (loaded as the service loads it) on
    the matrix the service builds: category codes and float32 numbers."""
    from serving.model_loading import load_registered

    use_case = champion.use_case
    registry = ModelRegistry(champion.settings.tracking_uri, use_case.model_name)
    served = load_registered(registry, champion.version)
    columns = [
        category_codes(inputs[name].to_numpy(object), use_case.categories[name])
        if name in use_case.categories
        else as_float(pd.to_numeric(inputs[name]).to_numpy(np.float64, na_value=np.nan))
        for name in served.feature_names
    ]
    return served.predict(np.column_stack(columns))


def pyfunc_scores(champion: Champion, predicted: pd.DataFrame) -> np.ndarray:
    """The pyfunc's answer as the service's model predicts: a number per row, or a row of
    each class's probabilities."""
    use_case = champion.use_case
    classes = use_case.task.classes
    if not classes:
        return predicted[use_case.score_name].to_numpy()
    columns = [f"{use_case.score_name}.{name}" for name in classes]
    chosen = np.asarray(classes, dtype=object)[predicted[columns].to_numpy().argmax(axis=1)]
    assert list(predicted["predicted_class"]) == list(chosen)
    return predicted[columns].to_numpy()


def test_the_champions_pyfunc_scores_its_input_example_as_the_service(champion) -> None:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(champion.uri)
    example = model.input_example
    assert isinstance(example, pd.DataFrame) and len(example) > 0
    scores = pyfunc_scores(champion, model.predict(example))
    task = champion.use_case.task
    assert all(map(task.valid_prediction, scores.ravel()))  # e.g. probabilities, not labels
    np.testing.assert_allclose(scores, served_scores(champion, example), rtol=0, atol=1e-6)
    assert model.metadata.get_input_schema().input_names() == list(example.columns)


def test_the_pyfunc_scores_the_inputs_the_prediction_log_records_as_the_service(
    champion,
) -> None:
    """Requests for the newest events and for unseen entities (training's defaults), through
    the service's Scorer (online store, defaults, model inputs, booster), logged as the
    prediction log logs them, then scored again through the pyfunc."""
    import mlflow.pyfunc

    from mlops.stores.feature_store import open_store
    from serving.infra_check import golden_requests
    from serving.model_loading import load_registered
    from serving.scoring import Scorer, decode

    use_case, settings = champion.use_case, champion.settings
    scorer = Scorer(open_store(settings, use_case), use_case)
    registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
    served = load_registered(registry, champion.version)
    timestamp = use_case.events.timestamp_column
    requests = []
    for request in golden_requests(settings, use_case):
        parsed = use_case.request_model.model_validate_json(json.dumps(request)).model_dump()
        parsed[timestamp] = parsed.get(timestamp) or datetime.now(UTC)
        requests.append(parsed)
    scored = scorer.score(served, requests)
    logged = pd.DataFrame(
        [decode(served.feature_names, use_case.categories, row) for row in scored.matrix]
    )

    model = mlflow.pyfunc.load_model(champion.uri)
    scores = pyfunc_scores(champion, model.predict(logged))
    np.testing.assert_allclose(scores, scored.scores, rtol=0, atol=1e-6)


def test_mlflow_models_predict_scores_the_input_example(champion, tmp_path: Path) -> None:
    import mlflow.models
    import mlflow.pyfunc

    example = mlflow.pyfunc.load_model(champion.uri).input_example
    output = tmp_path / "predictions.json"
    mlflow.models.predict(
        model_uri=champion.uri, input_data=example, env_manager="local", output_path=str(output)
    )
    predictions = pd.DataFrame(json.loads(output.read_text())["predictions"])
    scores = pyfunc_scores(champion, predictions)
    np.testing.assert_allclose(scores, served_scores(champion, example), rtol=0, atol=1e-6)
