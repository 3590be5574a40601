"""Ingest flow: finish what a crash left, then land, validate, quarantine, write offline,
materialize and publish a summary per batch.

The work, and the order of one batch's steps (`ingestion.ingest_steps`), live in `ingestion`;
this file says what runs as a Prefect task and is retried, what runs in parallel, and what is
reported.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.prefect_names import (
    artifact_key,
    batch_dirs_run_name,
    batches_run_name,
    from_parameters,
    name_flow_run,
)
from flows.results import RESULT_SERIALIZER
from ingestion import ingest_steps, ledger
from ingestion.batch_discovery import check_batch_ids, pending_batches
from ingestion.batch_reports import BatchesRejected, BatchReport, IngestResult, batch_report
from ingestion.gx_data_docs import build_data_docs, data_docs_index
from ingestion.gx_validation import validate_batch
from ingestion.ingest_steps import ingest_validated_batch, reject_unreadable
from ingestion.table_validation import TableValidation
from mlops.compute.ray_engine import start_ray
from mlops.config.runtime import setup
from mlops.config.settings import Settings, get_settings
from mlops.contracts.batches import BatchUnreadable, LandedBatch, read_batch
from mlops.contracts.usecase import UseCase, active_use_case
from mlops.stores.feature_store import open_store
from mlops.stores.offline_store import OfflineStore

if TYPE_CHECKING:
    from feast import FeatureStore

# DataFrames flow between these tasks: hashing them for a cache key would cost more than the work.
validate = task(cache_policy=NO_CACHE, task_run_name="validate")(validate_batch)
exclude_already_ingested = task(cache_policy=NO_CACHE, task_run_name="already-ingested")(
    ingest_steps.exclude_already_ingested
)
quarantine = task(cache_policy=NO_CACHE, retries=2, task_run_name="quarantine")(
    ingest_steps.quarantine
)
write_offline = task(cache_policy=NO_CACHE, retries=2, task_run_name="write-offline")(
    ingest_steps.write_offline
)
build_features = task(cache_policy=NO_CACHE, retries=2, task_run_name="build-features")(
    ingest_steps.build_features
)
commit = task(cache_policy=NO_CACHE, retries=2, task_run_name="commit")(ingest_steps.commit)
refresh_features = task(cache_policy=NO_CACHE, retries=2, task_run_name="refresh-features")(
    ledger.refresh_features
)
# SQLite can be briefly locked by a reader (the serving process): worth a retry.
sync_online = task(
    cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2, task_run_name="materialize"
)(ledger.sync_online)
finish_committed = task(
    cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2, task_run_name="finish-committed"
)(ledger.finish_committed)
data_docs = task(cache_policy=NO_CACHE, task_run_name="data-docs")(build_data_docs)
# The steps `ingest_validated_batch` runs, each as its task above.
STEP_TASKS: dict[Callable[..., Any], Callable[..., Any]] = {
    step_task.fn: step_task
    for step_task in (
        exclude_already_ingested,
        quarantine,
        write_offline,
        build_features,
        commit,
        refresh_features,
        sync_online,
    )
}
T = TypeVar("T")


def as_task(step: Callable[..., T], /, *args: Any) -> T:
    """Run an ingest step as its Prefect task (a step without one as a plain call)."""
    return STEP_TASKS.get(step, step)(*args)


Validated = tuple[LandedBatch, dict[str, TableValidation]]


@task(cache_policy=NO_CACHE, task_run_name="land-and-validate")
def land_and_validate(batch_dir: Path, use_case: UseCase, settings: Settings) -> Validated:
    batch = read_batch(batch_dir, use_case.tables)
    return batch, validate_batch(batch, use_case, settings)


@flow(name="validate-batches", flow_run_name=from_parameters(batch_dirs_run_name("validate")))
def validate_batches(batch_dirs: list[Path]) -> dict[Path, Validated]:
    """Land and validate every batch at once, a task each on the task runner (Ray's, with
    `MLOPS_ENGINE=ray`). A batch that fails here is landed again on its turn, to be reported
    (an unreadable one) or to fail the run where it would have anyway."""
    settings = get_settings()
    use_case = active_use_case(settings)
    futures = {
        batch_dir: land_and_validate.submit(batch_dir, use_case, settings)
        for batch_dir in batch_dirs
    }
    for future in futures.values():
        future.wait()
    return {d: f.result() for d, f in futures.items() if f.state.is_completed()}


def ingest_batch(
    batch_dir: Path,
    use_case: UseCase,
    feature_store: Callable[[], FeatureStore],
    validated: Validated | None = None,
    online_now: bool = True,
) -> BatchReport:
    settings = get_settings()
    offline = OfflineStore(settings.offline_dir)
    if validated is not None:
        batch, results = validated
    else:
        try:
            # A plain call, not a task: an unreadable batch is an expected outcome with a clear
            # message, not a crash whose traceback belongs in the logs.
            batch = read_batch(batch_dir, use_case.tables)
        except BatchUnreadable as error:
            return reject_unreadable(
                batch_dir, error, settings.quarantine_dir, offline.count_rows(use_case.event_table)
            )
        results = validate(batch, use_case, settings)  # in parallel with other ingests
    outcome = ingest_validated_batch(
        batch,
        results,
        use_case,
        settings,
        offline,
        feature_store=feature_store if online_now else None,
        run=as_task,
    )
    docs = data_docs_index(settings.gx_root)  # updated once the run's batches are validated
    return batch_report(
        batch,
        outcome.results,
        outcome.decision,
        use_case,
        outcome.quarantine_path,
        offline.count_rows(use_case.event_table),
        docs,
    )


@flow(
    name="ingest",
    flow_run_name=from_parameters(batch_dirs_run_name("ingest")),
    log_prints=True,
    persist_result=True,
    result_serializer=RESULT_SERIALIZER,
)
def ingest(batch_dirs: list[Path] | None = None) -> IngestResult:
    """Ingest landed batches in order (default, as scheduled: every batch in the landing zone
    not yet ingested nor rejected), after finishing what a killed run left half-done. A
    rejected batch fails the run (`BatchesRejected`) after every batch was tried; the exception
    carries the whole result. An unsafe batch id fails it before anything runs (`UserError`)."""
    settings = setup()
    use_case = active_use_case(settings)
    offline = OfflineStore(settings.offline_dir)
    check_batch_ids(batch_dirs or [])
    finish_committed(settings, use_case, offline)
    if batch_dirs is None:
        batch_dirs = pending_batches(settings.landing_dir, settings.quarantine_dir, offline)
    # By the batches' ids (a manifest's, where it differs from its folder's name), now known.
    name_flow_run(batches_run_name("ingest", check_batch_ids(batch_dirs)))
    validated: dict[Path, Validated] = {}
    if settings.engine == "ray" and batch_dirs:
        from prefect_ray import RayTaskRunner

        start_ray(settings)  # the task runner joins it
        validated = validate_batches.with_options(task_runner=RayTaskRunner())(batch_dirs)
    result = IngestResult([])
    # Opened (its definitions applied) at the first batch that passes, then kept for the run:
    # ~0.8 s a batch otherwise.
    feature_store = cache(lambda: open_store(settings, use_case))
    # On Ray a materialization is a distributed job with a fixed cost (~20 s a batch on 2 cores,
    # under a second locally): it runs once, after the last batch, for every batch not online.
    online_per_batch = settings.engine == "local"
    for batch_dir in batch_dirs:
        report = ingest_batch(
            batch_dir, use_case, feature_store, validated.get(batch_dir), online_per_batch
        )
        create_markdown_artifact(
            key=artifact_key("ingest", report.batch_id),
            markdown=report.markdown(),
            description=f"{report.status}: {report.reason}"[:500],
        )
        result.batches.append(report)
    if not online_per_batch and any(b.status == "ingested" for b in result.batches):
        sync_online(feature_store(), None, offline)
    if result.batches:
        # Once a run, not once a batch: renders the results not rendered yet, and the index.
        data_docs(settings.gx_root)
    if result.rejected:
        raise BatchesRejected(result)
    return result


def ingest_batches(batch_dirs: list[Path]) -> IngestResult:
    """Run the ingest flow; every batch's report, whether or not a batch was rejected."""
    try:
        return ingest(batch_dirs)
    except BatchesRejected as rejected:
        return rejected.result
