import numpy as np
import pandas as pd

from usecases.adclick import USE_CASE
from usecases.adclick.model import CATEGORIES, FEATURES, slices


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_timestamp": pd.to_datetime(["2026-01-02 13:00", "2026-01-02 23:59"], utc=True),
            "device": pd.array(["mobile", "smart-tv"], dtype="string"),
            "ad_position": pd.array([1, None], dtype="Int64"),
            "user_age_bucket": ["18-24", None],
            "user_country": ["US", "GB"],
            "ad_category": ["travel", "food"],
            "ad_advertiser_id": [3, 4],
            "user_impressions_7d": [4.0, np.nan],
            "user_clicks_7d": [1.0, np.nan],
            "user_ctr_7d": [0.05, np.nan],
            "ad_impressions_7d": [10.0, 2.0],
            "ad_clicks_7d": [0.0, 1.0],
            "ad_ctr_7d": [0.03, 0.04],
            "user_impressions_28d": [9.0, np.nan],
            "user_expected_clicks_28d": [0.4, np.nan],
            "user_click_effect_28d": [0.3, np.nan],
            "ad_impressions_28d": [40.0, 5.0],
            "ad_expected_clicks_28d": [1.2, 0.1],
            "ad_click_effect_28d": [-0.2, 0.1],
        }
    )


def test_model_inputs_have_fixed_categories_and_floats():
    inputs = USE_CASE.input_frame(rows())
    assert list(inputs.columns) == list(FEATURES)
    assert list(inputs["device"].cat.categories) == ["mobile", "desktop", "tablet"]
    assert pd.isna(inputs["device"].iloc[1])  # unseen value reads as missing, not a new code
    assert inputs["hour_of_day"].tolist() == [13.0, 23.0]
    assert np.isnan(inputs["ad_position"].iloc[1])
    assert all(inputs[c].dtype == "float32" for c in FEATURES if c not in CATEGORIES)


def test_context_crosses_are_one_category_each_and_missing_if_a_part_is():
    inputs = USE_CASE.input_frame(rows())
    assert inputs["age_x_category"].tolist()[0] == "18-24|travel"
    assert inputs["device_x_position"].tolist()[0] == "mobile|1"
    # An unseen device, a missing age bucket or slot: the cross is missing too.
    assert inputs[["age_x_category", "device_x_position"]].iloc[1].isna().all()


def test_slices_split_new_from_returning_users():
    assert slices(rows())["user"].tolist() == ["returning", "new"]
