"""Serving's pure parts: training defaults, the infra check's verdict, the prediction log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops.prediction_log import read_prediction_log
from models.dataset import TimeWindows, TrainingSet, serving_defaults
from models.promotion import Check, PromotionDecision, with_infra_check
from serving.infra_check import Latency
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


def busy_timings(model_ms: float, seed: int = 0) -> Latency:
    """Interleaved timings on a simulated busy machine: most requests of both routes wait for
    the CPU, and the model's own work is stretched up to 3x where it does."""
    rng = np.random.default_rng(seed)
    requests = np.arange(22 * 34) % 22
    busy = rng.random((2, requests.size)) < 0.7
    wait = rng.exponential(4.0, (2, requests.size)) * busy
    stretch = np.where(busy[0], rng.uniform(1, 3, requests.size), 1)
    floor = 0.8 + wait[1]
    predict = 0.8 + model_ms * stretch + wait[0]
    return Latency(predict, floor, requests, slo_ms=5)


def test_infra_check_judges_what_the_model_adds_not_the_machine_load():
    good, slow = busy_timings(model_ms=1.1), busy_timings(model_ms=11)
    assert good.p99_ms > 10 and good.floor_p99_ms > 10  # raw, the machine decides
    assert good.adjusted_ms == pytest.approx(1.1, abs=0.05)
    assert good.budget_ms == pytest.approx(5 - good.floor_p50_ms)
    assert good.passed and "the model adds 1.1" in good.summary()
    assert not slow.passed and slow.adjusted_ms == pytest.approx(11, abs=0.05)
    assert "> budget" in slow.summary() and "raw /predict p99" in slow.summary()


def test_infra_check_judges_the_slowest_golden_request():
    timings = busy_timings(model_ms=1.1)
    slow_path = timings.requests == 21  # e.g. the unknown entities' path
    predict = np.where(slow_path, timings.predict_ms + 8, timings.predict_ms)
    one_slow = Latency(predict, timings.floor_ms, timings.requests, slo_ms=5)
    assert not one_slow.passed
    assert one_slow.adjusted_ms == pytest.approx(9.1, abs=0.05)


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
