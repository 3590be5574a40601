"""The closed loop, end to end, as a user runs it: `mlops run` with small sizes, real everything
(flows on the run's own Prefect server, as on a laptop, GX, Feast, MLflow, a real `bentoml
serve` reached over HTTP, Evidently). The run is interrupted once with Ctrl-C on its first
monitored day and run again, which finishes the story. One story, several promises:

- Ctrl-C is an interruption, not a failure: exit 130 within seconds, nothing the run started
  left running, what a rerun does said; the rerun goes on from the day it had not finished;
- baseline days: no retraining;
- the data-incident day: rows quarantined, requests refused, an alert, and no retraining;
- the concept drift: detected within two days of onset, a challenger that passed the gate
  shadows the champion for a day and is promoted on that day's live evidence, served by the
  running service the next day, and performance recovers;
- the page says what the run's records say: each alert, each challenger and when a promoted one
  served, on the dates the records give (expected sentences derived here from the JSON).
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.support.cli import MLOPS
from tests.support.processes import (
    Output,
    alive,
    described,
    process_floor,
    session_processes,
)

pytestmark = pytest.mark.e2e

# 6,000 events a day (`make run` has 10,000) tell the same story with its margins: the retrained
# model well under the card's NCE floor (0.94 < 0.98), a recovery of 0.12 (> 0.05); at 4,000 it
# only just passed the floor (0.977). It costs ~25% less CPU than 10,000 (172 s vs 224 s).
# 13 days: the challenger passes the gate on the second day of the drift, shadows the third, and
# serves the fourth.
DAYS, EVENTS_PER_DAY = 13, 6_000
INCIDENT_DAY, DRIFT_DAY = 8, 9  # day indexes; the first 7 days bootstrap the first champion
FIRST_MONITORED = 7
START = date(2026, 1, 1)  # the simulated story's first day (day index 0)
RUN = ["run", "--days", str(DAYS), "--events-per-day", str(EVENTS_PER_DAY),
       "--drift-day", str(DRIFT_DAY), "--incident-day", str(INCIDENT_DAY)]  # fmt: skip
# ~2 minutes quiet; beside the rest of the suite and two CPU-bound processes it took over 5.
RUN_TIMEOUT_SECONDS = 1800
EXIT_BOUND_SECONDS = 10  # the promise, on a quiet machine
# The way out is stopping processes (the service, its workers, the Prefect server). On a busy
# machine that is slower for everyone: the bound grows by this many times what starting and
# reaping a bare interpreter takes at the same moment (~0.03 s quiet: +0.6 s).
PROCESS_FLOORS_OF_SLACK = 20


@dataclass(frozen=True)
class Interruption:
    code: int | None
    seconds: float  # from SIGINT to the exit
    told: float | None  # from SIGINT to the "interrupted" line
    bound: float
    output: str
    started: list[str]  # the processes the run had started, described
    left: list[str]  # those still running after it exited, and any of its session's


@dataclass(frozen=True)
class Story:
    home: Path
    interruption: Interruption
    result: dict  # the rerun's `--json`: every monitored day


def _interrupt_on_the_first_monitored_day(env: dict[str, str]) -> Interruption:
    # A session of its own: the signal goes to the group, as a terminal's Ctrl-C does.
    run = subprocess.Popen(
        [MLOPS, *RUN],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(run)
    try:
        first_monitored = f"{START + timedelta(days=FIRST_MONITORED):%Y-%m-%d}: serving"
        output.wait_for(first_monitored, run, RUN_TIMEOUT_SECONDS)
        time.sleep(2)  # into the day: its traffic through the service
        started = session_processes(run.pid)
        started_described = described(started)  # while they can still be asked
        signalled = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)
        code = run.wait(timeout=60)
        seconds = time.monotonic() - signalled
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    deadline = time.monotonic() + 5  # the init process reaps the orphans of a dead parent
    while (left := [p for p in started if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    text = output.text  # all of it: the reader is done
    arrived = zip(output.arrived, output.lines, strict=True)
    told = [at - signalled for at, line in arrived if "interrupted (" in line]
    return Interruption(
        code=code,
        seconds=seconds,
        told=told[0] if told else None,
        bound=EXIT_BOUND_SECONDS + PROCESS_FLOORS_OF_SLACK * process_floor(),
        output=text,
        started=started_described,
        left=described([*left, *session_processes(run.pid)]),
    )


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    home = tmp_path_factory.mktemp("lifecycle") / "home"
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "MLOPS_SERVING__INFRA_CHECK": "false",  # tested in tests/integration/serving/
    }
    env.pop("PREFECT_API_URL", None)  # its own ephemeral Prefect server, as on a laptop
    interruption = _interrupt_on_the_first_monitored_day(env)
    rerun = subprocess.run(
        [MLOPS, *RUN, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return Story(home, interruption, json.loads(rerun.stdout))


@pytest.fixture(scope="module")
def lifecycle(story: Story) -> dict:
    return story.result


@pytest.mark.skipif(not hasattr(os, "getsid"), reason="process sessions are POSIX")
def test_ctrl_c_on_a_monitored_day_stops_everything_in_seconds_and_a_rerun_finishes(
    story: Story,
) -> None:
    stopped, text = story.interruption, story.interruption.output
    print(f"`mlops run` said it was interrupted {stopped.told} s and exited {stopped.code} "
          f"{stopped.seconds:.1f} s after SIGINT (bound {stopped.bound:.1f} s):\n"
          f"{text[-2000:]}")  # fmt: skip
    assert any("bentoml" in p for p in stopped.started), stopped.started
    assert any("prefect" in p for p in stopped.started), stopped.started
    assert stopped.code == 130, text[-3000:]
    assert stopped.seconds < stopped.bound, text[-3000:]
    assert not stopped.left, stopped.left
    assert "interrupted (SIGINT)" in text, text[-3000:]
    first_monitored = f"{START + timedelta(days=FIRST_MONITORED):%Y-%m-%d}"
    assert "a rerun" in text and f"continues from day {first_monitored}" in text, text[-3000:]
    assert "Traceback" not in text and "the platform failed" not in text, text[-3000:]
    assert "EventsWorker" not in text, text[-3000:]
    # The rerun told the story from the day the first run had not finished.
    assert story.result["days"][0]["day"] == first_monitored
    assert not (story.home / "run-progress.json").exists()  # finished: nothing to continue


def _day(result: dict, index: int) -> dict:
    return result["days"][index - FIRST_MONITORED]


def _promoted(day: dict) -> str | None:
    """The version that became @champion at the day's close: by the gate, or on live evidence."""
    trained, live = day["retrained"] or {}, day["challenger"] or {}
    if trained.get("decision") == "promoted":
        return trained["version"]
    return live["version"] if live.get("decision") == "promote" else None


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


def test_concept_drift_is_detected_a_challenger_shadows_is_promoted_and_performance_recovers(
    lifecycle: dict,
) -> None:
    after_onset = lifecycle["days"][DRIFT_DAY - FIRST_MONITORED :]
    detected = [i for i, d in enumerate(after_onset) if d["decision"] == "retrain"]
    assert detected and detected[0] <= 1, [d["reason"] for d in after_onset]
    # The card shadows: a model that passed the gate becomes the @challenger, not the champion.
    trials = [
        (i, d["retrained"]["version"])
        for i, d in enumerate(after_onset)
        if (d["retrained"] or {}).get("decision") == "challenger"
    ]
    assert trials and trials[0][0] <= 1, [d["retrained"] for d in after_onset]
    when, version = trials[0]
    # The next day the champion answers, the challenger is scored in the shadow, and once the
    # day's clicks are in, live evidence promotes it.
    shadowed = after_onset[when + 1]
    live = shadowed["challenger"]
    assert live["version"] == version and live["decision"] == "promote", live
    assert shadowed["champion_version"] != version
    assert live["judged"] > 0 and live["interval"][0] > 0, live
    assert _promoted(shadowed) == version
    following = after_onset[when + 2 :]
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
    # Every challenger, with its fate, on the day it was trained: rejected by the gate, or on
    # live trial to its live verdict; a promoted one from the first day the records say it served.
    challengers = [(i, d) for i, d in enumerate(days) if (d["retrained"] or {}).get("version")]
    assert challengers
    for i, day in challengers:
        challenger, version = day["retrained"], day["retrained"]["version"]
        said = sentence_of(day["day"], "retrain")
        if challenger["decision"] == "rejected":
            assert f"challenger v{version} rejected; v{day['champion_version']} kept serving" in (
                said
            )
            continue
        assert challenger["decision"] == "challenger", challenger
        assert f"challenger v{version} passed the gate and went on live trial" in said, said
        (judged,) = [d for d in days[i + 1 :] if _promoted(d) == version]
        assert f"promoted on live evidence on {label(judged['day'])}" in said, said
        served = [d["day"] for d in days[i + 1 :] if d["champion_version"] == version]
        assert served and f"serving from {label(served[0])}" in said, said
    promoted = [v for d in days if (v := _promoted(d))]
    assert told[-1].startswith(f"At the end v{promoted[-1]} is @champion")


def test_batch_prediction_scores_the_newest_landed_day_with_the_champion(
    story: Story, prefect_api_url: str, use_case
) -> None:
    """`mlops predict` after the story, as a user would: the landing zone's newest day, every
    row scored by the final @champion (a real flow run, on the session's Prefect server)."""
    import pandas as pd

    env = {**os.environ, "MLOPS_HOME": str(story.home), "PREFECT_API_URL": prefect_api_url}
    done = subprocess.run(
        [MLOPS, "predict", "--json"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    promoted = [v for d in story.result["days"] if (v := _promoted(d))]
    assert result["model_version"] == promoted[-1]
    assert result["rows"] == result["scored"] == EVENTS_PER_DAY and result["written"]
    scores = pd.read_parquet(result["scores_path"])
    assert len(scores) == EVENTS_PER_DAY and scores[use_case.score_name].between(0, 1).all()
