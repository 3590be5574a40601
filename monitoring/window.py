"""The current window: what the service answered over a time range, and the labels that have
arrived for it.

    prediction log (JSONL, every answer) --event time in [start, end)--> one row per event
        LEFT JOIN labels from the offline store (late: a row is labelled once its batch landed)
        + the events the data path quarantined in the same range

Counts, null shares and performance use every row (DuckDB); Evidently gets a fixed-size sample,
chosen by a seeded hash of the request id, so a run costs the same on any window size and a
rerun picks the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlops.config.errors import UserError
from mlops.config.settings import Settings
from mlops.contracts.card import MonitoringGate
from mlops.contracts.tasks import Task
from mlops.contracts.usecase import UseCase
from mlops.stores.mlflow_runs import day_name, day_start
from mlops.stores.offline_store import OfflineStore, has_view, quoted
from mlops.stores.prediction_log import log_files
from mlops.stores.reference import LABEL, SCORE, prediction_columns


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    rows: int  # answers in the window (one per event: a replayed event counts once)
    labelled: int
    events: int  # events that reached the offline store in the window
    quarantined: int  # events the data path quarantined in the window
    null_fraction: dict[str, float]  # request column -> share of requests that lacked it
    model_versions: dict[str, int]
    performance: dict[str, float] | None  # on every labelled row; None when there are none
    sample: pd.DataFrame = field(repr=False)  # model inputs, score, label (NaN: not yet)

    @property
    def day(self) -> str:
        """The window's one name (MLflow runs, the Prefect run, the report folder, Evidently):
        the day judged, the last day the window covers: the date of `end - 1 µs`. The window
        ending at 2026-01-12T00:00 judges "2026-01-11"; one ending at another time also says
        it ("2026-01-12T0600"). The bounds themselves stay in the tags and metadata."""
        return day_name(self.end)

    @property
    def day_start(self) -> datetime:
        """Where the day sits on a time axis (Evidently's snapshot timestamp): its midnight."""
        return day_start(self.end)

    @property
    def label_coverage(self) -> float:
        return self.labelled / self.rows if self.rows else 0.0

    @property
    def quarantined_fraction(self) -> float:
        total = self.events + self.quarantined
        return self.quarantined / total if total else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": self.rows,
            "labelled": self.labelled,
            "label_coverage": round(self.label_coverage, 4),
            "events": self.events,
            "quarantined": self.quarantined,
            "quarantined_fraction": round(self.quarantined_fraction, 4),
            "null_fraction": {k: round(v, 4) for k, v in self.null_fraction.items()},
            "model_versions": self.model_versions,
            "performance": self.performance,
        }


def window_bounds(
    offline: OfflineStore, gate: MonitoringGate, as_of: datetime | None
) -> tuple[datetime, datetime]:
    """The window to judge, ending at `as_of` (default: the newest batch's close). A window
    that holds no ingested batch is the user's mistake, said before anything runs."""
    first, last = offline.first_close(), offline.watermark()
    if first is None or last is None:
        raise UserError("nothing has been ingested yet: run `mlops ingest` first")
    end = as_of or last
    length = timedelta(hours=gate.window_hours)
    if end <= first - length or end - length >= last:
        raise UserError(
            f"--as-of {end.isoformat()} is outside the ingested data: no batch closed in its "
            f"{gate.window_hours:g} h window; batches closed from {first.isoformat()} to "
            f"{last.isoformat()}"
        )
    return end - length, end


def read_window(
    settings: Settings,
    use_case: UseCase,
    start: datetime,
    end: datetime,
    sample_rows: int,
    seed: int = 0,
) -> Window:
    events = use_case.events
    event_id, ts = quoted(events.id_column), events.timestamp_column
    offline = OfflineStore(settings.offline_dir)
    con = offline.connect([events.name])
    try:
        con.execute("SET TimeZone = 'UTC'")
        window = {"start": start, "end": end}
        offline_events = quoted(events.name) if has_view(con, events.name) else None
        events_in_window = _count(con, offline_events, ts, window)
        quarantine_files = _quarantine_files(settings, use_case)
        quarantined = (
            _count(
                con,
                _QUARANTINED_EVENTS if _has_reasons(quarantine_files) else _ALL_ROWS,
                ts,
                {**window, "files": quarantine_files},
            )
            if quarantine_files
            else 0
        )
        logs = [str(p) for p in log_files(settings.predictions_dir)]
        if not logs:
            return _empty(start, end, events_in_window, quarantined, use_case)

        requests = list(use_case.request_columns)
        classes = use_case.task.classes  # multiclass: a list of probabilities per row
        labels = (
            f"SELECT {event_id} AS _event, CAST({quoted(use_case.label)} AS DOUBLE) AS {LABEL} "
            f"FROM {offline_events} WHERE {_in_window(ts)}"
            if events_in_window
            else f"SELECT NULL AS _event, CAST(NULL AS DOUBLE) AS {LABEL} LIMIT 0"
        )
        # One row per event: a rerun that replays traffic must not count it twice.
        con.execute(
            f"""
            CREATE TEMP TABLE served AS
            WITH answers AS (
                SELECT request_id, CAST(served_at AS TIMESTAMPTZ) AS served_at,
                       CAST(model_version AS VARCHAR) AS model_version, {event_id},
                       {"".join(f"{quoted(c)}, " for c in requests)}features,
                       CAST(score AS {"DOUBLE[]" if classes else "DOUBLE"}) AS {SCORE}
                FROM read_json($logs, format = 'newline_delimited', union_by_name = true)
                WHERE {_in_window(ts)}
                QUALIFY row_number() OVER (
                    PARTITION BY coalesce(CAST({event_id} AS VARCHAR), request_id)
                    ORDER BY served_at DESC) = 1
            )
            SELECT answers.*, labels.{LABEL}
            FROM answers LEFT JOIN ({labels}) AS labels ON answers.{event_id} = labels._event
            """,
            {**window, "logs": logs},
        )
        # A use case may have no request context at all: each list below can be empty.
        nulls = "".join(f", avg(({quoted(c)} IS NULL)::INT) AS {quoted(c)}" for c in requests)
        counts = con.execute(
            f"SELECT count(*) AS rows, count({LABEL}) AS labelled{nulls} FROM served"
        ).df()
        rows = int(counts["rows"].iloc[0])
        if rows == 0:
            return _empty(start, end, events_in_window, quarantined, use_case)
        versions = dict(
            con.execute(
                "SELECT model_version, count(*) FROM served GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        scored = con.execute(f"SELECT {SCORE}, {LABEL} FROM served WHERE {LABEL} IS NOT NULL").df()
        sample = con.execute(
            f"""
            SELECT unnest(features), {SCORE}, {LABEL} FROM served
            ORDER BY hash(request_id || $seed) LIMIT $n
            """,
            {"seed": str(seed), "n": sample_rows},
        ).df()
    finally:
        con.close()
    task = use_case.task
    performance = (
        _finite(task.score(scored[LABEL].to_numpy(), _logged(scored[SCORE], classes)))
        if len(scored)
        else None
    )
    return Window(
        start=start,
        end=end,
        rows=rows,
        labelled=len(scored),
        events=events_in_window,
        quarantined=quarantined,
        null_fraction={c: float(counts[c].iloc[0]) for c in requests},
        model_versions={str(k): int(v) for k, v in versions.items()},
        performance=performance,
        sample=_with_prediction_columns(sample, task),
    )


def _logged(scores: pd.Series, classes: Sequence[str]) -> np.ndarray:
    """The log's scores as the task scores them: a number per row, or a row of probabilities
    per class."""
    if not classes:
        return scores.to_numpy(np.float64)
    return np.array(scores.tolist(), dtype=np.float64).reshape(len(scores), len(classes))


def _with_prediction_columns(sample: pd.DataFrame, task: Task) -> pd.DataFrame:
    """The sample in the reference's shape (`prediction_columns`): what Evidently compares."""
    predictions = _logged(sample.pop(SCORE), task.classes)
    label = sample.pop(LABEL)
    for column, values in prediction_columns(task, predictions).items():
        sample[column] = values
    sample[LABEL] = label
    return sample


def _in_window(column: str) -> str:
    # Parquet may hold ns or us precision, the log ISO text: one type for the comparison.
    c = quoted(column)
    return f"CAST({c} AS TIMESTAMPTZ) >= $start AND CAST({c} AS TIMESTAMPTZ) < $end"


def _quarantine_files(settings: Settings, use_case: UseCase) -> list[str]:
    return [str(p) for p in sorted(settings.quarantine_dir.glob(f"*/{use_case.events.file_name}"))]


# A re-sent event (`already_ingested`) is in the offline store already: not a bad event. (The
# reason column and its value are written by ingestion.table_validation.)
_ALL_ROWS = "read_parquet($files, union_by_name = true)"
_QUARANTINED_EVENTS = (
    f"(SELECT * FROM {_ALL_ROWS} WHERE _reasons IS DISTINCT FROM 'already_ingested')"
)


def _has_reasons(files: list[str]) -> bool:
    import pyarrow.parquet as pq

    return any("_reasons" in pq.read_schema(f).names for f in files)


def _count(con: Any, source: str | None, ts: str, parameters: dict[str, Any]) -> int:
    """Rows of `source` (a view, or a table function over `$files`) in the window."""
    if source is None:
        return 0
    query = f"SELECT count(*) FROM {source} WHERE {_in_window(ts)}"
    return int(con.execute(query, parameters).fetchone()[0])


def _empty(
    start: datetime, end: datetime, events: int, quarantined: int, use_case: UseCase
) -> Window:
    return Window(
        start=start,
        end=end,
        rows=0,
        labelled=0,
        events=events,
        quarantined=quarantined,
        null_fraction={c: 0.0 for c in use_case.request_columns},
        model_versions={},
        performance=None,
        sample=pd.DataFrame(),
    )


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
