"""Ad-click features: entity attributes and 7-day behaviour aggregates, and their Feast objects.

Every feature row is stamped with the time its value became known: a profile at signup or
creation, an aggregate at the close of the batch it was computed from. A point-in-time join then
gives an impression only what was known before it happened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from mlops.contracts.usecase import FeatureInputs
from mlops.stores.offline_store import quoted
from usecases.adclick.contract import ADS, IMPRESSIONS, LABEL, USERS

FEATURE_SERVICE = "click_model"
TIMESTAMP = "event_timestamp"
WINDOW_DAYS = 7
CTR_PRIOR_WEIGHT = 20  # impressions' worth of the global CTR mixed into each entity's CTR


def build_features(inputs: FeatureInputs) -> dict[str, pd.DataFrame]:
    """Feature rows for one batch, one frame per feature view."""
    users = inputs.tables[USERS.name]
    ads = inputs.tables[ADS.name]
    return {
        "user_profile": pd.DataFrame(
            {
                "user_id": users["user_id"],
                TIMESTAMP: users[USERS.timestamp_column],
                "user_age_bucket": users["age_bucket"],
                "user_country": users["country"],
            }
        ),
        "ad_profile": pd.DataFrame(
            {
                "ad_id": ads["ad_id"],
                TIMESTAMP: ads[ADS.timestamp_column],
                "ad_category": ads["category"],
                "ad_advertiser_id": ads["advertiser_id"],
            }
        ),
        "user_activity_7d": _activity(inputs, "user_id", "user", inputs.closed_at),
        "ad_activity_7d": _activity(inputs, "ad_id", "ad", inputs.closed_at),
    }


def _activity(inputs: FeatureInputs, key: str, prefix: str, as_of: datetime) -> pd.DataFrame:
    """Impressions, clicks and smoothed CTR over the 7 days up to `as_of`, per entity.

    Entities active in the last 8 days get a row, so one that went quiet gets a final row of
    zeros instead of keeping last week's counts forever.
    """
    window = timedelta(days=WINDOW_DAYS)
    # Names from the contract, checked and quoted; values are parameters.
    entity, label = quoted(key), quoted(LABEL)
    ts, impressions = quoted(IMPRESSIONS.timestamp_column), quoted(IMPRESSIONS.name)
    frame = inputs.history.execute(
        f"""
        WITH recent AS (
            SELECT {entity}, {label}, {ts} > $since AS in_window
            FROM {impressions}
            WHERE {ts} > $since - INTERVAL 1 DAY AND {ts} <= $as_of
        ), prior AS (
            SELECT coalesce(avg({label}) FILTER (WHERE in_window), 0) AS ctr FROM recent
        )
        SELECT {entity},
               count(*) FILTER (WHERE in_window) AS impressions,
               coalesce(sum({label}) FILTER (WHERE in_window), 0) AS clicks,
               any_value(prior.ctr) AS prior_ctr
        FROM recent, prior
        GROUP BY {entity}
        ORDER BY {entity}
        """,
        {"since": as_of - window, "as_of": as_of},
    ).df()
    ctr = (frame["clicks"] + CTR_PRIOR_WEIGHT * frame["prior_ctr"]) / (
        frame["impressions"] + CTR_PRIOR_WEIGHT
    )
    return pd.DataFrame(
        {
            key: frame[key].astype("int64"),
            TIMESTAMP: pd.Timestamp(as_of),
            f"{prefix}_impressions_7d": frame["impressions"].astype("int64"),
            f"{prefix}_clicks_7d": frame["clicks"].astype("int64"),
            f"{prefix}_ctr_7d": ctr.astype("float32"),
        }
    )


def feast_definitions(source_path: Callable[[str], str]) -> Sequence[Any]:
    """Entities, feature views and the model's feature service; `source_path(view)` is where
    the platform keeps that view's parquet partitions."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32, Int64, String

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    ad = Entity(name="ad", join_keys=["ad_id"], value_type=ValueType.INT64)

    def view(name: str, entity: Entity, ttl_days: int, schema: list[Field]) -> FeatureView:
        source = FileSource(
            name=f"{name}_source", path=source_path(name), timestamp_field=TIMESTAMP
        )
        return FeatureView(
            name=name, entities=[entity], ttl=timedelta(days=ttl_days), schema=schema, source=source
        )

    def activity(prefix: str, entity: Entity) -> FeatureView:
        return view(
            f"{prefix}_activity_7d",
            entity,
            ttl_days=2 * WINDOW_DAYS,
            schema=[
                Field(name=f"{prefix}_impressions_7d", dtype=Int64),
                Field(name=f"{prefix}_clicks_7d", dtype=Int64),
                Field(name=f"{prefix}_ctr_7d", dtype=Float32),
            ],
        )

    views = [
        view(
            "user_profile",
            user,
            ttl_days=3650,
            schema=[
                Field(name="user_age_bucket", dtype=String),
                Field(name="user_country", dtype=String),
            ],
        ),
        view(
            "ad_profile",
            ad,
            ttl_days=3650,
            schema=[
                Field(name="ad_category", dtype=String),
                Field(name="ad_advertiser_id", dtype=Int64),
            ],
        ),
        activity("user", user),
        activity("ad", ad),
    ]
    service = FeatureService(name=FEATURE_SERVICE, features=[*views])
    return [user, ad, *views, service]
