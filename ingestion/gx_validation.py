"""Validation with Great Expectations: split each table of a batch into clean and quarantined
rows.

Each table has a reviewed suite in `expectations/<use case>/<table>.json` (GX's own format),
run through the table's checkpoint in the shared GX project (`ingestion.gx_project`).
Row-level expectations (nulls, ranges, sets, uniqueness) mark rows: a failing row goes to
quarantine with every rule it broke. Table-level expectations (columns, types, row counts) and
expectations that could not run make the whole table unusable (`TableValidation.problems`).
The platform's own rules (`ingestion.row_rules`: ±inf, id ranges, naive timestamps) apply to
every use case beside its suite, and of a duplicated id only the copies are quarantined.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ingestion.gx_project import gx_context, gx_lock
from ingestion.row_rules import (
    copies_of_duplicates,
    naive_timestamp_columns,
    naive_timestamps_problem,
    row_reasons,
)
from ingestion.table_validation import REASON_COLUMN, TableValidation
from mlops.config.settings import Settings
from mlops.contracts.batches import LandedBatch
from mlops.contracts.usecase import UseCase

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

log = logging.getLogger(__name__)

# Row ids of failures are all we need; unexpected values and index queries cost time at 1M rows.
RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "partial_unexpected_count": 0,
    "return_unexpected_index_query": False,
    "exclude_unexpected_values": True,
}


def validate_batch(
    batch: LandedBatch, use_case: UseCase, settings: Settings
) -> dict[str, TableValidation]:
    """Every table of the batch through its reviewed suite and the platform's rules."""
    # Ids the service takes as keys, wherever a table carries them.
    keys = {*use_case.entity_keys, *(t.id_column for t in use_case.tables)}
    return {
        name: validate_table(
            frame,
            use_case.suites_dir / f"{name}.json",
            settings.gx_root,
            batch.closed_at,
            batch.batch_id,
            key_columns=keys,
        )
        for name, frame in batch.tables.items()
    }


def validate_table(
    frame: pd.DataFrame,
    suite_path: Path,
    gx_root: Path,
    closed_at: datetime,
    batch_id: str,
    key_columns: Collection[str] = (),
) -> TableValidation:
    """Run one reviewed suite over one table through its GX checkpoint, and the platform's rules
    (`ingestion.row_rules`; `key_columns`: integer ids checked against the service's range); the
    result is stored under the run name `batch_id`. Nothing is dropped, every row lands on one
    side."""
    from great_expectations.exceptions.resource_freshness import ResourceFreshnessAggregateError

    table = suite_path.stem
    frame = frame.reset_index(drop=True)
    with gx_lock(gx_root):
        context = gx_context(gx_root)
        try:
            checkpoint = _checkpoint(context, table, suite_path)
            result = _run(context, checkpoint, frame, closed_at, batch_id)
        except ResourceFreshnessAggregateError:
            # Another process (a scheduled run, the CLI) registered the suite again in the
            # shared GX project since this one did: register it again here, and validate (under
            # the lock, nobody registers in between).
            _landing_source.cache_clear()
            _validation_definition.cache_clear()
            _checkpoint.cache_clear()
            checkpoint = _checkpoint(context, table, suite_path)
            result = _run(context, checkpoint, frame, closed_at, batch_id)
    reasons = row_reasons(frame, key_columns)
    naive = naive_timestamp_columns(frame)
    # (column, message); a naive timestamp column is its rules' root cause: said once, how to fix.
    problems: list[tuple[str | None, str]] = [(c, naive_timestamps_problem(c)) for c in naive]
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        failed_rows = outcome.result.get("unexpected_index_list")
        raised = (outcome.exception_info or {}).get("raised_exception")
        column = config.kwargs.get("column")
        if column in naive:
            continue
        if raised or failed_rows is None:
            problems.append((column, _describe_table_failure(config, outcome)))
            continue
        rows = [int(row) for row in failed_rows]
        if config.type == "expect_column_values_to_be_unique":
            rows = copies_of_duplicates(frame, column, rows)
        reason = _rule_name(config.type, config.kwargs)
        for row in rows:
            reasons.setdefault(row, []).append(reason)

    failed = pd.Index(sorted(reasons), dtype="int64")
    quarantined = frame.loc[failed].copy()
    quarantined[REASON_COLUMN] = ["; ".join(reasons[i]) for i in failed]
    clean = frame.drop(index=failed)
    log.info("%s: %d clean, %d quarantined", table, len(clean), len(quarantined))
    return TableValidation(table, clean, quarantined, _root_causes(problems, frame.columns))


def _run(
    context: AbstractDataContext,
    checkpoint: Any,
    frame: pd.DataFrame,
    closed_at: datetime,
    batch_id: str,
) -> Any:
    from great_expectations.core.run_identifier import RunIdentifier

    # An explicit run time: without one GX parses the run name as a date ("2026-01-01"), and a
    # batch validated again would overwrite its earlier result.
    run_id = RunIdentifier(run_name=batch_id, run_time=datetime.now(UTC))
    # GX resolves the suite's "StringDtype" as pd.StringDtype(), whose storage follows this
    # option: scoped here so it names the arrow-backed strings the landing zone reads.
    with pd.option_context("mode.string_storage", "pyarrow"):
        outcome = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters={"closed_at": closed_at.isoformat()},
            run_id=run_id,
        )
    ((key, result),) = outcome.run_results.items()
    # A dataframe batch's spec carries no asset name, so GX's page says "Data asset: None":
    # name it (the table) in the stored result.
    if result.asset_name and "data_asset_name" not in result.meta.get("batch_spec", {}):
        result.meta.setdefault("batch_spec", {})["data_asset_name"] = result.asset_name
        context.validation_results_store.set(key, result)
    return result


def _rule_name(expectation_type: str, kwargs: dict[str, Any]) -> str:
    rule = expectation_type.removeprefix("expect_column_values_to_").replace("be_", "")
    return f"{kwargs.get('column')}:{rule}"


def _describe_table_failure(config: Any, outcome: Any) -> str:
    kwargs, observed = config.kwargs, outcome.result.get("observed_value")
    if config.type == "expect_table_columns_to_match_set":
        missing = sorted(set(kwargs["column_set"]) - set(observed or []))
        return f"missing column(s) {', '.join(missing)}."
    if config.type == "expect_column_values_to_be_in_type_list":
        return (
            f"column {kwargs['column']} has type {observed}, expected one of {kwargs['type_list']}."
        )
    if config.type == "expect_table_row_count_to_be_between":
        bounds = f"{kwargs.get('min_value')}..{kwargs.get('max_value')}"
        return f"{observed} rows, outside the expected {bounds}."
    error = (outcome.exception_info or {}).get("exception_message") or "no row-level result"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"column {kwargs.get('column')} could not be checked by {config.type} ({first_line})."


def _root_causes(problems: list[tuple[str | None, str]], present: pd.Index) -> list[str]:
    """A missing column fails every rule on it: report the missing column, not each rule."""
    return [message for column, message in problems if column is None or column in present]


@cache
def _landing_source(context: AbstractDataContext) -> Any:
    """A fresh in-memory datasource once a process: one reloaded from a previous process's
    files is not bound to this context (GX raises MissingDataContextError)."""
    return context.data_sources.add_or_update_pandas("landing")


@cache
def _validation_definition(context: AbstractDataContext, table: str, suite_path: Path) -> Any:
    """Register the reviewed suite and a whole-dataframe batch for `table` (once a process)."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuite

    suite = context.suites.add_or_update(ExpectationSuite(**json.loads(suite_path.read_text())))
    asset = _landing_source(context).add_dataframe_asset(table)
    batch = asset.add_batch_definition_whole_dataframe("whole")
    return context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=table, data=batch, suite=suite)
    )


@cache
def _checkpoint(context: AbstractDataContext, table: str, suite_path: Path) -> Any:
    """The table's checkpoint: its validation definition, with the result format the row split
    needs. No actions: data docs are updated once per ingest run
    (`ingestion.gx_data_docs.build_data_docs`)."""
    import great_expectations as gx

    definition = _validation_definition(context, table, suite_path)
    return context.checkpoints.add_or_update(
        gx.Checkpoint(name=table, validation_definitions=[definition], result_format=RESULT_FORMAT)
    )
