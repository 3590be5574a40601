"""The Ray engine's point-in-time join of one feature view, on plain frames (no Ray): the
newest feature row at or before each event, within the view's TTL, every event kept."""

import pandas as pd

from models.distributed import FeatureJoin, _join_view

TS = "event_timestamp"


def at(*days: int) -> list[pd.Timestamp]:
    return [pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=d) for d in days]


def test_each_event_gets_the_newest_feature_row_known_at_its_time_within_the_ttl() -> None:
    join = FeatureJoin(
        view="user_activity",
        path="unused",
        join_keys=("user_id",),
        timestamp=TS,
        features=("clicks",),
        ttl=pd.Timedelta(days=3),
    )
    features = pd.DataFrame({"user_id": [1, 1, 2], TS: at(0, 2, 0), "clicks": [10, 20, 30]}).astype(
        {TS: "datetime64[ns, UTC]"}
    )
    events = pd.DataFrame(
        {
            "impression_id": [1, 2, 3, 4, 5, 6],
            # Out of time order, two at the same moment: the join must keep them all, in place.
            TS: at(2, 1, 5, 2, 9, 2),
            "user_id": [1, 1, 2, 1, 1, 3],
        }
    ).astype({TS: "datetime64[us, UTC]"})

    joined = _join_view(events, features.sort_values(TS), join, TS)

    assert joined["impression_id"].tolist() == [1, 2, 3, 4, 5, 6]
    # 1: the row of day 2 counts at day 2; 2: only day 0 was known; 3: 5 days old > TTL;
    # 4: same as 1; 5: 7 days old; 6: an entity with no row.
    assert joined["clicks"].tolist()[:2] == [20, 10]
    assert joined["clicks"].iloc[3] == 20
    assert joined["clicks"].iloc[[2, 4, 5]].isna().all()
