"""The ad-click history features on a small hand-made history: what clicks over expected clicks
sees that a raw CTR cannot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from mlops.contracts.usecase import FeatureInputs
from usecases.adclick.features import build_features

CLOSED = datetime(2026, 1, 8, tzinfo=UTC)
TOP, BOTTOM = 0.10, 0.01  # the click rates of mobile's top and bottom slots, for everyone


def _history() -> FeatureInputs:
    """Many users on mobile, half in the top slot and half in the bottom one, clicking at each
    slot's rate; user 1 was shown only the top slot, user 2 only the bottom one, and both click
    exactly as an average user would there."""
    rows = []
    rng = np.random.default_rng(0)
    for position, rate in ((1, TOP), (5, BOTTOM)):
        for user in range(10, 410):
            rows += [(user, position, int(rng.random() < rate)) for _ in range(10)]
    rows += [(1, 1, int(i < 10)) for i in range(100)]  # 10 clicks in 100 top slots
    rows += [(2, 5, int(i < 1)) for i in range(100)]  # 1 click in 100 bottom slots
    users, positions, clicks = zip(*rows, strict=True)
    n = len(rows)
    shown = CLOSED - timedelta(days=3) + pd.to_timedelta(np.arange(n) % 7200, unit="s")
    impressions = pd.DataFrame(
        {
            "impression_id": np.arange(1, n + 1),
            "event_timestamp": shown,
            "user_id": users,
            "ad_id": 1,
            "device": "mobile",
            "ad_position": positions,
            "clicked": clicks,
        }
    )
    ids = sorted(set(users))
    tables = {
        "impressions": impressions,
        "users": pd.DataFrame(
            {
                "user_id": ids,
                "signup_at": CLOSED - timedelta(days=30),
                "age_bucket": "25-34",
                "country": "US",
            }
        ),
        "ads": pd.DataFrame(
            {
                "ad_id": [1],
                "created_at": [CLOSED - timedelta(days=30)],
                "category": ["travel"],
                "advertiser_id": [1],
            }
        ),
    }
    history = duckdb.connect()
    for name, frame in tables.items():
        history.register(name, frame)
    return FeatureInputs("2026-01-07", tables, history, CLOSED)


def test_clicks_over_expected_clicks_sees_through_where_an_entity_was_shown() -> None:
    users = build_features(_history())["user_activity"].set_index("user_id")
    top, bottom = users.loc[1], users.loc[2]
    # The raw CTRs are ten times apart, only because of the slots they saw.
    assert top["user_ctr_7d"] > 4 * bottom["user_ctr_7d"]
    # Expected clicks know the slots: about 10 and 1, and neither user is unusual.
    assert abs(top["user_expected_clicks_28d"] - 100 * TOP) < 1.5
    assert abs(bottom["user_expected_clicks_28d"] - 100 * BOTTOM) < 0.5
    assert abs(top["user_click_effect_28d"]) < 0.15
    assert abs(bottom["user_click_effect_28d"]) < 0.15
    assert top["user_impressions_28d"] == bottom["user_impressions_28d"] == 100
    assert (users["event_timestamp"] == pd.Timestamp(CLOSED)).all()  # known at the close


def test_an_entity_clicking_more_than_its_slots_explain_gets_a_positive_effect() -> None:
    inputs = _history()
    impressions = inputs.tables["impressions"]
    bottom_user = impressions["user_id"] == 2
    impressions.loc[bottom_user, "clicked"] = (np.arange(bottom_user.sum()) < 5).astype(int)
    users = build_features(inputs)["user_activity"].set_index("user_id")
    # 5 clicks where 1 was expected: log((5 + 2) / (1 + 2)), about +0.85.
    assert 0.7 < users.loc[2, "user_click_effect_28d"] < 1.0
