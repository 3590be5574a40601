"""The pages a person opens, opened as a person would: in a real browser (headless Chromium),
with the network off, scripts run. Each check is on what the browser rendered (the DOM after
scripts ran), not on the file; each page is also saved as a screenshot to look at.

    lifecycle page      entrypoints/lifecycle_page.py: the inline SVG plots and the days table
    Evidently report    monitoring/evidently_reports.py: the plotly charts and tables it draws
    GX data docs        after one ingested batch: the index rows and a validation page, with
                        no stylesheet or script from the internet

Chromium comes from Debian (`make browser`, which `make test` runs first).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from tests.support.session import START
from tests.support.stores import land_days

if TYPE_CHECKING:
    from entrypoints.lifecycle_story import Lifecycle

pytestmark = pytest.mark.integration

# Remote requests go to a closed port: a page that needs the internet renders without it.
OFFLINE = [
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is missing: `make browser` installs it (Debian's chromium).")
    return path


def render(page: Path, screenshot: Path, height: int = 900) -> str:
    """The page's DOM once its scripts ran (virtual time lets them finish), and a screenshot."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                *OFFLINE,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                f"--window-size=1200,{height}",
                f"--screenshot={screenshot}",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    assert screenshot.stat().st_size > 10_000, f"{screenshot}: an empty screenshot"
    return done.stdout


def remote_assets(dom: str) -> list[str]:
    """Stylesheets and scripts the page would load from the internet."""
    return re.findall(r'<(?:link|script)\b[^>]*\b(?:href|src)="(https?://[^"]*)"', dom)


def lifecycle(days: int = 8) -> tuple[Lifecycle, date]:
    """A small lifecycle, built by hand: drift from day 4, an alert on day 5, a retrain."""
    from entrypoints.lifecycle_story import Day, Lifecycle, Scenario

    start = date(2026, 1, 1)
    monitored = []
    for i in range(days):
        drift = 0.0 if i < 4 else min(0.2 * (i - 3), 1.0)
        monitored.append(
            Day(
                day=f"2026-01-{8 + i:02d}",
                rows=10_000,
                quarantined=400 if i == 2 else 12,
                champion_version="1" if i < 6 else "2",
                metrics={
                    "nce": 0.90 + 0.02 * drift,
                    "reference_nce": 0.90,
                    "oracle_nce": 0.85,
                },
                drift_share=drift,
                score_drift=0.1 * drift,
                decision="alert" if i == 5 else ("retrain" if i == 4 else "none"),
                reason="inputs drifted" if i >= 4 else "within the card's limits",
                served=9_000 + 50 * i,
                refused=300 if i == 2 else 0,
                retrained={
                    "decision": "promoted",
                    "version": "2",
                    "run_url": "http://127.0.0.1:5000/#/runs/x",
                    "reason": "better NCE",
                }
                if i == 4
                else None,
                links={
                    "evidently_reports": [f"/reports/drift-2026-01-{8 + i:02d}.html"],
                    "prefect_flow_run": f"run-{i}",
                    "data_docs": "/gx/uncommitted/data_docs/local_site/index.html",
                },
            )
        )
    result = Lifecycle(
        scenario=Scenario(days=days + 7, events_per_day=10_000, drift_day=4 + 7, incident_day=9),
        bootstrap={"model_version": "1", "days": ["2026-01-01"], "run_url": "http://x/run"},
        days=monitored,
        summary_html="",
    )
    return result, start


def evidently_report(path: Path) -> Path:
    """A drift report of two small synthetic windows, the second one shifted."""
    from monitoring.evidently_reports import drift_report, save_html

    rng = np.random.default_rng(0)

    def window(rows: int, shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "ad_position": rng.integers(1, 6, rows),
                "device": rng.choice(["mobile", "desktop", "tablet"], rows),
                "user_ctr": rng.normal(0.02 + shift, 0.01, rows),
                "score": rng.beta(2, 60, rows) + shift,
            }
        )

    snapshot, _ = drift_report(
        window(400, 0.0),
        window(400, 0.01),
        {"device"},
        0.1,
        0.1,
        timestamp=datetime(2026, 1, 10, tzinfo=UTC),
        tags=["drift"],
        metadata={},
    )
    return save_html(snapshot, path)


def test_the_lifecycle_page_shows_its_plots_and_days(settings, use_case, tmp_path) -> None:
    from entrypoints.lifecycle_page import write_page

    result, start = lifecycle()
    page = write_page(settings, use_case, result, start)

    dom = render(page, tmp_path / "lifecycle.png", height=1400)

    svg = re.search(r'<figure id="plots">\s*<svg.*?</svg>', dom, re.S)
    assert svg, "no inline SVG plot"
    assert len(re.findall(r"<path\b", svg[0])) > 50  # lines, bars and markers were drawn
    table = re.search(r'<table id="days">.*?</table>', dom, re.S)
    assert table and len(re.findall(r"<tr\b", table[0])) == len(result.days) + 1  # + header
    assert "2026-01-15" in table[0] and "v2 promoted" in table[0]
    assert len(re.findall(r'<a href="file://[^"]*drift-2026-01-\d\d\.html"', table[0])) == len(
        result.days
    )
    assert not remote_assets(dom)


def test_an_evidently_report_draws_its_charts_offline(tmp_path) -> None:
    page = evidently_report(tmp_path / "drift.html")

    dom = render(page, tmp_path / "evidently.png")

    # Evidently's scripts (inlined in the file) draw plotly charts and MUI tables: nothing of it
    # is in the file before they run.
    assert len(re.findall(r'class="main-svg"', dom)) >= 2
    assert len(re.findall(r'class="MuiTableRow-root', dom)) >= 3
    assert "Dataset Drift" in dom and "user_ctr" in dom
    assert not remote_assets(dom)


def test_gx_data_docs_render_offline(settings, use_case, prefect_api_url, tmp_path) -> None:
    from flows.ingest import ingest
    from ingestion.gx_data_docs import OFFLINE_STYLES, data_docs_index

    (batch,) = land_days(settings.landing_dir, days=1, events_per_day=300)
    report = ingest([batch]).batches[0]
    index = data_docs_index(settings.gx_root)
    assert report.data_docs == str(index)

    dom = render(index, tmp_path / "gx-index.png")

    assert not remote_assets(dom)
    assert OFFLINE_STYLES.strip() in dom  # the local stylesheet, inlined by GX
    rows = re.findall(r"<tr><td>.*?</tr>", dom, re.S)
    validations = [r for r in rows if f"{START:%Y-%m-%d}" in r]  # run name: the batch id
    assert len(validations) == len(use_case.tables)
    for table in use_case.tables:
        assert any(f"<td>{table.name}</td>" in r for r in validations), table.name
    link = re.search(r'href="(validations/[^"]*/landing-impressions\.html)"', dom)
    assert link, "no link to the impressions validation page"

    page_dom = render(index.parent / link[1], tmp_path / "gx-validation.png")

    assert not remote_assets(page_dom)
    assert "Data asset: impressions" in " ".join(re.sub(r"<[^>]+>", " ", page_dom).split())
    assert len(re.findall(r"<tr\b", page_dom)) > 20  # the expectations' tables
