"""Promotion on live evidence as real flow runs: under a card whose rollout shadows, a stronger
retrained model becomes the @challenger (train flow); the last day's traffic is scored by both
models the way a shadowing service scores it (same requests, same online features, the
challenger's scores in the shadow log); the monitor flow then judges the pairs against the
labels in the offline store and promotes the challenger, recording why. A rerun finds nothing
left to judge."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import orjson
import pytest

from mlops.contracts.card import LiveEvidence, Rollout
from mlops.stores.offline_store import OfflineStore, quoted
from mlops.stores.prediction_log import shadow_log_dir
from mlops.stores.registry import CHALLENGER, CHAMPION, DECIDED_BY, DECISION, ModelRegistry
from monitoring.evidently_reports import LIVE_TAG

pytestmark = pytest.mark.integration

# The generator's strongest effect (taste: age bucket x ad category) and position, and the
# crosses that carry them: a champion blind to them is worse by far more than the margin.
WEAKER = ["user_age_bucket", "ad_category", "age_x_category", "ad_position", "device_x_position"]
LIVE = LiveEvidence(min_labelled=4000, margin=0.02, resamples=100)


def serve_last_day_with_a_shadow(settings, use_case, champion: str, challenger: str) -> int:
    """The newest day's events as requests, scored by the champion into the prediction log and
    by the challenger into the shadow log, on the same features; how many were scored."""
    from mlops.stores.feature_store import open_store
    from serving.model_loading import load_registered
    from serving.prediction_logger import PredictionLog, Served, records
    from serving.scoring import Scorer
    from serving.traffic import requests_for

    events = use_case.events
    offline = OfflineStore(settings.offline_dir)
    end = offline.watermark()
    con = offline.connect([events.name])
    try:
        newest = f"{quoted(events.timestamp_column)} >= $start"
        day = con.execute(
            f"SELECT * FROM {quoted(events.name)} WHERE {newest}",
            {"start": (end - timedelta(days=1)).replace(tzinfo=None)},
        ).df()
    finally:
        con.close()
    requests = [
        use_case.request_model.model_validate_json(orjson.dumps(body)).model_dump()
        for body in requests_for(day, use_case)
    ]
    registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
    scorer = Scorer(open_store(settings, use_case), use_case)
    to_records = partial(records, categories=use_case.categories)
    for version, directory in (
        (champion, settings.predictions_dir),
        (challenger, shadow_log_dir(settings.predictions_dir)),
    ):
        model = load_registered(registry, version)
        log = PredictionLog(directory, to_records, 0.5).start()
        features = scorer.lookup(requests)
        scored = scorer.score_rows(model, requests, features)
        ids = [uuid.uuid5(uuid.NAMESPACE_OID, str(i)).hex for i in range(len(requests))]
        log.append(
            Served(
                datetime.now(UTC),
                version,
                model.feature_names,
                ids,
                requests,
                scored.matrix,
                scored.scores,
                scored.missing,
            )
        )
        log.close()
    return len(requests)


def test_a_better_challenger_is_promoted_on_live_evidence_once(
    week_settings, use_case, monkeypatch, prefect_api_url
):
    from flows.monitor import monitor
    from flows.train import train

    rollout = Rollout(mode="shadow", live_evidence=LIVE)
    card = use_case.card.model_copy(update={"rollout": rollout})
    monkeypatch.setitem(use_case.__dict__, "card", card)
    weak = train(search_trials=1, exclude_features=WEAKER)
    strong = train(search_trials=1)
    assert (weak.decision, strong.decision) == ("promoted", "challenger"), strong.reason
    served = serve_last_day_with_a_shadow(week_settings, use_case, weak.version, strong.version)
    assert served >= LIVE.min_labelled

    judged = monitor(retrain=False)

    live = judged.challenger
    assert live is not None and live.decision == "promote", live
    assert live.labelled >= LIVE.min_labelled
    assert live.improvement is not None and live.improvement > LIVE.margin
    registry = ModelRegistry(week_settings.tracking_uri, use_case.model_name)
    assert (registry.alias(CHAMPION), registry.alias(CHALLENGER)) == (strong.version, None)
    tags = registry.version(strong.version).tags
    assert (tags[DECISION], tags[DECIDED_BY]) == ("promoted", "live evidence")
    assert tags["decision.reason"].startswith("promoted on live evidence: nce ")
    # The requests judged, both models' answers side by side: a report, and the dashboard's.
    (report,) = live.reports
    page = Path(report).read_text()
    assert f"live evidence — {judged.judged.day} — v{strong.version} vs v{weak.version}" in page
    assert "promote" in page
    workspace = week_settings.monitoring_dir / "workspace"
    stored = [json.loads(p.read_text()) for p in workspace.rglob("snapshots/*.json")]
    live_tagged = [s for s in stored if LIVE_TAG in s.get("tags", [])]
    assert len(live_tagged) == 1, [s.get("tags") for s in stored]

    again = monitor(retrain=False)
    assert again.challenger is None
