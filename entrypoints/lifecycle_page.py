"""The lifecycle page, `MLOPS_HOME/reports/lifecycle.html`: what `mlops run` told, as plots and
a table with a link to every screen (MLflow, Prefect, Evidently, GX). The page is
`templates/lifecycle.html`; this module turns a run into what the template shows."""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entrypoints.lifecycle_story import SIMULATOR, day_label, live_decision, what_happened
from mlops.config.settings import Settings
from mlops.contracts.usecase import UseCase

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from entrypoints.lifecycle_story import Day, Lifecycle
    from mlops.contracts.card import MonitoringGate

TEMPLATE = Path(__file__).with_name("templates") / "lifecycle.html"
COLORS = {"model": "#1d4ed8", "reference": "#6b7280", "ceiling": "#a16207", "oracle": "#15803d"}
MARKERS = {"alert": "#b91c1c", "rejected": "#d97706", "promoted": "#15803d", "trial": "#7c3aed"}


def write_page(settings: Settings, use_case: UseCase, result: Lifecycle, start: date) -> Path:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(TEMPLATE.parent), autoescape=select_autoescape(["html"])
    )
    page = environment.get_template(TEMPLATE.name).render(
        use_case=use_case.name,
        scenario=scenario_in_words(
            result,
            start,
            use_case.card.training.span_days,
            use_case.generator.scenarios[0] if use_case.generator else None,
        ),
        happened=what_happened(result),
        bootstrap=result.bootstrap,
        days=[_day_row(settings, day, i) for i, day in enumerate(result.days, start=1)],
        metric=use_case.task.primary,
        quality_columns=quality_columns(use_case),
        plot_svg=plot_svg(result.days, use_case.card.gates.monitoring),
        ui=settings.ui,
        home=settings.home,
        workspace=settings.monitoring_dir / "workspace",
        data_docs=_file_url(settings.gx_root / "gx/uncommitted/data_docs/local_site/index.html"),
    )
    path = settings.reports_dir / "lifecycle.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def quality_columns(use_case: UseCase) -> list[tuple[str, str]]:
    """(header, `Day.metrics` key) of the page's quality columns: the model's metric, the
    reference's and, in a simulation, the ceiling's (the best knowable) and the oracle's."""
    metric = use_case.task.primary
    simulated = (("ceiling", use_case.ceiling_column), ("oracle", use_case.oracle_column))
    return [
        (metric.upper(), metric),
        ("reference", f"reference_{metric}"),
        *((name, f"{name}_{metric}") for name, column in simulated if column is not None),
    ]


def scenario_in_words(
    result: Lifecycle, start: date, bootstrap_days: int, plain_world: str | None = None
) -> str:
    """The story in a few sentences; `plain_world` is the simulator's scenario without drift."""
    s = result.scenario
    monitored = [d.day for d in result.days]

    def day(index: int) -> str:
        """A day the simulator was asked for (an index from the first day, as the options
        take it), named the way the rest of the page names days."""
        return day_label(f"{start + timedelta(days=index):%Y-%m-%d}", monitored)

    days = s.days or 0
    what = (
        f"{days} simulated days of {s.events_per_day or 0:,} events each (seed {s.seed})"
        if s.source == SIMULATOR
        else f"{days} days of real data (from the {s.source})"
    )
    words = [
        f"{what}, from {start:%Y-%m-%d}; the first {bootstrap_days} train the first model, the "
        f"other {days - bootstrap_days} are served, ingested and judged one by one."
    ]
    if s.incident_day is not None:
        words.append(
            f"The simulator injects a data incident (bad rows, requests missing context) on "
            f"{day(s.incident_day)}."
        )
    if s.scenario not in (None, plain_world) and s.drift_day is not None:
        words.append(
            f"Its {s.scenario.replace('-', ' ')} scenario changes the world from "
            f"{day(s.drift_day)} on."
        )
    return " ".join(words)


def plot_svg(days: list[Day], gate: MonitoringGate | None = None) -> str:
    """The plots as inline SVG."""
    buffer = io.StringIO()
    plot_figure(days, gate).savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # inline: drop the XML prolog


def plot_figure(days: list[Day], gate: MonitoringGate | None = None) -> Figure:
    """Four panels over the monitored days, with markers where something was decided and, given
    the monitoring `gate`, the limits it judged them by; every legend sits right of its panel,
    where it covers no data."""
    from matplotlib.figure import Figure

    labels = [d.day[5:] for d in days]
    x = range(len(days))
    figure = Figure(figsize=(11, 8.5), layout="constrained")
    quality, traffic, quarantine, drift = figure.subplots(4, 1, sharex=True)

    metric = days[0].metric if days else "nce"
    for name in ("model", "reference", "ceiling", "oracle"):
        key = metric if name == "model" else f"{name}_{metric}"
        values = [d.metrics.get(key) for d in days]
        if any(v is not None for v in values):
            quality.plot(x, [float("nan") if v is None else v for v in values], "o-",
                     color=COLORS[name], label=name, lw=1.5, ms=4)  # fmt: skip
    # Side by side on the day a challenger was judged: both models on the same live requests.
    judged = [(i, d.challenger or {}) for i, d in enumerate(days) if _live_outcome(d)]
    for role, marker in (("champion", "D"), ("challenger", "*")):
        if judged:
            quality.plot([i for i, _ in judged],
                         [live[f"{role}_performance"] for _, live in judged], marker, ls="none",
                         color=COLORS["model"] if role == "champion" else MARKERS["trial"],
                         ms=7, label=f"{role}, same live\nrequests (live evidence)")  # fmt: skip
    if gate is not None:
        limits = [
            float("nan") if (ref := d.metrics.get(f"reference_{metric}")) is None
            else ref + gate.max_degradation
            for d in days
        ]  # fmt: skip
        quality.step(x, limits, where="mid", color=COLORS["reference"], ls="--", lw=1,
                 label="limit (retrain above)")  # fmt: skip
    quality.set(ylabel=f"{metric.upper()} (lower is better)",
            title="Model quality on each day's labelled traffic")  # fmt: skip
    traffic.bar(x, [d.served for d in days], color="#93c5fd", label="served")
    traffic.bar(x, [d.refused for d in days], bottom=[d.served for d in days], color="#f87171",
                label="refused (400)")  # fmt: skip
    traffic.set(ylabel="requests")
    quarantine.bar(x, [100 * d.quarantined / max(d.rows, 1) for d in days], color="#fb923c",
                   label="events quarantined")  # fmt: skip
    quarantine.set(ylabel="quarantined %", ylim=(0, None))
    drift.plot(x, [100 * (d.drift_share or 0) for d in days], "o-", color="#7c3aed",
               label="inputs drifted %", ms=4)  # fmt: skip
    drift.plot(x, [100 * (d.score_drift or 0) for d in days], "s--", color="#0f766e",
               label="score drift x100", ms=4)  # fmt: skip
    if gate is not None:  # a window drifted from either limit (the gate's k of n decides)
        drift.axhline(100 * gate.drift_share, color="#7c3aed", ls=":", lw=1,
                      label="inputs limit")  # fmt: skip
        drift.axhline(100 * gate.score_drift_threshold, color="#0f766e", ls=":", lw=1,
                      label="score limit x100")  # fmt: skip
    drift.set(ylabel="drift", xticks=list(x), xticklabels=labels, xlabel=_year_of(days))

    for i, day in enumerate(days):
        outcomes = [(day.retrained or {}).get("decision"), _live_outcome(day)]
        for axes in (quality, traffic, quarantine, drift):
            if day.decision == "alert":
                axes.axvspan(i - 0.45, i + 0.45, color=MARKERS["alert"], alpha=0.12)
            for outcome in outcomes:
                if outcome in ("promoted", "rejected"):
                    axes.axvline(i + 0.5, color=MARKERS[outcome], ls=":", lw=1.5)
            if (day.retrained or {}).get("decision") == "challenger":
                axes.axvline(i + 0.5, color=MARKERS["trial"], ls="--", lw=1)
    quality.plot([], [], color=MARKERS["alert"], lw=8, alpha=0.25, label="alert")
    quality.plot([], [], color=MARKERS["rejected"], ls=":", label="challenger rejected")
    quality.plot([], [], color=MARKERS["promoted"], ls=":",
                 label="challenger promoted\n(serves next day)")  # fmt: skip
    if any((d.retrained or {}).get("decision") == "challenger" for d in days):
        quality.plot([], [], color=MARKERS["trial"], ls="--",
                     label="challenger on live\ntrial (next day)")  # fmt: skip
    for axes in (quality, traffic, quarantine, drift):
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, borderaxespad=0)
    return figure


def _live_outcome(day: Day) -> str | None:
    """A live verdict reached at the day's close, in the retraining's words: promoted |
    rejected (None: no challenger, or it waits for labels)."""
    return {"promote": "promoted", "reject": "rejected"}.get(live_decision(day) or "")


def _year_of(days: list[Day]) -> str:
    years = sorted({d.day[:4] for d in days})
    return f"day ({', '.join(years)})"


def _day_row(settings: Settings, day: Day, number: int) -> dict[str, Any]:
    """A row of the days table: the day, its place among the monitored days, and links to its
    reports and runs."""
    links = day.links
    run_id = links.get("prefect_flow_run")
    live = [("live evidence", _file_url(p)) for p in (day.challenger or {}).get("reports", [])]
    return {
        "day": day,
        "number": number,
        "reports": [(Path(p).stem, _file_url(p)) for p in links.get("evidently_reports", [])]
        + live,
        "mlflow": links.get("monitoring_run"),
        "prefect": f"{settings.ui.prefect_url}/runs/flow-run/{run_id}" if run_id else None,
        "data_docs": _file_url(links["data_docs"]) if links.get("data_docs") else None,
    }


def _file_url(path: str | Path) -> str:
    return Path(path).resolve().as_uri()
