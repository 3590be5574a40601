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
import logging
import re
import time as clock
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from mlops.config.errors import ServiceUnreachable
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

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Retries:
    """How long a question to MLflow is asked again before the platform gives up: `attempts`
    in all, waiting `delays_seconds` between them (the last one repeats), and no new attempt
    once `budget_seconds` have passed since the first. Each attempt is one MLflow call, with
    MLflow's own HTTP retries and timeout inside it (Settings.library_environment)."""

    attempts: int = 3
    delays_seconds: tuple[float, ...] = (1.0, 3.0)
    budget_seconds: float = 40.0

    def delay(self, attempt: int) -> float:
        return self.delays_seconds[min(attempt, len(self.delays_seconds)) - 1]


# The one place that says how hard a decision path insists before failing closed: a refused
# connection fails in ~10 s, a server that accepts and never answers in about the budget.
MLFLOW_RETRIES = Retries()


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
    return outage_cause(error) is not None


def outage_cause(error: BaseException) -> str | None:
    """What kept the tracking server from answering, in a few words ("connection refused",
    "timed out", "HTTP 503"), or None when `error` is an answer (absent, invalid, a bug)."""
    import requests
    from mlflow.exceptions import MlflowException

    transient = (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.RetryError,
        requests.exceptions.ChunkedEncodingError,
        ConnectionError,
        TimeoutError,
    )
    causes: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(causes) < 20:
        causes.append(seen)
        # MLflow raises its own exception from inside the handler of requests' one.
        seen = seen.__cause__ or seen.__context__
    for cause in causes:
        if isinstance(cause, ServiceUnreachable):
            return cause.cause
        if isinstance(cause, MlflowException) and _server_error(cause):
            status = re.search(r"failed with error code (5\d\d)", str(cause))
            return f"HTTP {status.group(1) if status else cause.get_http_status_code()}"
    # MLflow's artifact downloads collect each file's failure as text: "API request to ...
    # failed with exception HTTPConnectionPool(...): Max retries exceeded ...".
    said_by_mlflow = any(
        isinstance(cause, MlflowException) and "failed with exception HTTP" in str(cause)
        for cause in causes
    )
    if not said_by_mlflow and not any(isinstance(cause, transient) for cause in causes):
        return None
    text = " ".join(str(cause) for cause in causes)
    for words, said in (
        ("refused", "connection refused"),
        ("Read timed out", "timed out"),
        ("timed out", "timed out"),
        ("reset", "connection reset"),
        ("too many 5", "HTTP 5xx"),
        ("RemoteDisconnected", "connection closed without an answer"),
        ("Connection aborted", "connection closed without an answer"),
    ):
        if words in text:
            return said
    return type(causes[-1]).__name__


def _server_error(error: BaseException) -> bool:
    """A 5xx answer without MLflow's own error body (a proxy, a dying server), or MLflow
    saying it is unavailable: the question was not answered."""
    code = getattr(error, "error_code", "")
    if code in ("TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return True
    return str(error).startswith("API request to endpoint") and " failed with error code 5" in (
        str(error)
    )


def without_credentials(url: str) -> str:
    """`url` as it may be printed: no user or password in it."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def naming_outage(tracking_uri: str) -> Iterator[None]:
    """Inside, MLflow not answering (after MLflow's own HTTP retries) comes out as
    `ServiceUnreachable`, which names MLflow and where it was asked, never as a library's
    exception text. For calls that are not safe to repeat here (a whole run's logging): the
    caller's retries (Prefect's) start them again."""
    try:
        yield
    except ServiceUnreachable:
        raise
    except Exception as err:
        cause = outage_cause(err)
        if cause is None:
            raise
        raise ServiceUnreachable("MLflow", without_credentials(tracking_uri), cause) from err


def ask_mlflow(
    tracking_uri: str, what: str, call: Callable[[], T], retries: Retries | None = None
) -> T:
    """`call()`'s answer; asked again while the tracking server does not answer, then
    `ServiceUnreachable`. An answer (an error included: absent, invalid) is returned or raised
    at once. `call` must be safe to repeat: it may have reached the server before its answer
    was lost. `retries`: MLFLOW_RETRIES unless given (looked up here, so a drill can shorten
    them for a whole test)."""
    retries = retries or MLFLOW_RETRIES
    started = clock.monotonic()
    attempt = 1
    while True:
        try:
            return call()
        except ServiceUnreachable:
            raise  # asked and retried already, one level down
        except Exception as err:
            cause = outage_cause(err)
            if cause is None:
                raise
            delay = retries.delay(attempt)
            spent = clock.monotonic() - started
            if attempt >= retries.attempts or spent + delay > retries.budget_seconds:
                raise ServiceUnreachable(
                    "MLflow", without_credentials(tracking_uri), cause
                ) from err
            log.warning(
                "MLflow did not answer (%s) to %s: attempt %d of %d, again in %.0f s",
                cause,
                what,
                attempt,
                retries.attempts,
                delay,
            )
            clock.sleep(delay)
            attempt += 1


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
        ask_mlflow(
            settings.tracking_uri,
            f"tagging run {run_id}",
            partial(client.set_tag, run_id, key, value[:TAG_LIMIT]),
        )


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
