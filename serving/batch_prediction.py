"""Batch prediction: a table of entity rows scored by one model version, each row on the features
its entities had at its time, the way the service scores the same request.

    rows (a file, or a landed day's events) -> each one validated by the service's request model
        (a row that fails is kept, with its reason) -> Feast's point-in-time join at each row's
        time -> the service's defaults and model inputs (serving/scoring.py) -> the booster
        -> the profile's scores store (`mlops/stores/batch_scores.py`): locally
           HOME/batch_predictions/model_version=<v>/run=<id>/scores.parquet (+ rejected.parquet),
           in the server profile PostgreSQL's <prefix>_predictions

With `explain`, each scored row also gets its `contributions`: each model input's share of the
row's margin (XGBoost's TreeSHAP), JSON, summing to the margin; without, that column is empty.

The run is named by what it scores (the rows' content, the model and its version, whether it
explains): a rerun of the same rows with the same version finds its scores written and writes
nothing. A run is written whole or not at all: one stopped half-way left no scores, and its
rerun writes them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from mlops.config.errors import UserError
from mlops.contracts.usecase import UseCase
from mlops.stores.batch_scores import REASON, ROW, ScoresStore
from mlops.stores.feature_store import point_in_time_join
from serving.http_limits import earliest_event, with_time_bounds
from serving.request_models import PREDICTED_CLASS

CONTRIBUTIONS = "contributions"  # the scores' column of each row's explanation (JSON)

if TYPE_CHECKING:
    from feast import FeatureStore

    from mlops.stores.registry import ModelRegistry
    from serving.model_loading import ServedModel


@dataclass(frozen=True)
class BatchPrediction:
    """What a run scored and where it wrote it."""

    run_id: str
    model_version: str
    rows: int
    scored: int
    rejected: int
    scores_path: str  # a file, or (server profile) a PostgreSQL table and the run's rows
    rejected_path: str | None
    written: bool  # False: an earlier run had scored these rows with this version

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_rows(source: Path, use_case: UseCase) -> pd.DataFrame:
    """The rows to score: a Parquet or CSV file of entity rows with their times, or a landed
    batch directory (its events table)."""
    events = use_case.events.name
    if source.is_dir():
        batch, source = source, source / f"{events}.parquet"
        if not source.exists():
            raise UserError(f"{batch} holds no {events}.parquet: not a landed batch of {events}")
    if not source.exists():
        raise UserError(f"{source}: no such file")
    readers = {".parquet": pd.read_parquet, ".csv": pd.read_csv}
    if source.suffix not in readers:
        raise UserError(f"{source}: batch prediction reads a .parquet or .csv file, or a batch")
    try:
        return readers[source.suffix](source)
    except (OSError, ValueError) as err:  # pyarrow's and pandas' parse errors are ValueErrors
        raise UserError(f"{source}: not a readable {source.suffix} file ({err})") from err


def split_rows(rows: pd.DataFrame, use_case: UseCase) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rows the service's request model accepts, parsed; the others with the reason it
    gives), both with each row's place in the input (`input_row`). Types are read as a table
    holds them, not as strictly as the service reads a JSON body: a CSV's "3" is the number 3.
    A row without a time is refused here, where the service would score it as of now: a batch
    row is scored as of its own time, and "now" would make a rerun score something else."""
    timestamp = use_case.events.timestamp_column
    request_model = with_time_bounds(use_case.request_model, timestamp, earliest_event(use_case))
    fields = list(request_model.model_fields)
    if ROW in rows.columns:
        raise UserError(f"the rows have a column '{ROW}': the scores use that name")
    missing = [name for name in (*use_case.entity_keys, timestamp) if name not in rows.columns]
    if missing:
        raise UserError(
            f"the rows have no {', '.join(missing)} column: a row to score names its entities "
            f"({', '.join(use_case.entity_keys)}) and its time ({timestamp})"
        )
    present = [name for name in fields if name in rows.columns]
    # JSON as a client would send it: the service's strict parsing, integers kept integers.
    records = json.loads(
        rows[present].convert_dtypes().to_json(orient="records", date_format="iso")
    )
    accepted, refused = [], []
    for place, record in enumerate(records):
        body = {k: v for k, v in record.items() if v is not None}
        if body.get(timestamp) is None:
            refused.append({ROW: place, REASON: f"{timestamp}: no time to score the row as of"})
            continue
        try:
            parsed = request_model.model_validate_json(json.dumps(body), strict=False).model_dump()
        except ValidationError as err:
            refused.append({ROW: place, REASON: _reason(err)})
            continue
        accepted.append({ROW: place, **parsed})
    rejected = rows.iloc[[r[ROW] for r in refused]].reset_index(drop=True)
    rejected.insert(0, ROW, [r[ROW] for r in refused])
    rejected[REASON] = [r[REASON] for r in refused]
    valid = pd.DataFrame(accepted, columns=[ROW, *fields])
    valid[timestamp] = pd.to_datetime(valid[timestamp], utc=True)
    return valid, rejected


def _reason(err: ValidationError) -> str:
    """pydantic's errors in one line: `field: message; ...`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in err.errors()
    )


def run_id(rows: pd.DataFrame, use_case: UseCase, version: str, explain: bool = False) -> str:
    """A name for scoring these rows with this model version: the same rows and version, the
    same name."""
    explained = "\0explained" if explain else ""
    digest = hashlib.sha256(f"{use_case.model_name}\0{version}\0{explained}".encode())
    digest.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
    digest.update("\0".join(map(str, rows.columns)).encode())
    return digest.hexdigest()[:16]


def point_in_time_features(
    store: FeatureStore, use_case: UseCase, valid: pd.DataFrame
) -> dict[str, list[Any]]:
    """The feature service's values for each row's entities as of the row's time (None where
    there were none), in the rows' order."""
    entity_rows = valid[[ROW, *use_case.entity_keys, use_case.events.timestamp_column]]
    joined = point_in_time_join(store, use_case, entity_rows).set_index(ROW).loc[valid[ROW]]
    names = [c for c in joined.columns if c not in entity_rows.columns]
    return {name: [None if pd.isna(v) else v for v in joined[name]] for name in names}


def score(
    model: ServedModel,
    store: FeatureStore,
    use_case: UseCase,
    valid: pd.DataFrame,
    features: dict[str, list[Any]],
    explain: bool = False,
) -> tuple[np.ndarray, list[str] | None]:
    """The rows scored the service's way (its defaults, its inputs, its booster call): a row of
    predictions per input row, and with `explain` each row's contributions as JSON."""
    from serving.scoring import Scorer

    scorer = Scorer(store, use_case)
    requests = valid.drop(columns=[ROW]).to_dict("records")
    timestamp = use_case.events.timestamp_column
    for request in requests:
        request[timestamp] = request[timestamp].to_pydatetime()
    columns, _ = scorer.raw_columns(model, requests, {k: list(v) for k, v in features.items()})
    predictions = np.asarray(model.predict(scorer.matrix(model, columns)), dtype=float)
    explained = [json.dumps(row) for row in scorer.explain(model, columns)] if explain else None
    return predictions.reshape(len(requests), -1), explained


def scores_table(
    use_case: UseCase,
    valid: pd.DataFrame,
    predictions: np.ndarray,
    version: str,
    run: str,
    scored_at: datetime,
    contributions: list[str] | None = None,
) -> pd.DataFrame:
    """Each scored row: its place, entities and time, the prediction in the service's terms (a
    column per class and the most probable one for a multiclass task), its contributions (JSON,
    or empty), the version and run."""
    timestamp = use_case.events.timestamp_column
    table = valid[[ROW, *use_case.entity_keys, timestamp]].reset_index(drop=True)
    task, name = use_case.task, use_case.score_name
    if task.classes:
        for i, label in enumerate(task.classes):
            table[f"{name}.{label}"] = predictions[:, i]
        table[PREDICTED_CLASS] = [task.classes[int(i)] for i in predictions.argmax(axis=1)]
    else:
        table[name] = predictions[:, 0]
    table[CONTRIBUTIONS] = pd.Series(contributions, dtype=object) if contributions else None
    table["model_version"] = version
    table["run_id"] = run
    table["scored_at"] = scored_at
    return table


def predict_batch(
    scores: ScoresStore,
    store: FeatureStore,
    registry: ModelRegistry,
    use_case: UseCase,
    rows: pd.DataFrame,
    version: str,
    explain: bool = False,
) -> BatchPrediction:
    """Score `rows` with `version` into `scores` (the profile's scores store), explained if
    asked; nothing written twice."""
    from serving.model_loading import load_registered

    run = run_id(rows, use_case, version, explain)
    scores_at, rejected_at = scores.location(version, run)
    valid, rejected = split_rows(rows, use_case)
    result = BatchPrediction(
        run_id=run,
        model_version=version,
        rows=len(rows),
        scored=len(valid),
        rejected=len(rejected),
        scores_path=scores_at,
        rejected_path=rejected_at if len(rejected) else None,
        written=False,
    )
    if scores.written(version, run):
        return result
    if len(valid):
        model = load_registered(registry, version)
        features = point_in_time_features(store, use_case, valid)
        predictions, explained = score(model, store, use_case, valid, features, explain)
    else:
        predictions, explained = np.empty((0, max(1, len(use_case.task.classes)))), None
    table = scores_table(use_case, valid, predictions, version, run, datetime.now(UTC), explained)
    return replace(result, written=scores.write(version, run, table, rejected))
