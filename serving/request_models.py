"""The prediction routes' pydantic models: built from the use case (its request model, bounded in
time, and its score's name), they validate requests and describe answers; the OpenAPI document
is generated from the same models (serving/openapi_schema.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from mlops.contracts.tasks import Task
from mlops.contracts.usecase import UseCase
from serving.http_limits import earliest_event, with_time_bounds

if TYPE_CHECKING:
    import numpy as np

# A multiclass answer's most probable class (a logged model's pyfunc names it alike:
# models/booster_pyfunc.py, which imports nothing of the platform).
PREDICTED_CLASS = "predicted_class"
PROBABILITY_SUM_TOLERANCE = 1e-4  # float32 probabilities of a few classes


class ModelInfo(BaseModel):
    """GET /model."""

    model_name: str
    model_version: str | None = Field(description="None until a model is loaded.")
    loaded_at: datetime | None
    features: list[str] = Field(description="The model's inputs, in order.")
    pinned: bool = Field(description="A fixed version (or the bento's), not the @champion.")
    last_error: str | None = Field(description="Why the last model load failed, if it did.")
    challenger_version: str | None = Field(
        default=None,
        description="The @challenger scored in the shadow of the served model (the card's "
        "rollout), if there is one.",
    )


class ErrorAnswer(BaseModel):
    error: str


class ModelRequest(BaseModel):
    """POST /model's body: nothing (`{}`, what BentoML's client sends for an API without
    parameters)."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class RequestModels:
    """POST /predict's body and answer, POST /predict_batch's, and POST /explain's answer (its
    body is /predict's)."""

    predict_request: type[BaseModel]
    prediction: type[BaseModel]
    batch_request: type[BaseModel]
    batch_prediction: type[BaseModel]
    explanation: type[BaseModel]


def _prediction_fields(use_case: UseCase) -> dict[str, Any]:
    """What a prediction answers, by task kind (`prediction_answer` fills them)."""
    task, name = use_case.task, use_case.score_name
    if not task.classes:
        return {name: (float, Field(description=f"The model's prediction: {task.prediction}."))}
    return {
        name: (dict[str, float], Field(description="Each class's probability; they sum to 1.")),
        PREDICTED_CLASS: (Literal[task.classes], Field(description="The most probable class.")),
    }


def prediction_answer(task: Task, score_name: str, prediction: np.ndarray) -> dict[str, Any]:
    """One prediction as the service answers it: a number under the score's name, or each
    class's probability and the most probable class."""
    if not task.classes:
        return {score_name: float(prediction)}
    probabilities = dict(zip(task.classes, prediction.tolist(), strict=True))
    return {score_name: probabilities, PREDICTED_CLASS: task.classes[int(prediction.argmax())]}


def answered_prediction(task: Task, score_name: str, answer: Any) -> list[float] | None:
    """The prediction in an answer `prediction_answer` wrote (a number, or the probabilities
    in class order), or None when the answer does not hold the task's kind of prediction."""
    if not isinstance(answer, dict):
        return None
    value = answer.get(score_name)
    if not task.classes:
        return [value] if isinstance(value, float) and task.valid_prediction(value) else None
    if not isinstance(value, dict) or list(value) != list(task.classes):
        return None
    probabilities = list(value.values())
    if not all(isinstance(p, float) and task.valid_prediction(p) for p in probabilities):
        return None
    most = task.classes[max(range(len(probabilities)), key=probabilities.__getitem__)]
    sums_to_one = abs(sum(probabilities) - 1) < PROBABILITY_SUM_TOLERANCE
    return probabilities if sums_to_one and answer.get(PREDICTED_CLASS) == most else None


def request_models(use_case: UseCase, max_batch: int) -> RequestModels:
    predict_request = with_time_bounds(
        use_case.request_model, use_case.events.timestamp_column, earliest_event(use_case)
    )
    prediction_fields: dict[str, Any] = {
        "request_id": (str, Field(description="Joins the prediction log, and later the label.")),
        "model_version": (str, ...),
        "missing_features": (
            list[str],
            Field(
                description="Values neither the request nor the online store had; filled with "
                "training defaults where the model never saw them missing."
            ),
        ),
        **_prediction_fields(use_case),
    }
    prediction = create_model("Prediction", **prediction_fields)

    class BatchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        requests: list[predict_request] = Field(  # type: ignore[valid-type]
            min_length=1, max_length=max_batch
        )

    class BatchPrediction(BaseModel):
        predictions: list[prediction]  # type: ignore[valid-type]

    per_input = dict[str, float]
    explanation = create_model(
        "Explanation",
        model_version=(str, ...),
        missing_features=prediction_fields["missing_features"],
        **_prediction_fields(use_case),
        inputs=(
            dict[str, Any],
            Field(description="The model's inputs as it saw them (a category by its name)."),
        ),
        contributions=(
            dict[str, per_input] if use_case.task.classes else per_input,
            Field(
                description="Each input's share of the margin (XGBoost's TreeSHAP), and `bias`: "
                "what the trees start from. They sum to the margin: the log-odds of a binary "
                "task's probability, a regression's prediction; per class for a multiclass task."
            ),
        ),
    )
    return RequestModels(predict_request, prediction, BatchRequest, BatchPrediction, explanation)
