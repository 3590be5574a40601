"""The prediction routes' pydantic models: built from the use case (its request model, bounded in
time, and its score's name), they validate requests and describe answers; the OpenAPI document
is generated from the same models (serving/openapi_schema.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from mlops.contracts.usecase import UseCase
from serving.http_limits import earliest_event, with_time_bounds


class ModelInfo(BaseModel):
    """GET /model."""

    model_name: str
    model_version: str | None = Field(description="None until a model is loaded.")
    loaded_at: datetime | None
    features: list[str] = Field(description="The model's inputs, in order.")
    pinned: bool = Field(description="A fixed version (or the bento's), not the @champion.")
    last_error: str | None = Field(description="Why the last model load failed, if it did.")


class ErrorAnswer(BaseModel):
    error: str


class ModelRequest(BaseModel):
    """POST /model's body: nothing (`{}`, what BentoML's client sends for an API without
    parameters)."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class RequestModels:
    """POST /predict's body and answer, and POST /predict_batch's."""

    predict_request: type[BaseModel]
    prediction: type[BaseModel]
    batch_request: type[BaseModel]
    batch_prediction: type[BaseModel]


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
        use_case.score_name: (float, ...),
    }
    prediction = create_model("Prediction", **prediction_fields)

    class BatchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        requests: list[predict_request] = Field(  # type: ignore[valid-type]
            min_length=1, max_length=max_batch
        )

    class BatchPrediction(BaseModel):
        predictions: list[prediction]  # type: ignore[valid-type]

    return RequestModels(predict_request, prediction, BatchRequest, BatchPrediction)
