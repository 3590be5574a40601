"""Validation with Great Expectations: split each table into clean and quarantined rows.

Each table has a reviewed suite in `expectations/<use case>/<table>.json` (GX's own format).
Row-level expectations (nulls, ranges, sets, uniqueness) mark rows: a failing row goes to
quarantine with every rule it broke. Table-level expectations (columns, types, row counts) and
expectations that could not run make the whole table unusable. Rows an earlier batch already
brought in are quarantined too (`already_ingested`, see `mark_already_ingested`). The gate then
decides, from the requirements card, whether the batch goes on.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

log = logging.getLogger(__name__)

REASON_COLUMN = "_reasons"
# The reason of an event row whose id an earlier, committed batch already stored.
ALREADY_INGESTED = "already_ingested"
BATCH_REJECTED = "batch rejected"
# Row ids of failures are all we need; unexpected values and index queries cost time at 1M rows.
RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "partial_unexpected_count": 0,
    "return_unexpected_index_query": False,
    "exclude_unexpected_values": True,
}


@dataclass
class TableValidation:
    table: str
    clean: pd.DataFrame
    quarantined: pd.DataFrame  # the failing rows as landed, plus REASON_COLUMN
    problems: list[str] = field(default_factory=list)  # table-level: the table is unusable
    already_in: tuple[str, ...] = ()  # batches that already hold rows of this one

    @property
    def rows(self) -> int:
        return len(self.clean) + len(self.quarantined)

    @property
    def already_ingested(self) -> int:
        return int((self.quarantined[REASON_COLUMN] == ALREADY_INGESTED).sum())

    @property
    def failing_fraction(self) -> float:
        """The share of rows that broke a rule. Rows already ingested are left out: a resent
        row says nothing about the quality of the data."""
        considered = self.rows - self.already_ingested
        failing = len(self.quarantined) - self.already_ingested
        return failing / considered if considered else 0.0

    def reason_counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for reasons in self.quarantined[REASON_COLUMN]:
            counts.update(reasons.split("; "))
        return dict(sorted(counts.items()))


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    row_reason: str = BATCH_REJECTED  # what a refused batch's clean rows are quarantined for


def validate_table(
    frame: pd.DataFrame, suite_path: Path, gx_root: Path, closed_at: datetime
) -> TableValidation:
    """Run one reviewed suite over one table; nothing is dropped, every row lands on one side."""
    from great_expectations.exceptions.resource_freshness import ResourceFreshnessAggregateError

    table = suite_path.stem
    context = _context(gx_root)
    frame = frame.reset_index(drop=True)
    try:
        result = _run(_validation_definition(context, table, suite_path), frame, closed_at)
    except ResourceFreshnessAggregateError:
        # Another process (a scheduled run, the CLI) registered the suite again in the shared
        # GX project since this one did: register it again here, and validate.
        _landing_source.cache_clear()
        _validation_definition.cache_clear()
        result = _run(_validation_definition(context, table, suite_path), frame, closed_at)
    row_reasons: dict[int, list[str]] = {}
    problems: list[tuple[str | None, str]] = []  # (column, message)
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        failed_rows = outcome.result.get("unexpected_index_list")
        raised = (outcome.exception_info or {}).get("raised_exception")
        if raised or failed_rows is None:
            problems.append((config.kwargs.get("column"), _describe_table_failure(config, outcome)))
            continue
        reason = _rule_name(config.type, config.kwargs)
        for row in failed_rows:
            row_reasons.setdefault(int(row), []).append(reason)

    failed = pd.Index(sorted(row_reasons), dtype="int64")
    quarantined = frame.loc[failed].copy()
    quarantined[REASON_COLUMN] = ["; ".join(row_reasons[i]) for i in failed]
    clean = frame.drop(index=failed)
    log.info("%s: %d clean, %d quarantined", table, len(clean), len(quarantined))
    return TableValidation(table, clean, quarantined, _root_causes(problems, frame.columns))


def _run(definition: Any, frame: pd.DataFrame, closed_at: datetime) -> Any:
    # GX resolves the suite's "StringDtype" as pd.StringDtype(), whose storage follows this
    # option: scoped here so it names the arrow-backed strings the landing zone reads.
    with pd.option_context("mode.string_storage", "pyarrow"):
        return definition.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters={"closed_at": closed_at.isoformat()},
            result_format=RESULT_FORMAT,
        )


def mark_already_ingested(
    result: TableValidation, id_column: str, seen: pd.DataFrame
) -> TableValidation:
    """Move clean rows whose id is in `seen` (columns `id`, `batch_id`: ids earlier committed
    batches stored) to quarantine, with the reason `already_ingested`."""
    if seen.empty:
        return result
    duplicate = result.clean[id_column].isin(seen["id"])
    moved = result.clean[duplicate].assign(**{REASON_COLUMN: ALREADY_INGESTED})
    log.info("%s: %d rows were already ingested", result.table, len(moved))
    return TableValidation(
        result.table,
        result.clean[~duplicate],
        pd.concat([result.quarantined, moved]).sort_index(),
        result.problems,
        tuple(sorted(set(map(str, seen["batch_id"])))),
    )


def build_data_docs(gx_root: Path) -> Path:
    """Render GX data docs for every stored validation; return the index page."""
    context = _context(gx_root)
    context.build_data_docs()
    return gx_root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def gate(
    results: dict[str, TableValidation],
    max_failing_fraction: float,
    event_table: str | None = None,
) -> GateDecision:
    """Pass the batch unless a table is unusable, the batch brings no new event (a re-landed
    copy), or a table fails more rows than the card allows."""
    for name, result in results.items():
        if result.problems:
            return GateDecision(False, f"{name}: " + " ".join(result.problems))
    events = results.get(event_table) if event_table else None
    if events is not None and events.already_ingested and events.clean.empty:
        others = events.rows - events.already_ingested
        return GateDecision(
            False,
            f"{event_table}: no new row: {events.already_ingested} of {events.rows} rows were "
            f"already ingested by batch(es) {', '.join(events.already_in)}"
            + (f" and the other {others} failed validation" if others else "")
            + ": a re-landed copy. The whole batch is quarantined, nothing is stored.",
            row_reason=ALREADY_INGESTED,
        )
    for name, result in results.items():
        if result.failing_fraction > max_failing_fraction:
            return GateDecision(
                False,
                f"{name}: {result.failing_fraction:.1%} of rows failed validation, above the "
                f"card's max_failing_fraction of {max_failing_fraction:.1%}; "
                "the whole batch is quarantined.",
            )
    worst = max((r.failing_fraction for r in results.values()), default=0.0)
    return GateDecision(
        True, f"at most {worst:.2%} of rows failed per table (limit {max_failing_fraction:.1%})"
    )


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
def _context(gx_root: Path) -> AbstractDataContext:
    import great_expectations as gx

    gx_root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=gx_root)
    context.variables.progress_bars = {"globally": False}  # type: ignore[assignment]
    return context


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
