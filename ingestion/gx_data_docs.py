"""The GX data docs, readable offline: the pages of new validation results, the suites and the
index, rewritten so they render without the internet (no CDN stylesheet or script, GX's images
from the site's own folder, the index tables written out as rows)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from ingestion.gx_project import gx_context, gx_lock

log = logging.getLogger(__name__)

DATA_DOCS_SITE = "local_site"
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

    context = gx_context(gx_root)
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
