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
import os
import re
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.stores.offline_store import exclusive

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
DATA_DOCS_SITE = "local_site"
GX_LOCK = "gx.lock"  # in MLOPS_HOME/gx, beside the GX project
# GX's pages link Bootstrap, bootstrap-table, jQuery, Font Awesome and Vega from CDNs, and its
# logo from its own web host: offline they render blank. These tags go, and the index tables
# are written out as rows (`_offline_page`).
_REMOTE_TAG = re.compile(
    r'<link\b[^>]*\bhref="https?://[^"]*"[^>]*>|<script\b[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>'
)
_GX_ASSET = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/(?P<name>[\w.-]+)"
    r"(?:\?[^\"')]*)?"
)
_BOOTSTRAP_TABLE = re.compile(
    r'<table\s+id="(?P<id>[^"]+)"\s+class="(?P<classes>[^"]*)"\s*data-toggle="table"\s*>\s*</table>'
)


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
    frame: pd.DataFrame, suite_path: Path, gx_root: Path, closed_at: datetime, batch_id: str
) -> TableValidation:
    """Run one reviewed suite over one table through its GX checkpoint; the result is stored
    under the run name `batch_id`. Nothing is dropped, every row lands on one side."""
    from great_expectations.exceptions.resource_freshness import ResourceFreshnessAggregateError

    table = suite_path.stem
    frame = frame.reset_index(drop=True)
    with gx_lock(gx_root):
        context = _context(gx_root)
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


def data_docs_index(gx_root: Path) -> Path:
    """The index page of the GX data docs site (written by `build_data_docs`)."""
    return gx_root / "gx" / "uncommitted" / "data_docs" / DATA_DOCS_SITE / "index.html"


def build_data_docs(gx_root: Path) -> Path:
    """Update the GX data docs: render the validation results that have no page yet (those of
    the runs since the last update; every one when the offline styles are new), the suites and
    the index, readable offline. Return the index page. `context.build_data_docs()` alone
    renders every stored result again."""
    with gx_lock(gx_root):
        return _build_data_docs(gx_root)


def _build_data_docs(gx_root: Path) -> Path:
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = _context(gx_root)
    index = data_docs_index(gx_root)
    site = index.parent
    styles = gx_root / "gx" / "plugins" / "custom_data_docs" / "styles"
    stylesheet = styles / "data_docs_custom_styles.css"
    # Pages written before these styles (an older home, older styles) are all written again.
    restyled = not stylesheet.exists() or stylesheet.read_text() != OFFLINE_STYLES
    if restyled:
        styles.mkdir(parents=True, exist_ok=True)
        stylesheet.write_text(OFFLINE_STYLES)

    def page(key: Any) -> Path:
        section = "validations" if isinstance(key, ValidationResultIdentifier) else "expectations"
        return site.joinpath(section, *key.to_tuple()).with_suffix(".html")

    new = [
        key
        for key in context.validation_results_store.list_keys()
        if isinstance(key, ValidationResultIdentifier) and (restyled or not page(key).exists())
    ]
    suites = [
        key
        for key in context.expectations_store.list_keys()
        if isinstance(key, ExpectationSuiteIdentifier)
    ]
    # Never an empty list of resources: that renders every stored result again. (GX's own
    # UpdateDataDocsAction passes results and suites together, as here; its annotation says
    # one kind or the other.)
    resources: Any = [*new, *suites]
    context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=resources)
    for path in [index, *map(page, [*new, *suites])]:
        if path.exists():
            path.write_text(_offline_page(path.read_text(), path, site))
    log.info("data docs: %d new validation page(s)", len(new))
    return index


def _offline_page(html: str, path: Path, site: Path) -> str:
    """A GX page that renders without the internet: no stylesheet or script from a CDN (the
    site's `OFFLINE_STYLES`, inlined by GX, stand in for them), GX's images from the site's
    own static folder, and the index tables (filled by bootstrap-table scripts from a CDN)
    written out as HTML rows."""
    html = _REMOTE_TAG.sub("", html)

    def local_image(match: re.Match[str]) -> str:
        image = site / "static" / "images" / match["name"]
        return os.path.relpath(image, path.parent) if image.exists() else ""

    html = _GX_ASSET.sub(local_image, html)
    return _BOOTSTRAP_TABLE.sub(_static_table, html)


def _static_table(match: re.Match[str]) -> str:
    import ast
    from html import escape

    script = re.search(
        r"\$\('#" + re.escape(match["id"]) + r"'\)\.bootstrapTable\(\s*Object\.assign\(\s*\{\s*"
        r"columns: (?P<columns>\[.*?\]),\s*data: (?P<data>\[.*?\]),\s*toolbar:",
        match.string[match.end() :],
        re.S,
    )
    if script is None:
        return match[0]
    columns = ast.literal_eval(script["columns"])
    rows = ast.literal_eval(script["data"])
    head = "".join(f"<th>{escape(str(c.get('title', '')))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        link = row.get("_table_row_link_path")
        for column in columns:
            cell = str(row.get(column["field"]) or "")
            if link and "<" not in cell:  # the first plain cell links to the row's page
                cell, link = f'<a href="{escape(link)}">{cell}</a>', None
            cells.append(f"<td>{cell}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table id="{match["id"]}" class="table table-sm {match["classes"]}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


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


def gx_lock(gx_root: Path) -> AbstractContextManager[bool]:
    """Held while this process uses the GX project: GX writes its files (the project's config,
    suites, checkpoints, data docs pages) in place, so another ingest on the same home could
    read one half-written, or register its suite between this one's registration and run."""
    return exclusive(gx_root / GX_LOCK)


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


@cache
def _checkpoint(context: AbstractDataContext, table: str, suite_path: Path) -> Any:
    """The table's checkpoint: its validation definition, with the result format the row split
    needs. No actions: data docs are updated once per ingest run (`build_data_docs`)."""
    import great_expectations as gx

    definition = _validation_definition(context, table, suite_path)
    return context.checkpoints.add_or_update(
        gx.Checkpoint(name=table, validation_definitions=[definition], result_format=RESULT_FORMAT)
    )


# What the data docs use of Bootstrap 4, bootstrap-table and Font Awesome, in a few rules: GX
# inlines the project's `plugins/custom_data_docs/styles/data_docs_custom_styles.css` in every
# page, so the pages need no stylesheet from the internet.
OFFLINE_STYLES = """
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  color: #212529; background: #fff; }
a { color: #0062cc; text-decoration: none; } a:hover { text-decoration: underline; }
h1, h2, h3, h4, h5, h6 { margin: .5rem 0; font-weight: 500; line-height: 1.2; }
.navbar { display: flex; align-items: center; padding: .5rem 1rem; background: #fff; }
.border-bottom { border-bottom: 1px solid #dee2e6; }
.sticky-top { position: sticky; top: 0; z-index: 1020; }
.d-flex { display: flex; } .align-items-center { align-items: center; } .d-none { display: none; }
.breadcrumb { list-style: none; margin: 0 0 0 .5rem; padding: .25rem .75rem; background: #f8f9fa;
  border-radius: .25rem; }
.breadcrumb-item + .breadcrumb-item::before { content: "/"; padding: 0 .5rem; color: #6c757d; }
.container-fluid { box-sizing: border-box; width: 100%; padding: 1.5rem 2rem; }
.row { display: flex; flex-wrap: wrap; margin: 0 -15px; }
.row > [class*="col-"] { box-sizing: border-box; position: relative; width: 100%;
  padding: 0 15px; }
@media (min-width: 768px) {
  .d-md-inline-flex { display: inline-flex !important; }
  .d-md-block { display: block !important; }
  .col-md-2 { flex: 0 0 16.667%; max-width: 16.667%; }
  .col-md-10 { flex: 0 0 83.333%; max-width: 83.333%; }
  .col-md-6 { flex: 0 0 50%; max-width: 50%; }
}
.sticky { position: sticky; top: 90px; }
.card { margin-bottom: 1rem; border: 1px solid rgba(0, 0, 0, .125); border-radius: .25rem; }
.card-header { padding: .5rem 1rem; background: rgba(0, 0, 0, .03);
  border-bottom: 1px solid rgba(0, 0, 0, .125); }
.card-body { padding: 1rem; }
.table { width: 100%; margin-bottom: 1rem; border-collapse: collapse; }
.table th, .table td { padding: .5rem; vertical-align: top; text-align: left;
  border-top: 1px solid #dee2e6; }
.table thead th { border-bottom: 2px solid #dee2e6; }
.table-sm th, .table-sm td { padding: .3rem; }
.table-responsive { display: block; width: 100%; overflow-x: auto; }
.badge { display: inline-block; padding: .2em .4em; font-size: 75%; font-weight: 700;
  line-height: 1; border-radius: .25rem; }
.badge-secondary { color: #fff; background: #6c757d; }
.alert { padding: .5rem 1rem; margin-bottom: .5rem; border-radius: .25rem; }
.alert-secondary { background: #e2e3e5; }
.text-success { color: #28a745; } .text-danger { color: #dc3545; }
.nav { display: flex; flex-wrap: wrap; list-style: none; padding: 0; margin: 0; }
.nav-tabs { border-bottom: 1px solid #dee2e6; margin: 1rem 0 .5rem; }
.nav-link { display: block; padding: .25rem .5rem; }
.btn { display: inline-block; padding: .25rem .5rem; font-size: .875rem; color: #fff;
  background: #6c757d; border: 0; border-radius: .2rem; }
.btn-primary { background: #007bff; }
.fas, .fa { font-style: normal; }
.fa-check-circle::before { content: "\\2714"; } .fa-times::before { content: "\\2716"; }
.cooltip .top { display: none; }
@media (prefers-color-scheme: dark) {  /* GX's own dark rules darken the tables */
  body, .navbar, .card { color: #f1f1f1; background: #212529; }
  .alert-secondary, .card-header, .breadcrumb { background: #343a40; }
  a { color: #6ea8fe; } .navbar-brand a img { visibility: visible; filter: invert(1); }
}
/* The filters need the CDN's scripts; GX's footers advertise its website. */
[id$="-body-table-toolbar"], .card:has(.btn-group-toggle), footer { display: none !important; }
"""
