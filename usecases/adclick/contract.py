"""The ad-click data contract: tables, keys, label and the categories the suites allow.

The reviewed GX suites in expectations/adclick/ state the same facts as rules; a unit test keeps
the two in agreement.
"""

from mlops.contracts.usecase import TableSpec

IMPRESSIONS = TableSpec(
    "impressions", id_column="impression_id", timestamp_column="event_timestamp"
)
USERS = TableSpec("users", id_column="user_id", timestamp_column="signup_at")
ADS = TableSpec("ads", id_column="ad_id", timestamp_column="created_at")
TABLES = (IMPRESSIONS, USERS, ADS)

LABEL = "clicked"
# The generator's true click probability: the oracle for evaluation, never a feature.
ORACLE = "click_probability"
# The best prediction possible from the days before (generator.py): the Bayes ceiling.
CEILING = "knowable_probability"

DEVICES = ("mobile", "desktop", "tablet")
AD_POSITIONS = (1, 2, 3, 4, 5)
AGE_BUCKETS = ("18-24", "25-34", "35-44", "45-54", "55+")
COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR")
AD_CATEGORIES = ("electronics", "fashion", "travel", "finance", "gaming", "food")
