from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.config.errors import UserError
from tests.support.session import START
from usecases.adclick.generator import INCIDENT_DEVICE, generate

ORACLES = ("click_probability", "knowable_probability")


def _impressions(batches: list[Path]) -> pd.DataFrame:
    return pd.concat(pd.read_parquet(b / "impressions.parquet") for b in batches)


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", start=START, days=1, events_per_day=500, seed=1)
    b = generate(tmp_path / "b", start=START, days=1, events_per_day=500, seed=1)
    c = generate(tmp_path / "c", start=START, days=1, events_per_day=500, seed=2)
    pd.testing.assert_frame_equal(_impressions(a), _impressions(b))
    assert not _impressions(a).equals(_impressions(c))


def test_batches_are_daily_with_realistic_ctr_and_an_oracle(tmp_path: Path) -> None:
    batches = generate(tmp_path, start=START, days=3, events_per_day=20_000, seed=3)
    assert [b.name for b in batches] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    impressions = _impressions(batches)
    assert 0.01 <= impressions["clicked"].mean() <= 0.05
    assert impressions["click_probability"].between(0, 1).all()
    assert str(impressions["event_timestamp"].dt.tz) == "UTC"
    assert impressions["impression_id"].is_unique
    for batch in batches:
        day = pd.read_parquet(batch / "impressions.parquet")["event_timestamp"]
        assert (day.dt.date.astype(str) == batch.name).all()


def test_the_ceiling_knows_more_each_day_and_never_more_than_the_oracle(tmp_path: Path) -> None:
    """The Bayes ceiling (`knowable_probability`): on the first day nothing is known of anyone
    beyond the context; each day's clicks tell more of each user and ad, so it follows the
    oracle more closely, and it never scores better than the oracle."""
    from mlops.contracts.metrics import nce

    batches = generate(tmp_path, start=START, days=4, events_per_day=20_000, seed=3)
    days = [pd.read_parquet(b / "impressions.parquet") for b in batches]

    def log_odds(p: pd.Series) -> np.ndarray:
        return np.log(p / (1 - p)).to_numpy()

    follows = [
        np.corrcoef(log_odds(d["knowable_probability"]), log_odds(d["click_probability"]))[0, 1]
        for d in days
    ]
    assert follows[-1] > follows[0] + 0.05, follows
    last = days[-1]
    scores = {c: nce(last["clicked"].to_numpy(float), last[c].to_numpy(float)) for c in ORACLES}
    assert scores["click_probability"] < scores["knowable_probability"] < 1.0, scores


def test_users_and_ads_appear_over_time(tmp_path: Path) -> None:
    batches = generate(tmp_path, start=START, days=4, events_per_day=5_000, seed=4)
    first_day_users = set(pd.read_parquet(batches[0] / "users.parquet")["user_id"])
    last_day_users = pd.read_parquet(batches[-1] / "users.parquet")
    newcomers = last_day_users[~last_day_users["user_id"].isin(first_day_users)]
    assert (newcomers["signup_at"] > pd.Timestamp(START, tz="UTC")).any()
    impressions = _impressions(batches).merge(
        pd.concat(pd.read_parquet(b / "users.parquet") for b in batches).drop_duplicates("user_id")
    )
    assert (impressions["event_timestamp"] >= impressions["signup_at"]).all()


def test_concept_drift_changes_who_clicks_not_the_traffic(tmp_path: Path) -> None:
    base = _impressions(
        generate(
            tmp_path / "b", start=START, days=2, events_per_day=20_000, seed=5, scenario="baseline"
        )
    )
    drift = _impressions(
        generate(
            tmp_path / "d",
            start=START,
            days=2,
            events_per_day=20_000,
            seed=5,
            scenario="concept-drift",
            drift_day=1,
        )
    )
    day2 = base["event_timestamp"].dt.day == 2
    assert (base["device"] == drift["device"]).all()
    np.testing.assert_allclose(
        base.loc[~day2, "click_probability"], drift.loc[~day2, "click_probability"]
    )
    assert not np.allclose(
        base.loc[day2, "click_probability"], drift.loc[day2, "click_probability"]
    )


def test_covariate_shift_moves_the_traffic_mix(tmp_path: Path) -> None:
    imps = _impressions(
        generate(
            tmp_path,
            start=START,
            days=2,
            events_per_day=20_000,
            seed=6,
            scenario="covariate-shift",
            drift_day=1,
        )
    )
    mobile = imps.groupby(imps["event_timestamp"].dt.day)["device"].apply(
        lambda d: (d == "mobile").mean()
    )
    assert mobile[2] > mobile[1] + 0.15


def test_data_incident_breaks_some_rows_on_one_day_only(tmp_path: Path) -> None:
    batches = generate(
        tmp_path,
        start=START,
        days=3,
        events_per_day=3_000,
        seed=7,
        scenario="data-incident",
        drift_day=1,
    )
    for i, batch in enumerate(batches):
        imps = pd.read_parquet(batch / "impressions.parquet")
        broken = (
            imps["device"].isna() | (imps["device"] == INCIDENT_DEVICE) | (imps["ad_position"] > 5)
        )
        assert broken.any() == (i == 1)
        if i == 1:
            assert 0 < broken.mean() < 0.05


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown scenario"):
        generate(tmp_path, start=START, scenario="meteor")
    with pytest.raises(UserError, match="at least 1"):
        generate(tmp_path, start=START, days=0)
