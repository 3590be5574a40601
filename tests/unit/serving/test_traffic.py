"""Replaying events as requests: bodies a client would send, and refusals read per item."""

from __future__ import annotations

import pandas as pd

from serving.traffic import _invalid_items, requests_for


def test_requests_carry_the_request_fields_only_as_json_values(use_case) -> None:
    events = pd.DataFrame(
        {
            "impression_id": [1, 2],
            "event_timestamp": pd.to_datetime(["2026-01-08 10:00", "2026-01-08 11:00"], utc=True),
            "user_id": [3, 4],
            "ad_id": [5, 6],
            "device": ["mobile", None],
            "ad_position": pd.array([1, pd.NA], dtype="Int64"),
            "clicked": [0, 1],
            "click_probability": [0.1, 0.2],
        }
    )
    first, second = requests_for(events, use_case)
    assert set(first) == {"impression_id", "event_timestamp", "user_id", "ad_id", "device",
                          "ad_position"}  # fmt: skip
    assert first["event_timestamp"] == "2026-01-08T10:00:00+00:00"
    assert type(first["user_id"]) is int and type(first["ad_position"]) is int
    assert second["device"] is None and second["ad_position"] is None


def test_a_refused_batch_names_its_invalid_items() -> None:
    answer = {
        "error": "invalid request",
        "detail": [
            {"loc": ["requests", 3, "device"], "msg": "Input should be 'mobile'"},
            {"loc": ["requests", 3, "ad_position"], "msg": "too large"},
            {"loc": ["requests", 7, "ad_position"], "msg": "too large"},
        ],
    }
    assert _invalid_items(answer) == {
        3: "device: Input should be 'mobile'",
        7: "ad_position: too large",
    }
    assert _invalid_items({"error": "batch too large", "detail": [{"loc": ["requests"]}]}) == {}
