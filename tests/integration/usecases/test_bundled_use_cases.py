"""Every bundled use case through the real components: its suite on a landed day (GX), and
its served model over HTTP (`mlops serve`, Feast's online store, the registry's @champion),
with the features served equal to the features training joined.

adclick's service is the session's (`shared_service`); diagnosis (binary), deliveries
(regression) and tickets (multiclass) land their shipped files, ingest and train once per run
(`<name>_trained`, tests/integration/conftest.py), then serve a copy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingestion.gx_validation import validate_batch
from ingestion.table_validation import REASON_COLUMN
from mlops.config.errors import UserError
from mlops.config.settings import Settings
from mlops.contracts.batches import read_batch
from mlops.contracts.model_inputs import BaseMargin, contributions
from mlops.contracts.usecase import UseCase, load_use_case
from mlops.stores.offline_store import OfflineStore, quoted
from mlops.stores.registry import CHAMPION
from serving.request_models import answered_prediction
from tests.support.service import Served, serving, serving_environment, wait_for_log
from tests.support.session import TrainedWeek, settings_at
from tests.support.stores import copy_home, use_case_days

pytestmark = pytest.mark.integration
BUNDLED = ("adclick", "diagnosis", "deliveries", "tickets")
BATCH = 40  # requests a /predict_batch call carries, within the service's limit


@pytest.fixture(scope="module", params=BUNDLED)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str
) -> Iterator[tuple[UseCase, Served]]:
    use_case = load_use_case(request.param)
    if use_case.name == "adclick":
        yield use_case, request.getfixturevalue("shared_service")
        return
    trained: TrainedWeek = request.getfixturevalue(f"{use_case.name}_trained")
    home = copy_home(trained.home, tmp_path_factory.mktemp(use_case.name) / "mlops-home")
    env = {**serving_environment(home, prefect_api_url), "MLOPS_USE_CASE": use_case.name}
    with serving(home, trained.report, env) as service:
        yield use_case, service


@pytest.mark.parametrize("name", BUNDLED)
def test_a_landed_day_passes_its_suite_and_a_broken_row_is_quarantined(
    name: str, settings: Settings
) -> None:
    use_case = load_use_case(name)
    (batch_dir,) = use_case_days(use_case, settings.landing_dir, days=1, events_per_day=300)
    events = use_case.events
    clean = validate_batch(read_batch(batch_dir, use_case.tables), use_case, settings)
    assert all(result.quarantined.empty for result in clean.values())

    path = batch_dir / events.file_name
    frame = pd.read_parquet(path)
    frame.loc[0, events.timestamp_column] = pd.Timestamp("1990-01-01", tz="UTC")
    frame.to_parquet(path)
    results = validate_batch(read_batch(batch_dir, use_case.tables), use_case, settings)

    quarantined = results[events.name].quarantined
    assert list(quarantined[events.id_column]) == [frame.loc[0, events.id_column]]
    assert f"{events.timestamp_column}:between" in quarantined[REASON_COLUMN].iloc[0]


def newest_events(
    served: Served, use_case: UseCase, rows: int = 40, at_their_time: bool = False
) -> pd.DataFrame:
    """What requests for the newest ingested events carry: keys and their own context, at the
    last materialization (or at the events' own time)."""
    offline = OfflineStore(served.settings.offline_dir)
    events = use_case.events
    keys = (*use_case.entity_keys, *use_case.request_columns)
    if at_their_time:
        keys = (*keys, events.timestamp_column)
    columns = ", ".join(quoted(c) for c in dict.fromkeys(keys))
    con = offline.connect([events.name])
    try:
        frame = con.execute(
            f"SELECT {columns} FROM {quoted(events.name)} "
            f"ORDER BY {quoted(events.timestamp_column)} DESC LIMIT {rows}"
        ).df()
    finally:
        con.close()
    if not at_their_time:  # after the last materialization: the store holds the newest values
        frame[events.timestamp_column] = pd.Timestamp(offline.watermark()) + timedelta(hours=1)
    return frame


def test_a_known_entity_is_scored_on_the_stores_features(served) -> None:
    use_case, service = served
    request = json.loads(newest_events(service, use_case, rows=1).to_json(orient="records"))[0]
    request.pop(use_case.events.timestamp_column)
    response = service.post("/predict", request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert answered_prediction(use_case.task, use_case.score_name, body) is not None, body
    assert not set(body["missing_features"]) - set(use_case.request_columns)


def test_a_request_scores_the_same_alone_and_in_a_batch(served) -> None:
    use_case, service = served
    task, name = use_case.task, use_case.score_name
    events = newest_events(service, use_case, rows=5)
    requests = json.loads(events.to_json(orient="records", date_format="iso"))
    alone = [answered_prediction(task, name, service.post("/predict", r).json()) for r in requests]
    batch = service.post("/predict_batch", {"requests": requests}).json()["predictions"]
    assert None not in alone
    assert [answered_prediction(task, name, p) for p in batch] == alone


def test_explain_answers_the_prediction_and_what_drove_it(served) -> None:
    use_case, service = served
    task, name = use_case.task, use_case.score_name
    events = newest_events(service, use_case, rows=1)
    (request,) = json.loads(events.to_json(orient="records", date_format="iso"))
    predicted = answered_prediction(task, name, service.post("/predict", request).json())
    response = service.post("/explain", request)
    assert response.status_code == 200, response.text
    explained = response.json()
    assert answered_prediction(task, name, explained) == predicted
    # The contributions give the prediction back, each named after an input the answer shows.
    np.testing.assert_allclose(
        from_contributions(use_case, explained["contributions"]), predicted, rtol=1e-5, atol=1e-6
    )
    named = (
        explained["contributions"][task.classes[0]] if task.classes else explained["contributions"]
    )
    assert set(named) == {*explained["inputs"], "bias"}
    refused = service.post("/explain", {"not_a_field": 1})
    assert refused.status_code == 400 and "not_a_field" in refused.text


def test_a_bad_request_gets_a_4xx_naming_the_field(served) -> None:
    use_case, service = served
    key = use_case.entity_keys[0]
    response = service.post("/predict", {"not_a_field": 1})
    assert response.status_code == 400 and key in response.text
    response = service.post("/predict", {key: [1, 2]})
    assert response.status_code == 400 and key in response.text


def test_served_features_equal_the_training_pipelines(served) -> None:
    """Training/serving skew: the same entities at the same time get the same model inputs
    from the online path (prediction log) as from the point-in-time join training uses."""
    from mlops.stores.feature_store import open_store
    from models.training import predict

    use_case, service = served
    events = newest_events(service, use_case)
    requests = json.loads(events.to_json(orient="records", date_format="iso"))
    response = service.post("/predict_batch", {"requests": requests})
    assert response.status_code == 200, response.text
    ids = [p["request_id"] for p in response.json()["predictions"]]
    (version,) = {p["model_version"] for p in response.json()["predictions"]}

    store = open_store(service.settings, use_case)
    entity_df = events.rename(columns={use_case.events.timestamp_column: "event_timestamp"})
    joined = (
        store.get_historical_features(
            entity_df=entity_df.assign(row=range(len(events))),
            features=store.get_feature_service(use_case.feature_service),
        )
        .to_df()
        .sort_values("row", ignore_index=True)
        .rename(columns={"event_timestamp": use_case.events.timestamp_column})
    )
    training_inputs = use_case.input_frame(joined)

    logged = wait_for_log(service, ids)
    expected = [
        {
            name: None
            if pd.isna(value)
            else value
            if isinstance(value, str)
            else pytest.approx(float(value), rel=1e-6)
            for name, value in row.items()
        }
        for row in training_inputs.astype(object).to_dict("records")
    ]
    assert [logged[i]["features"] for i in ids] == expected
    booster = service.registry.load_booster(version)
    np.testing.assert_allclose(
        [logged[i]["score"] for i in ids], predict(booster, training_inputs), atol=1e-6
    )
    # Explanations: each served row's contributions (per class, a multiclass model's) sum to
    # its margin, base margin included.
    start = BaseMargin.of(booster)
    margin = booster.inplace_predict(
        training_inputs[list(booster.feature_names or [])],
        iteration_range=(0, booster.best_iteration + 1),
        predict_type="margin",
        **({"base_margin": start.frame_margin(training_inputs)} if start else {}),
    )
    explained = contributions(booster, training_inputs).sum(axis=-1)
    np.testing.assert_allclose(explained, margin, rtol=1e-6, atol=1e-6)


def test_batch_prediction_scores_as_the_service_does_and_a_rerun_writes_nothing(
    served, tmp_path: Path, scratch_postgres: str
) -> None:
    """The same entities at the same time: batch scores equal the service's (1e-6), in files
    (local profile) and in PostgreSQL (server profile) alike; a row the service would refuse is
    kept with the same reason, not dropped; the same rows again are the same run, already
    written: no row added."""
    from mlops.stores.batch_scores import (
        REASON,
        ROW,
        SCORES_FILE,
        ParquetScores,
        PostgresScores,
    )
    from mlops.stores.feature_store import open_store
    from serving.batch_prediction import CONTRIBUTIONS, predict_batch

    use_case, service = served
    events = newest_events(service, use_case)
    requests = json.loads(events.to_json(orient="records", date_format="iso"))
    response = service.post("/predict_batch", {"requests": requests})
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    online = [answered_prediction(use_case.task, use_case.score_name, a) for a in answers]

    key = use_case.entity_keys[0]
    broken = events.iloc[[0]].assign(**{key: None})  # no entity: the service answers 422
    rows = pd.concat([events, broken], ignore_index=True)
    registry, store = service.registry, open_store(service.settings, use_case)
    version = registry.resolve("champion")
    assert version == answers[0]["model_version"] == registry.resolve(f"@{CHAMPION}")
    assert registry.resolve(version) == version
    with pytest.raises(UserError, match="has no @nobody"):
        registry.resolve("@nobody")
    files = ParquetScores(tmp_path)
    first = predict_batch(files, store, registry, use_case, rows, version)
    assert first.written and (first.scored, first.rejected) == (len(events), 1)

    scores = pd.read_parquet(first.scores_path).sort_values(ROW)
    assert list(scores[ROW]) == list(range(len(events)))
    assert set(scores["model_version"]) == {version} and set(scores["run_id"]) == {first.run_id}
    name, classes = use_case.score_name, use_case.task.classes
    batch = scores[[f"{name}.{c}" for c in classes] if classes else [name]].to_numpy()
    np.testing.assert_allclose(batch, np.array(online, dtype=float), atol=1e-6)
    assert first.rejected_path is not None
    (rejected,) = pd.read_parquet(first.rejected_path).to_dict("records")
    assert rejected[ROW] == len(events) and rejected[REASON].startswith(key)

    again = predict_batch(files, store, registry, use_case, rows, version)
    assert not again.written and again.run_id == first.run_id
    assert len(list(tmp_path.rglob(SCORES_FILE))) == 1

    # Explained: the same scores, and each row's contributions give its score back.
    explained = predict_batch(files, store, registry, use_case, rows, version, explain=True)
    assert explained.written and explained.run_id != first.run_id
    with_reasons = pd.read_parquet(explained.scores_path).sort_values(ROW)
    assert scores[CONTRIBUTIONS].isna().all() and with_reasons[CONTRIBUTIONS].notna().all()
    rebuilt = [from_contributions(use_case, json.loads(c)) for c in with_reasons[CONTRIBUTIONS]]
    np.testing.assert_allclose(rebuilt, batch, rtol=1e-5, atol=1e-6)

    database = PostgresScores(scratch_postgres, use_case.model_name)
    stored = predict_batch(database, store, registry, use_case, rows, version)
    assert stored.written and stored.run_id == first.run_id
    assert stored.scores_path.startswith("postgresql: ")
    in_postgres = read_table(scratch_postgres, f"{use_case.model_name}_batch_scores")
    columns = [c for c in scores.columns if c != "scored_at"]
    pd.testing.assert_frame_equal(
        in_postgres.sort_values(ROW)[columns].reset_index(drop=True),
        scores[columns].reset_index(drop=True),
        check_dtype=False,
    )
    (refused,) = read_table(scratch_postgres, f"{use_case.model_name}_batch_rejected").to_dict(
        "records"
    )
    assert (refused[ROW], refused[REASON]) == (rejected[ROW], rejected[REASON])
    assert refused["input"][key] is None
    assert not predict_batch(database, store, registry, use_case, rows, version).written
    assert len(read_table(scratch_postgres, f"{use_case.model_name}_batch_scores")) == len(events)


def from_contributions(use_case: UseCase, explained: dict) -> list[float]:
    """A row's prediction from its contributions: their sum is its margin (per class for a
    multiclass model), then the task's link (bundled regressions use squared error: none)."""
    task = use_case.task
    if task.classes:
        margins = np.array([sum(explained[c].values()) for c in task.classes])
        odds = np.exp(margins - margins.max())
        return list(odds / odds.sum())
    margin = sum(explained.values())
    assert set(explained) >= {*use_case.base_margin, "bias"}
    return [1 / (1 + np.exp(-margin))] if task.kind == "binary" else [margin]


def read_table(url: str, table: str) -> pd.DataFrame:
    from mlops.stores.databases import connect

    with connect(url.replace("postgresql+psycopg", "postgresql", 1)) as connection:
        cursor = connection.execute(f'SELECT * FROM "{table}"')
        names = [d.name for d in cursor.description or ()]
        return pd.DataFrame(cursor.fetchall(), columns=names)


def test_the_infra_checks_golden_requests_are_valid_requests(served) -> None:
    """Newest events and unseen entities, whatever the key type (diagnosis: strings)."""
    from serving.infra_check import golden_requests

    use_case, service = served
    requests = golden_requests(service.settings, use_case)
    known = {tuple(r[k] for k in use_case.entity_keys) for r in requests[:-2]}
    for request in requests:
        use_case.request_model.model_validate_json(json.dumps(request))
    assert not {tuple(r[k] for k in use_case.entity_keys) for r in requests[-2:]} & known


@pytest.mark.parametrize("served", ["deliveries", "tickets"], indirect=True)
def test_monitoring_judges_served_traffic_in_the_tasks_own_terms(
    served, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A regression and a multiclass window: the service's answers read back from the log,
    scored with the task's primary metric, its performance report in the kind's terms."""
    from flows.monitor import monitor

    use_case, service = served
    gate = use_case.card.gates.monitoring
    events = newest_events(service, use_case, rows=gate.min_labelled_rows + 20, at_their_time=True)
    requests = json.loads(events.to_json(orient="records", date_format="iso"))
    ids = []
    for start in range(0, len(requests), BATCH):
        response = service.post("/predict_batch", {"requests": requests[start : start + BATCH]})
        assert response.status_code == 200, response.text
        ids += [p["request_id"] for p in response.json()["predictions"]]
    wait_for_log(service, ids)

    monkeypatch.setenv("MLOPS_USE_CASE", use_case.name)
    settings_at(copy_home(service.settings.home, tmp_path / "mlops-home"), monkeypatch)
    judged = monitor(retrain=False).judged
    metric = use_case.task.primary
    assert judged.signals["metric"] == metric
    assert judged.window["labelled"] >= gate.min_labelled_rows, judged.window
    assert metric in judged.window["performance"]
    assert judged.signals["performance"] == judged.window["performance"][metric]
    assert {Path(r).name for r in judged.reports} == {"drift.html", "performance.html", "gate.html"}
    assert f"{metric.upper()} " in judged.reason or judged.decision == "alert", judged.reason
