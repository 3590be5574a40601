"""The lifecycle page and the run's closing words say what the run's records say: each sentence
is drawn from the days told (a story built here by hand, with other dates and versions than
`make run`'s, so no fixed text can pass), and no legend of the plots covers data."""

from __future__ import annotations

import re
from datetime import date, timedelta

from entrypoints.lifecycle_page import plot_figure, scenario_in_words, write_page
from entrypoints.lifecycle_story import Day, Lifecycle, Scenario, day_label, what_happened

START = date(2025, 3, 3)
BOOTSTRAP_DAYS = 7


def _nce(nce: float) -> dict[str, float | None]:
    return {"nce": nce, "reference_nce": 0.90, "oracle_nce": None}


def _day(i: int, **changes) -> Day:
    name = f"{START + timedelta(days=BOOTSTRAP_DAYS + i):%Y-%m-%d}"
    fields = {
        "day": name, "rows": 1_000, "quarantined": 0, "champion_version": "4",
        "metrics": _nce(0.90), "drift_share": 0.0,
        "score_drift": 0.01, "decision": "none", "reason": "healthy: fine", "served": 1_000,
        "links": {},
    }  # fmt: skip
    return Day(**{**fields, **changes})


def _story() -> Lifecycle:
    """An alert on monitored day 3, a rejected challenger v5 on day 4, v6 promoted on day 5 and
    serving from day 6 with a better NCE."""
    days = [_day(i) for i in range(8)]
    days[2] = _day(2, decision="alert", quarantined=40, refused=17,
                   reason="data incident: 4.0% of events quarantined")  # fmt: skip
    rejected = {"version": "5", "decision": "rejected", "reason": "worse"}
    promoted = {"version": "6", "decision": "promoted", "reason": "better"}
    days[3] = _day(3, decision="retrain", reason="performance: NCE 1.0",
                   metrics=_nce(1.0), retrained=rejected)  # fmt: skip
    days[4] = _day(4, decision="retrain", reason="drift in 2 of the last 3 windows: x",
                   metrics=_nce(1.02), retrained=promoted)  # fmt: skip
    for i in (5, 6, 7):
        days[i] = _day(i, champion_version="6", metrics=_nce(0.91 + i / 1000))
    scenario = Scenario(days=BOOTSTRAP_DAYS + 8, events_per_day=1_000, scenario="concept-drift",
                        drift_day=BOOTSTRAP_DAYS + 3, incident_day=BOOTSTRAP_DAYS + 2)  # fmt: skip
    return Lifecycle(scenario, {"model_version": "4", "days": ["x"], "run_url": ""}, days, "")


def test_the_story_in_words_is_drawn_from_the_days() -> None:
    story = _story()
    d = [day.day for day in story.days]

    assert what_happened(story) == [
        f"{d[2]} (monitored day 3): alert (data incident: 4.0% of events quarantined); 40 rows "
        "quarantined, 17 requests refused.",
        f"{d[3]} (monitored day 4): retrain (performance); challenger v5 rejected; v4 kept "
        "serving.",
        f"{d[4]} (monitored day 5): retrain (drift in 2 of the last 3 windows); challenger v6 "
        f"promoted, serving from {d[5]} (monitored day 6); NCE 1.0200 on {d[4]}, 0.9150 to "
        "0.9170 on the 3 days v6 served.",
        "At the end v6 is @champion (the first was v4).",
    ]


def _live(version: str, decision: str, ours: float = 0.95, theirs: float = 1.05) -> dict:
    return {
        "version": version, "decision": decision, "reason": f"{decision}: on live evidence",
        "metric": "nce", "labelled": 1_234, "judged": 1_000, "champion_performance": theirs,
        "challenger_performance": ours, "reports": [],
    }  # fmt: skip


def _shadow_story() -> Lifecycle:
    """v5 passes the gate on monitored day 2 and shadows v4 on day 3 (not enough labels yet)
    and day 4, is promoted on live evidence at day 4's close and serves from day 5; v6 shadows
    from day 6 and is rejected on live evidence at its close; v7 is still on trial at the end."""
    story = _story()
    trial = {"version": "5", "decision": "challenger", "reason": "challenger: passed the gate"}
    days = [_day(i) for i in range(9)]
    days[1] = _day(1, decision="retrain", reason="performance: NCE 1.0", metrics=_nce(1.0),
                   retrained=trial)  # fmt: skip
    days[2] = _day(2, decision="retrain", reason="performance: NCE 1.01", metrics=_nce(1.01),
                   challenger=_live("5", "wait"),
                   retrained={"note": "not retrained: v5 is on live trial (wait)"})  # fmt: skip
    days[3] = _day(3, decision="retrain", reason="performance: NCE 1.02", metrics=_nce(1.02),
                   challenger=_live("5", "promote", 0.9512, 1.0234),
                   retrained={"note": "not retrained: v5, promoted on live evidence"})  # fmt: skip
    days[4] = _day(4, champion_version="5", metrics=_nce(0.91))
    days[5] = _day(5, champion_version="5", decision="retrain", reason="drift: x",
                   retrained={**trial, "version": "6"})  # fmt: skip
    days[6] = _day(6, champion_version="5", challenger=_live("6", "reject", 0.93, 0.92))
    days[7] = _day(7, champion_version="5", decision="retrain", reason="drift: y",
                   retrained={**trial, "version": "7"})  # fmt: skip
    days[8] = _day(8, champion_version="5", challenger=_live("7", "wait"))
    story.days = days
    return story


def test_a_challenger_on_live_trial_is_told_to_its_live_verdict() -> None:
    story = _shadow_story()
    d = [day.day for day in story.days]

    assert what_happened(story) == [
        f"{d[1]} (monitored day 2): retrain (performance); challenger v5 passed the gate and "
        f"went on live trial beside v4; promoted on live evidence on {d[3]} (monitored day 4) "
        "(NCE 0.9512 vs v4's 1.0234 on the same 1,000 labelled requests), serving from "
        f"{d[4]} (monitored day 5); NCE 1.0200 on {d[3]}, 0.9000 to 0.9100 on the 5 days v5 "
        "served.",
        f"{d[2]} (monitored day 3): retrain (performance), no challenger: not retrained: v5 is "
        "on live trial (wait).",
        f"{d[5]} (monitored day 6): retrain (drift); challenger v6 passed the gate and went on "
        f"live trial beside v5; rejected on live evidence on {d[6]} (monitored day 7) (NCE "
        "0.9300 vs v5's 0.9200 on the same 1,000 labelled requests).",
        f"{d[7]} (monitored day 8): retrain (drift); challenger v7 passed the gate and went on "
        "live trial beside v5 for 1 day; the story ended before live evidence judged it.",
        "No alert.",
        "At the end v5 is @champion (the first was v4).",
    ]


def test_the_page_shows_champion_and_challenger_side_by_side(settings, use_case) -> None:
    story = _shadow_story()
    page = write_page(settings, use_case, story, START).read_text()
    assert "<th>challenger on live traffic</th>" in page
    assert "NCE 0.9512\n        vs v4 1.0234" in page or re.search(
        r"NCE 0\.9512\s+vs v4 1\.0234", page
    )
    # On the plot: both models' points on the judged days, and the trial's start.
    figure = plot_figure(story.days, use_case.card.gates.monitoring)
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "challenger, same live\nrequests (live evidence)" in legend
    assert "challenger on live\ntrial (next day)" in legend


def test_a_quiet_story_says_nothing_happened() -> None:
    story = _story()
    story.days = [_day(i) for i in range(3)]
    assert what_happened(story) == [
        "No alert.",
        "No retraining: v4 served every day.",
        "At the end v4 is @champion (the first was v4).",
    ]


def test_days_are_named_by_date_first_and_counted_among_the_monitored_days() -> None:
    story = _story()
    monitored = [day.day for day in story.days]
    assert day_label(monitored[0], monitored) == f"{monitored[0]} (monitored day 1)"
    assert day_label("2025-03-03", monitored) == "2025-03-03"  # a training day

    words = scenario_in_words(story, START, BOOTSTRAP_DAYS, plain_world="baseline")
    # The options count from the first day as 0: --incident-day 9 is the 10th day.
    assert f"data incident (bad rows, requests missing context) on {monitored[2]} " in words
    assert "(monitored day 3)" in words
    assert f"concept drift scenario changes the world from {monitored[3]} (monitored day 4)" in (
        words
    )


def test_the_page_prints_the_sentences_and_numbers_every_day(settings, use_case) -> None:
    story = _story()
    page = write_page(settings, use_case, story, START).read_text()

    listed = re.search(r'<ul id="happened">(.*?)</ul>', page, re.S)
    assert listed
    items = [re.sub(r"\s+", " ", i).strip() for i in re.findall(r"<li>(.*?)</li>", listed[1])]
    assert items == what_happened(story)
    for number, day in enumerate(story.days, start=1):
        assert f'{day.day}<div class="number">monitored day {number}</div>' in page


def test_no_legend_covers_a_plot(use_case) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = plot_figure(_story().days, use_case.card.gates.monitoring)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # lay it out: legends and axes in their final places
    renderer = canvas.get_renderer()
    legends = [a.get_legend() for a in figure.axes if a.get_legend() is not None]
    assert len(legends) == 4
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for axes in figure.axes:
            assert not box.overlaps(axes.get_window_extent(renderer)), legend.get_texts()[0]
