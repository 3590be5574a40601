"""The closed loop, end to end: `mlops run --json` with small sizes, real everything (flows on
the session's Prefect server, GX, Feast, MLflow, a real `bentoml serve` reached over HTTP,
Evidently). One run, several promises:

- baseline days: no retraining;
- the data-incident day: rows quarantined, requests refused, an alert, and no retraining;
- the concept drift: detected within two days of onset, a challenger promoted, served by the
  running service the next day, and performance recovers;
- the page says what the run's records say: each alert, each challenger and when a promoted one
  served, on the dates the records give (expected sentences derived here from the JSON).
"""

from __future__ import annotations

import html
import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.support.cli import cli_runner

pytestmark = pytest.mark.e2e

# 6,000 events a day (`make run` has 10,000) tell the same story with its margins: the retrained
# model well under the card's NCE floor (0.94 < 0.98), a recovery of 0.12 (> 0.05); at 4,000 it
# only just passed the floor (0.977). It costs ~25% less CPU than 10,000 (172 s vs 224 s).
DAYS, EVENTS_PER_DAY = 12, 6_000
INCIDENT_DAY, DRIFT_DAY = 8, 9  # day indexes; the first 7 days bootstrap the first champion
FIRST_MONITORED = 7
START = date(2026, 1, 1)  # the simulated story's first day (day index 0)
# ~2 minutes quiet; beside the rest of the suite and two CPU-bound processes it took over 5.
RUN_TIMEOUT_SECONDS = 1800


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> dict:
    run = cli_runner(tmp_path_factory.mktemp("lifecycle") / "home", prefect_api_url)
    code, result, stderr = run(
        "run",
        "--days", str(DAYS),
        "--events-per-day", str(EVENTS_PER_DAY),
        "--drift-day", str(DRIFT_DAY),
        "--incident-day", str(INCIDENT_DAY),
        timeout=RUN_TIMEOUT_SECONDS,
    )  # fmt: skip
    assert code == 0, stderr[-3000:]
    return result


def _day(result: dict, index: int) -> dict:
    return result["days"][index - FIRST_MONITORED]


def test_every_day_reports_the_promised_fields(lifecycle: dict) -> None:
    days = lifecycle["days"]
    assert len(days) == DAYS - FIRST_MONITORED
    for day in days:
        assert {
            "day", "rows", "quarantined", "champion_version", "metrics", "drift_share",
            "decision", "reason",
        } <= set(day)  # fmt: skip
        assert day["decision"] in ("none", "retrain", "alert") and day["reason"]
        assert day["rows"] == EVENTS_PER_DAY
    assert Path(lifecycle["summary_html"]).read_text().count("<tr>") == len(days) + 1


def test_baseline_days_do_not_retrain(lifecycle: dict) -> None:
    assert _day(lifecycle, FIRST_MONITORED)["decision"] == "none"


def test_data_incident_alerts_quarantines_and_does_not_retrain(lifecycle: dict) -> None:
    incident = _day(lifecycle, INCIDENT_DAY)
    assert incident["decision"] == "alert", incident["reason"]
    assert "data incident" in incident["reason"]
    assert incident["quarantined"] > 0 and incident["refused"] > 0
    assert incident["retrained"] is None


def test_concept_drift_is_detected_a_challenger_promoted_and_performance_recovers(
    lifecycle: dict,
) -> None:
    after_onset = lifecycle["days"][DRIFT_DAY - FIRST_MONITORED :]
    detected = [i for i, d in enumerate(after_onset) if d["decision"] == "retrain"]
    assert detected and detected[0] <= 1, [d["reason"] for d in after_onset]
    promoted = [
        (i, d["retrained"]["version"])
        for i, d in enumerate(after_onset)
        if d["retrained"] and d["retrained"]["decision"] == "promoted"
    ]
    assert promoted and promoted[0][0] <= 1, [d["retrained"] for d in after_onset]
    when, version = promoted[0]
    following = after_onset[when + 1 :]
    assert following, "no day left to see the recovery"
    # The running service picked the new champion up by itself.
    assert all(d["champion_version"] == version for d in following)
    degraded = after_onset[0]["metrics"]["nce"]
    for day in following:
        assert day["metrics"]["nce"] < degraded - 0.05, json.dumps(day)


def test_the_page_says_what_the_records_say(lifecycle: dict) -> None:
    page = Path(lifecycle["summary_html"]).read_text()
    listed = re.search(r'<ul id="happened">(.*?)</ul>', page, re.S)
    assert listed, "the page has no 'What happened' list"
    told = [html.unescape(" ".join(i.split())) for i in re.findall(r"<li>(.*?)</li>", listed[1])]
    days = lifecycle["days"]
    names = [d["day"] for d in days]

    def label(name: str) -> str:
        return f"{name} (monitored day {names.index(name) + 1})"

    def sentence_of(name: str, what: str) -> str:
        (found,) = [t for t in told if t.startswith(f"{label(name)}: {what}")]
        return found

    # The incident asked for, named by its date, is the day the records say alerted.
    incident = f"{START + timedelta(days=INCIDENT_DAY):%Y-%m-%d}"
    assert f"on {label(incident)}." in html.unescape(page)
    alerts = [d for d in days if d["decision"] == "alert"]
    assert [d["day"] for d in alerts] == [incident]
    assert len([t for t in told if ": alert (" in t]) == len(alerts)
    for day in alerts:
        said = sentence_of(day["day"], "alert")
        assert f"{day['quarantined']:,} rows quarantined" in said
        assert f"{day['refused']:,} requests refused" in said
    # Every challenger, with its fate, on the day it was trained; a promoted one from the first
    # day the records say it served.
    challengers = [(i, d) for i, d in enumerate(days) if (d["retrained"] or {}).get("version")]
    assert challengers
    for i, day in challengers:
        challenger = day["retrained"]
        said = sentence_of(day["day"], "retrain")
        assert f"challenger v{challenger['version']} {challenger['decision']}" in said
        if challenger["decision"] == "promoted":
            served = [
                d["day"] for d in days[i + 1 :] if d["champion_version"] == challenger["version"]
            ]
            assert served and f"serving from {label(served[0])}" in said, said
        else:
            assert f"v{day['champion_version']} kept serving" in said
    promoted = [
        d["retrained"]["version"]
        for _, d in challengers
        if d["retrained"]["decision"] == "promoted"
    ]
    assert told[-1].startswith(f"At the end v{promoted[-1]} is @champion")
