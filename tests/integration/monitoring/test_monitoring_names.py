"""One name for one day: a judged day's MLflow run, Prefect flow run, report folder, Evidently
snapshots and history entry all carry the day judged (not the window's end), and each says
which model and verdict it belongs to. A real monitor flow run over a trained week."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from mlops.stores.mlflow_runs import CLASSIC_ML, EXPERIMENT_KIND, RUN_NOTE, day_name, experiment_id
from tests.support.stores import offline_impressions

pytestmark = pytest.mark.integration

LAST_DAY = "2026-01-07"  # the week's last day: its window closes at the next midnight
CLOSE = datetime(2026, 1, 8, tzinfo=UTC)


def test_a_window_is_named_by_the_last_day_it_covers() -> None:
    assert day_name(CLOSE) == LAST_DAY
    assert day_name(CLOSE + timedelta(microseconds=1)) == "2026-01-08T0000"
    assert day_name(CLOSE + timedelta(hours=6)) == "2026-01-08T0600"  # never shares a name
    assert day_name(CLOSE.astimezone(timezone(timedelta(hours=2)))) == LAST_DAY  # UTC days
    assert day_name(datetime(2026, 1, 8)) == LAST_DAY  # naive: read as UTC


def test_an_existing_experiment_gets_the_classic_ml_kind(settings, use_case) -> None:
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    created = mlflow.create_experiment(
        f"{use_case.name}-monitoring", artifact_location=settings.artifact_location
    )
    assert EXPERIMENT_KIND not in mlflow.get_experiment(created).tags

    assert experiment_id(settings, use_case, "monitoring") == created
    assert mlflow.get_experiment(created).tags[EXPERIMENT_KIND] == CLASSIC_ML
    fresh = experiment_id(settings, use_case)
    assert mlflow.get_experiment(fresh).tags[EXPERIMENT_KIND] == CLASSIC_ML


def _serve_last_day(settings, use_case, version: str) -> int:
    """A prediction log for the week's last day, as if the service had answered every event."""
    events = offline_impressions(settings.offline_dir)
    day = events[events["event_timestamp"].dt.strftime("%Y-%m-%d") == LAST_DAY]
    lines = []
    for row in day.itertuples(index=False):
        context = {c: getattr(row, c) for c in use_case.request_columns}
        lines.append(
            orjson.dumps(
                {
                    "request_id": f"r{row.impression_id}",
                    "served_at": datetime.now(UTC).isoformat(),
                    "model_version": version,
                    "impression_id": int(row.impression_id),
                    "event_timestamp": row.event_timestamp.isoformat(),
                    "user_id": int(row.user_id),
                    "ad_id": int(row.ad_id),
                    **context,
                    "features": context,
                    "missing_features": [],
                    "score": 0.03,
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        )
    folder = settings.predictions_dir / f"date={LAST_DAY}"
    folder.mkdir(parents=True)
    (folder / "service.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


@pytest.fixture
def judged(champion_settings, trained_week, use_case, prefect_api_url):
    """The week trained (a private copy of the session's), its last day served, then judged by
    a real monitor flow run."""
    from flows.monitor import monitor

    trained = trained_week.report
    assert datetime.fromisoformat(trained.lineage["windows"]["end"]) == CLOSE  # as_of=CLOSE
    served = _serve_last_day(champion_settings, use_case, trained.version)
    state = monitor(as_of=CLOSE, retrain=False, return_state=True)
    return trained, served, state, state.result()


def test_a_judged_day_has_one_name_everywhere(judged, champion_settings, use_case) -> None:
    from evidently.ui.workspace import Workspace
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    trained, served, state, result = judged
    judged_day = result.judged
    version, decision = trained.version, judged_day.decision
    assert trained.decision == "promoted"
    assert judged_day.day == LAST_DAY and judged_day.window["day"] == LAST_DAY
    assert judged_day.window["rows"] == served

    # Prefect: the flow run is named by the day (the training run by its data's last day).
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
        assert flow_run.name == f"monitor-{LAST_DAY}"
        named = FlowRunFilter(name=FlowRunFilterName(any_=[f"train-{LAST_DAY}"]))
        assert client.read_flow_runs(flow_run_filter=named)

    # MLflow: the run's name, its tags, its description, the model it judged, its inputs.
    client = MlflowClient(tracking_uri=champion_settings.tracking_uri)
    experiment = client.get_experiment_by_name(f"{use_case.name}-monitoring")
    assert experiment.tags[EXPERIMENT_KIND] == CLASSIC_ML
    (run,) = client.search_runs([experiment.experiment_id])
    tags = run.data.tags
    assert tags["mlflow.runName"] == f"monitor-{LAST_DAY}"
    assert tags["day"] == LAST_DAY and tags["decision"] == decision
    assert tags["window.end"] == CLOSE.isoformat()  # the bounds stay in the tags
    assert tags["model_version"] == version
    assert tags["model_uri"] == f"models:/{use_case.model_name}/{version}"
    assert tags["model_run_id"] == trained.run_id
    note = tags[RUN_NOTE]
    assert note.startswith(f"**{decision}** — {LAST_DAY} — v{version}")
    assert judged_day.reason in note
    assert judged_day.run_url.endswith(f"/runs/{run.info.run_id}?workflowType=machine_learning")
    (window_input,) = run.inputs.dataset_inputs
    assert window_input.dataset.name == f"window {LAST_DAY}"
    assert json.loads(window_input.dataset.profile)["num_rows"] == served
    assert {t.key: t.value for t in window_input.tags}["mlflow.data.context"] == "monitoring"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert artifacts == {f"reports/{k}.html" for k in ("drift", "performance", "gate")}

    # Files: one folder for the day; each report titled with kind, day, model and verdict.
    folder = champion_settings.monitoring_dir / "reports" / LAST_DAY
    assert sorted(p.name for p in folder.iterdir()) == [
        "drift.html",
        "gate.html",
        "performance.html",
    ]
    assert [str(folder / p) for p in ("drift.html", "performance.html", "gate.html")] == (
        judged_day.reports
    )
    for kind in ("drift", "performance", "gate"):
        page = (folder / f"{kind}.html").read_text()
        assert f"<title>{kind} — {LAST_DAY} — v{version} — {decision}</title>" in page
    assert "every row of the window against the card" in (folder / "gate.html").read_text()

    # Evidently: the snapshots are named by the day and sit at its midnight on the dashboard.
    workspace = Workspace(str(champion_settings.monitoring_dir / "workspace"))
    (project,) = workspace.search_project(use_case.name)
    snapshots = [workspace.get_run(project.id, r) for r in workspace.list_runs(project.id)]
    assert sorted(s.name for s in snapshots) == sorted(
        f"{kind} — {LAST_DAY} — v{version} — {decision}"
        for kind in ("drift", "performance", "gate")
    )
    for snapshot in snapshots:
        assert snapshot.metadata["day"] == LAST_DAY
        assert snapshot.metadata["model_version"] == version
        assert snapshot.metadata["window_end"] == CLOSE.isoformat()
        assert snapshot.timestamp.replace(tzinfo=UTC) == CLOSE - timedelta(days=1)
        assert f"decision:{decision}" in snapshot.tags
    titles = {p.title for p in project.dashboard.model().panels}
    assert {
        "NCE on every labelled row (retrain above the limit)",
        "Events quarantined by the data path (alert above the limit)",
        "Requests without their own context (alert above the limit)",
        "Attribution shift: how the model's reasons moved (informational)",
    } <= titles
    # How the champion's reasons moved: on the gate's page, in the run, in the result.
    assert 0 <= judged_day.signals["attribution_shift"] <= 1
    assert len(judged_day.signals["attribution_moved"]) == 3
    assert "attribution shift" in (folder / "gate.html").read_text()
    assert run.data.metrics["attribution_shift"] == judged_day.signals["attribution_shift"]

    # The history keeps the window's end (the gate's key) and the day.
    (entry,) = json.loads((champion_settings.monitoring_dir / "history.json").read_text())
    assert (entry["day"], entry["window_end"]) == (LAST_DAY, CLOSE.isoformat())


def test_rerunning_a_day_replaces_its_run_reports_and_snapshots(
    judged, champion_settings, use_case
) -> None:
    from evidently.ui.workspace import Workspace
    from mlflow import MlflowClient

    from flows.monitor import monitor

    first = judged[3].judged
    again = monitor(as_of=CLOSE, retrain=False).judged

    assert again.day == first.day == LAST_DAY
    client = MlflowClient(tracking_uri=champion_settings.tracking_uri)
    experiment = client.get_experiment_by_name(f"{use_case.name}-monitoring")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    workspace = Workspace(str(champion_settings.monitoring_dir / "workspace"))
    (project,) = workspace.search_project(use_case.name)
    assert len(list(workspace.list_runs(project.id))) == 3
    assert len(list((champion_settings.monitoring_dir / "reports").iterdir())) == 1
