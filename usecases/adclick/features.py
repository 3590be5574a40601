"""Ad-click features: entity attributes and behaviour aggregates, and their Feast objects.

Every feature row is stamped with the time its value became known: a profile at signup or
creation, an aggregate at the close of the batch it was computed from. A point-in-time join then
gives an impression only what was known before it happened.

Why clicks over expected clicks: a user's raw CTR mixes who the user is with where they were
shown ads. One who happened to see mostly top slots on mobile looks like a clicker; one shown
bottom slots looks indifferent, though both may be average. So each entity's history is also
measured against its exposure: every past impression gets the click rate its context alone
predicts (a table over age bucket x category x device x slot x hour bucket, built from the same
history, each cell smoothed toward what its parts predict), and the entity's effect is
log((clicks + a) / (expected clicks + a)): 0 for an average entity, positive for one that clicks
more than where it was shown would predict, pulled toward 0 while it has little history (`a`).
The effects are log-odds shifts, so the model can start from their sum (`BASE_MARGIN`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlops.contracts.usecase import FeatureInputs
from mlops.stores.offline_store import quoted
from usecases.adclick.contract import ADS, IMPRESSIONS, LABEL, USERS

FEATURE_SERVICE = "click_model"
TIMESTAMP = "event_timestamp"
RECENT_DAYS = 7  # recent activity: what changed lately
HISTORY_DAYS = 28  # the exposure-corrected history: long enough to know an entity
CTR_PRIOR_WEIGHT = 20  # impressions' worth of the global CTR mixed into each entity's 7-day CTR
CONTEXT_PRIOR_WEIGHT = 100  # impressions' worth of its parts' prediction in each context cell
EFFECT_PRIOR_CLICKS = 2.0  # expected clicks' worth of "average" in each entity's effect
HOUR_BUCKET_HOURS = 3
ENTITIES = {"user": "user_id", "ad": "ad_id"}
# Model inputs whose sum is a log-odds shift: where the model starts (UseCase.base_margin).
BASE_MARGIN = tuple(f"{entity}_click_effect_{HISTORY_DAYS}d" for entity in ENTITIES)


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
        **{
            f"{entity}_activity": _activity(inputs, key, entity, inputs.closed_at)
            for entity, key in ENTITIES.items()
        },
    }


def _activity(inputs: FeatureInputs, key: str, prefix: str, as_of: datetime) -> pd.DataFrame:
    """Per entity, up to `as_of`: impressions, clicks and smoothed CTR over the last 7 days;
    impressions, clicks, expected clicks and the exposure-corrected effect over the last 28.

    Entities active in the last 29 days get a row, so one that went quiet gets a final row of
    zeros instead of keeping its counts forever.
    """
    # Names from the contract, checked and quoted; values are parameters.
    entity, label = quoted(key), quoted(LABEL)
    ts, impressions = quoted(IMPRESSIONS.timestamp_column), quoted(IMPRESSIONS.name)
    users, ads = quoted(USERS.name), quoted(ADS.name)
    context = ("age_bucket", "category", "device", "ad_position", "hour_bucket")

    def smoothed(keys: Sequence[str]) -> str:
        """The CTR of each group of `keys`, smoothed toward the window's CTR."""
        columns = ", ".join(keys)
        return f"""SELECT {columns}, (sum(clicked) + $weight * any_value(overall.ctr))
                          / (count(*) + $weight) AS ctr
                   FROM known, overall GROUP BY {columns}"""

    def same(left: str, right: str, keys: Sequence[str]) -> str:
        return " AND ".join(f"{left}.{k} IS NOT DISTINCT FROM {right}.{k}" for k in keys)

    frame = inputs.history.execute(
        f"""
        WITH events AS (
            SELECT i.{entity} AS entity, i.{label} AS clicked,
                   i.{ts} > $since_recent AS recent, i.{ts} > $since AS known,
                   u.age_bucket, a.category, i.device, i.ad_position,
                   (epoch(i.{ts}) // {HOUR_BUCKET_HOURS * 3600})::BIGINT
                       % {24 // HOUR_BUCKET_HOURS} AS hour_bucket
            FROM {impressions} i
            LEFT JOIN (SELECT user_id, min(age_bucket) AS age_bucket
                       FROM {users} GROUP BY user_id) u ON u.user_id = i.user_id
            LEFT JOIN (SELECT ad_id, min(category) AS category
                       FROM {ads} GROUP BY ad_id) a ON a.ad_id = i.ad_id
            WHERE i.{ts} > $since - INTERVAL 1 DAY AND i.{ts} <= $as_of
        ),
        known AS (SELECT * FROM events WHERE known),
        overall AS (SELECT coalesce(avg(clicked), 0) AS ctr FROM known),
        taste AS ({smoothed(("age_bucket", "category"))}),
        slot AS ({smoothed(("device", "ad_position"))}),
        hours AS ({smoothed(("hour_bucket",))}),
        cells AS (
            SELECT {", ".join(context)}, count(*) AS shown, sum(clicked) AS clicks
            FROM known GROUP BY ALL
        ),
        -- A cell's CTR, smoothed toward the product of its parts' (their log-odds add up).
        context AS (
            SELECT c.*, (c.clicks + $weight * CASE WHEN overall.ctr > 0
                    THEN least(taste.ctr * slot.ctr * hours.ctr / overall.ctr ^ 2, 1)
                    ELSE 0 END) / (c.shown + $weight) AS ctr
            FROM cells c, overall
            JOIN taste ON {same("c", "taste", ("age_bucket", "category"))}
            JOIN slot ON {same("c", "slot", ("device", "ad_position"))}
            JOIN hours ON {same("c", "hours", ("hour_bucket",))}
        ),
        exposure AS (
            SELECT entity, sum(context.ctr) AS expected
            FROM known JOIN context ON {same("known", "context", context)}
            GROUP BY entity
        ),
        recent AS (SELECT coalesce(avg(clicked) FILTER (WHERE recent), 0) AS ctr FROM events)
        SELECT entity,
               count(*) FILTER (WHERE recent) AS impressions_recent,
               coalesce(sum(clicked) FILTER (WHERE recent), 0) AS clicks_recent,
               any_value(recent.ctr) AS prior_ctr,
               count(*) FILTER (WHERE known) AS impressions,
               coalesce(sum(clicked) FILTER (WHERE known), 0) AS clicks,
               coalesce(any_value(exposure.expected), 0) AS expected
        FROM events LEFT JOIN exposure USING (entity), recent
        GROUP BY entity
        ORDER BY entity
        """,
        {
            "since_recent": as_of - timedelta(days=RECENT_DAYS),
            "since": as_of - timedelta(days=HISTORY_DAYS),
            "as_of": as_of,
            "weight": CONTEXT_PRIOR_WEIGHT,
        },
    ).df()
    ctr = (frame["clicks_recent"] + CTR_PRIOR_WEIGHT * frame["prior_ctr"]) / (
        frame["impressions_recent"] + CTR_PRIOR_WEIGHT
    )
    effect = np.log(
        (frame["clicks"] + EFFECT_PRIOR_CLICKS) / (frame["expected"] + EFFECT_PRIOR_CLICKS)
    )
    recent, history = f"{RECENT_DAYS}d", f"{HISTORY_DAYS}d"
    return pd.DataFrame(
        {
            key: frame["entity"].astype("int64"),
            TIMESTAMP: pd.Timestamp(as_of),
            f"{prefix}_impressions_{recent}": frame["impressions_recent"].astype("int64"),
            f"{prefix}_clicks_{recent}": frame["clicks_recent"].astype("int64"),
            f"{prefix}_ctr_{recent}": ctr.astype("float32"),
            f"{prefix}_impressions_{history}": frame["impressions"].astype("int64"),
            f"{prefix}_clicks_{history}": frame["clicks"].astype("int64"),
            f"{prefix}_expected_clicks_{history}": frame["expected"].astype("float32"),
            f"{prefix}_click_effect_{history}": effect.astype("float32"),
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
        recent, history = f"{RECENT_DAYS}d", f"{HISTORY_DAYS}d"
        return view(
            f"{prefix}_activity",
            entity,
            ttl_days=2 * HISTORY_DAYS,
            schema=[
                Field(name=f"{prefix}_impressions_{recent}", dtype=Int64),
                Field(name=f"{prefix}_clicks_{recent}", dtype=Int64),
                Field(name=f"{prefix}_ctr_{recent}", dtype=Float32),
                Field(name=f"{prefix}_impressions_{history}", dtype=Int64),
                Field(name=f"{prefix}_clicks_{history}", dtype=Int64),
                Field(name=f"{prefix}_expected_clicks_{history}", dtype=Float32),
                Field(name=f"{prefix}_click_effect_{history}", dtype=Float32),
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
        *(activity(prefix, entity) for prefix, entity in (("user", user), ("ad", ad))),
    ]
    service = FeatureService(name=FEATURE_SERVICE, features=[*views])
    return [user, ad, *views, service]
