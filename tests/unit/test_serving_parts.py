"""Serving's pure parts: training defaults, the infra check's verdict, the prediction log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from mlops.prediction_log import read_prediction_log
from models.dataset import TimeWindows, TrainingSet, serving_defaults
from models.promotion import Check, PromotionDecision, with_infra_check
from serving.prediction_log import PredictionLog, Served
from usecases.adclick import USE_CASE


def test_defaults_fill_only_what_training_never_missed():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    windows = TimeWindows(
        start, start + timedelta(days=5), start + timedelta(days=6), start + timedelta(days=7)
    )
    frame = pd.DataFrame(
        {
            "event_timestamp": pd.date_range(start, periods=4, freq="h"),
            "device": ["mobile", "desktop", "mobile", "tablet"],
            "ad_position": [1, 2, 2, 5],
            "user_country": ["US", "US", "GB", "DE"],
            "user_ctr_7d": [0.1, np.nan, 0.2, 0.3],
        }
    )
    training_set = TrainingSet(
        frame, windows, "event_timestamp", feature_columns=("user_country", "user_ctr_7d")
    )
    assert serving_defaults(training_set, USE_CASE) == {
        "device": "mobile",
        "ad_position": 2,
        "user_country": "US",
        "user_ctr_7d": None,  # missing in training: the model knows what missing means
    }


def test_a_failed_infra_check_turns_a_promotion_into_a_rejection():
    passed = PromotionDecision(True, "promoted: floors met", (Check("nce", True, "ok"),))
    refused = with_infra_check(passed, False, "v3 is too slow: p99 9 ms, SLO 5 ms")
    assert not refused.promote
    assert refused.reason == "rejected: v3 is too slow: p99 9 ms, SLO 5 ms"
    assert refused.checks[-1] == Check("infra", False, "v3 is too slow: p99 9 ms, SLO 5 ms")
    assert with_infra_check(passed, True, "infra ok").reason == "promoted: floors met; infra ok"


def test_prediction_log_writes_every_record_before_close_returns(tmp_path):
    log = PredictionLog(
        tmp_path,
        lambda s: [{"request_id": i} for i in s.request_ids],
        flush_seconds=0.01,
    ).start()
    for batch in range(50):
        ids = [f"{batch}-{i}" for i in range(3)]
        log.append(
            Served(
                datetime.now(UTC),
                "1",
                ["x"],
                ids,
                [{}] * 3,
                np.zeros((3, 1)),
                np.full(3, 0.5),
                [[]] * 3,
            )
        )
    log.close()
    records = read_prediction_log(tmp_path)
    assert len(records) == 150
    assert len({r["request_id"] for r in records}) == 150
