"""MLflow tracking shared by the stages: the tracking URI, one experiment per use case and kind
of run, names, descriptions, input datasets, tags and links. What a training or monitoring run
logs is in its own stage.

One name for one day: whatever is about the data up to an instant `end` (a monitoring window, a
training run's test window) is named by the last day it covers, the date of `end - 1 µs` (UTC).
The window that ends at 2026-01-12T00:00 judges 2026-01-11: its MLflow run is
`monitor-2026-01-11`, the retraining it starts `retrain-2026-01-11`, its reports are in
`monitoring/reports/2026-01-11/`. `day_name` is that rule, once.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from mlops.config.settings import Settings
from mlops.contracts.usecase import UseCase

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.data.pandas_dataset import PandasDataset

# The experiment tag MLflow's UI reads to open an experiment on its runs (classic ML) rather than
# on GenAI traces. The Python package has no constant for it; the values are the UI's
# (mlflow/server/js: "custom_model_development", "genai_development", and "..._inferred" ones
# the UI guessed, which a person's choice replaces).
EXPERIMENT_KIND = "mlflow.experimentKind"
CLASSIC_ML = "custom_model_development"
# MLflow 3.17's UI ignores that tag for the view it opens: a switch for the whole UI (GenAI or
# model training, GenAI until a person flips it, remembered by the browser) decides, and a link
# can set it. Every link the platform prints sets it.
UI_WORKFLOW = "workflowType=machine_learning"
# The run's description in the UI (mlflow.utils.mlflow_tags.MLFLOW_RUN_NOTE).
RUN_NOTE = "mlflow.note.content"
TAG_LIMIT = 5000  # MLflow caps tag values (and descriptions) at 5000 characters
# The orchestrator's run that logged an MLflow run (Prefect's flow run id): a retried task finds
# the run an earlier attempt of it left RUNNING by this tag (`fail_unfinished_runs`).
LOGGED_BY = "mlops.flow_run_id"
SCHEMA_ROWS = 1000  # rows a dataset's schema is inferred from (all of them: ~3 s per 100k)


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_uri: str
    experiment_id: str


def day_name(end: datetime) -> str:
    """The name of what ends at `end`: the last day it covers, the date of `end - 1 µs` (UTC).
    `2026-01-12T00:00` -> "2026-01-11". An end that is not a midnight also says its time, so
    two windows never share a name: `2026-01-12T06:00` -> "2026-01-12T0600"."""
    end = end.astimezone(UTC) if end.tzinfo else end
    if end.time() == time(0):
        return f"{end - timedelta(microseconds=1):%Y-%m-%d}"
    return f"{end:%Y-%m-%dT%H%M}"


def day_start(end: datetime) -> datetime:
    """Where `day_name(end)` sits on a time axis: the midnight that starts the day judged (a
    window ending at a midnight), else `end` itself."""
    end = end.astimezone(UTC) if end.tzinfo else end
    return end - timedelta(days=1) if end.time() == time(0) else end


def use_tracking(settings: Settings) -> None:
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)


def experiment_id(settings: Settings, use_case: UseCase, kind: str = "") -> str:
    """The use case's experiment (`<name>`, or `<name>-<kind>` e.g. for monitoring runs),
    created on first use with an absolute artifact location. Tagged as classic ML, so the UI
    opens it on its runs (an experiment made before the tag existed gets it here)."""
    import mlflow

    use_tracking(settings)
    name = f"{use_case.name}-{kind}" if kind else use_case.name
    existing = mlflow.get_experiment_by_name(name)
    if existing is None:
        return mlflow.create_experiment(
            name, artifact_location=settings.artifact_location, tags={EXPERIMENT_KIND: CLASSIC_ML}
        )
    chosen = existing.tags.get(EXPERIMENT_KIND, "")
    if not chosen or chosen.endswith("_inferred") or chosen == "no_inferred_type":
        mlflow.MlflowClient(settings.tracking_uri).set_experiment_tag(
            existing.experiment_id, EXPERIMENT_KIND, CLASSIC_ML
        )
    return existing.experiment_id


def server_unreachable(error: BaseException) -> bool:
    """Whether `error` is, or was caused by, the tracking server not answering: refused or
    dropped connections, timeouts, 5xx answers until MLflow's own retries ran out. A retry may
    succeed once it is back; any other error would only happen again."""
    import requests

    transient = (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.RetryError,
        requests.exceptions.ChunkedEncodingError,
        ConnectionError,
        TimeoutError,
    )
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, transient):
            return True
        # MLflow raises its own exception from inside the handler of requests' one.
        seen = seen.__cause__ or seen.__context__
    return False


def fail_unfinished_runs(settings: Settings, experiment: str, logged_by: str) -> list[str]:
    """Mark FAILED the runs of `experiment` that `logged_by` left RUNNING, and the models they
    had begun to log: an attempt that lost the server midway could not end its run. A retried
    attempt calls this before starting its run again, so the experiment keeps one finished run
    per flow run and no run that looks alive. Returns the runs ended."""
    from mlflow import MlflowClient
    from mlflow.entities import RunStatus

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    unfinished = client.search_runs(
        [experiment], filter_string=f"tags.`{LOGGED_BY}` = '{logged_by}' and status = 'RUNNING'"
    )
    for run in unfinished:
        run_id = run.info.run_id
        for model in client.search_logged_models(
            [experiment], filter_string=f"source_run_id = '{run_id}'"
        ):
            client.finalize_logged_model(model.model_id, "FAILED")
        client.set_tag(
            run_id,
            RUN_NOTE,
            "Abandoned: the tracking server went away while this "
            "run was logged; a retried attempt logged the run again.",
        )
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
    return [run.info.run_id for run in unfinished]


def tag_run(settings: Settings, run_id: str, tags: Mapping[str, str]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, value[:TAG_LIMIT])


def describe_run(settings: Settings, run_id: str, markdown: str) -> None:
    """The run's description in the MLflow UI (markdown)."""
    tag_run(settings, run_id, {RUN_NOTE: markdown})


def dataset(
    frame: pd.DataFrame,
    *,
    name: str,
    source: str,
    targets: str | None = None,
    predictions: str | None = None,
) -> PandasDataset:
    """An MLflow dataset of `frame` for `mlflow.log_input`: its row count and a digest of all
    its rows; column types from its first `SCHEMA_ROWS` rows (MLflow infers them from every
    row, ~3 s per 100k), whether a column has nulls from all of them."""
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, Schema

    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    with warnings.catch_warnings():
        # A local path matches two registered source types that are the same class.
        warnings.filterwarnings("ignore", message="The specified dataset source can be")
        data = from_pandas(
            frame,
            source=source,
            name=name,
            targets=targets,
            predictions=predictions,
            digest=digest.hexdigest()[:16],
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # integer columns "cannot hold missing values": known
        head = infer_signature(frame.head(SCHEMA_ROWS)).inputs
    nulls = frame.isna().any()
    columns: list[Any] = [ColSpec(c.type, c.name, required=not nulls[c.name]) for c in head.inputs]
    data.schema = Schema(columns)  # a cached property: set here, not inferred again
    return data


def run_url(settings: Settings, logged: LoggedRun) -> str:
    """Where the run shows in the MLflow UI (`make mlflow-ui` serves the local store), in its
    model-training view."""
    base = settings.mlflow_tracking_uri or settings.ui.mlflow_url
    run = f"#/experiments/{logged.experiment_id}/runs/{logged.run_id}"
    return f"{base.rstrip('/')}/{run}?{UI_WORKFLOW}"
