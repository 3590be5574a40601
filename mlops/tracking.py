"""MLflow tracking shared by the stages: the tracking URI, one experiment per use case and kind
of run, tags and links. What a training or monitoring run logs is in its own stage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlops.settings import Settings
from mlops.usecase import UseCase


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_uri: str
    experiment_id: str


def use_tracking(settings: Settings) -> None:
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)


def experiment_id(settings: Settings, use_case: UseCase, kind: str = "") -> str:
    """The use case's experiment (`<name>`, or `<name>-<kind>` e.g. for monitoring runs),
    created on first use with an absolute artifact location."""
    import mlflow

    use_tracking(settings)
    name = f"{use_case.name}-{kind}" if kind else use_case.name
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    return mlflow.create_experiment(name, artifact_location=settings.artifact_location)


def tag_run(settings: Settings, run_id: str, tags: Mapping[str, str]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, value[:5000])


def run_url(settings: Settings, logged: LoggedRun) -> str:
    """Where the run shows in the MLflow UI (`make mlflow-ui` serves the local store)."""
    base = settings.mlflow_tracking_uri or settings.ui.mlflow_url
    return f"{base.rstrip('/')}/#/experiments/{logged.experiment_id}/runs/{logged.run_id}"
