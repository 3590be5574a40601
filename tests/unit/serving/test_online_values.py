"""Stored online values of the wrong type or shape read as missing for their entity (counted,
logged once per cause), never as an error for the whole request; the store's problems in
words, never its bytes."""

from __future__ import annotations

import logging

import pytest

from mlops.config.settings import Settings
from mlops.stores.feature_store import repo_config
from serving.online_store_reader import OnlineFeatures, in_words

NUMERIC = ("FLOAT", "DOUBLE", "INT64", "INT32")


@pytest.fixture
def features(tmp_path, use_case) -> OnlineFeatures:
    settings = Settings(home=tmp_path, profile="local")
    return OnlineFeatures(
        repo_config(settings, use_case),
        use_case.feast_definitions(lambda view: view),
        use_case.feature_service,
    )


def numeric_feature(features: OnlineFeatures) -> tuple[str, str, object]:
    """A numeric feature of the use case: its view, name and Feast value type."""
    for v in features.views:
        for name, value_type in zip(v.features, v.feature_types, strict=True):
            if value_type.name in NUMERIC:
                return v.view.name, name, value_type
    raise AssertionError("the use case has no numeric feature")


def stored(**value: object) -> bytes:
    from feast.protos.feast.types.Value_pb2 import Value

    return Value(**value).SerializeToString()


def test_a_value_of_the_wrong_type_reads_as_missing_and_is_counted(features, caplog):
    view, name, value_type = numeric_feature(features)
    told: list[tuple[str, str]] = []
    features.on_unreadable = lambda *seen: told.append(seen)
    wrong = {name: stored(string_val="not a number")}
    with caplog.at_level(logging.ERROR, logger="serving.online_store_reader"):
        for _ in range(3):  # decoded once, then from the cache: counted each time
            assert features._decoded(wrong, name, value_type) is None
    cause = (view, "values of the wrong type")
    assert features.unreadable[cause] == 3 and told == [cause] * 3
    logged = [r for r in caplog.records if "wrong type" in r.getMessage()]
    assert len(logged) == 1  # once per cause
    assert view in logged[0].getMessage() and "not a number" not in logged[0].getMessage()


def test_bytes_that_are_not_a_value_read_as_missing(features):
    view, name, value_type = numeric_feature(features)
    assert features._decoded({name: b"\xff\xff\xff"}, name, value_type) is None
    assert features.unreadable[(view, "values that do not decode")] == 1


def test_numbers_of_another_width_and_empty_values_are_not_errors(features):
    _, name, value_type = numeric_feature(features)
    assert features._decoded({name: stored(int64_val=3)}, name, value_type) == 3
    assert features._decoded({name: stored(double_val=0.5)}, name, value_type) == 0.5
    assert features._decoded({name: stored()}, name, value_type) is None
    assert features._decoded(None, name, value_type) is None
    assert not features.unreadable


def test_the_stores_problems_are_told_in_words_without_its_bytes():
    from google.protobuf.message import DecodeError

    assert "\\x" not in in_words(DecodeError("Error parsing message"))
    said = in_words(KeyError(b"\x02\x00\x00\x00user_id\x04adclick"))
    assert "user_id" not in said and "<bytes>" in said
    assert in_words(ConnectionError("Error 111 connecting to 127.0.0.1:6379")).endswith(
        "Error 111 connecting to 127.0.0.1:6379"
    )
