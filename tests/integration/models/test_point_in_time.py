"""Point-in-time correctness: a training row never sees a value known after its own time."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops.stores.feature_store import open_store
from tests.support.stores import land_days, offline_impressions

pytestmark = pytest.mark.integration


def test_training_rows_only_see_features_known_before_them(settings, use_case, prefect_api_url):
    from flows.ingest import ingest

    batches = land_days(settings.landing_dir, days=4, events_per_day=800)
    ingest(batches)
    impressions = offline_impressions(settings.offline_dir)
    closes = sorted(pd.Timestamp(b.name, tz="UTC") + timedelta(days=1) for b in batches)

    # Every impression, plus probes one microsecond before and at each batch close.
    sample = impressions.sample(400, random_state=0)[["user_id", "ad_id", "event_timestamp"]]
    user, ad = int(sample["user_id"].iloc[0]), int(sample["ad_id"].iloc[0])
    probes = pd.DataFrame(
        [
            (user, ad, c + d)
            for c in closes[:-1]
            for d in (-timedelta(microseconds=1), timedelta(0))
        ],
        columns=["user_id", "ad_id", "event_timestamp"],
    )
    entity_df = pd.concat([sample, probes], ignore_index=True)
    entity_df["event_timestamp"] = pd.to_datetime(entity_df["event_timestamp"], utc=True)

    store = open_store(settings, use_case)
    training = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(use_case.feature_service)
    ).to_df()

    assert len(training) == len(entity_df)
    for row in training.itertuples(index=False):
        known = [c for c in closes if c <= row.event_timestamp]
        if not known:  # before the first close nothing was known yet
            assert np.isnan(row.user_impressions_7d)
            continue
        as_of = known[-1]
        mine = impressions[impressions["user_id"] == row.user_id]
        window = mine["event_timestamp"].between(
            as_of - timedelta(days=7), as_of, inclusive="right"
        )
        # No activity row for an entity idle all window: Feast gives NaN, which means zero.
        seen = np.nan_to_num([row.user_impressions_7d, row.user_clicks_7d])
        assert list(seen) == [window.sum(), mine.loc[window, "clicked"].sum()], (row, as_of)
