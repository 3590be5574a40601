import pytest

from mlops.cli import _entity_row
from mlops.errors import UserError

KEYS = ("user_id", "ad_id")


def test_entity_options_map_to_join_keys() -> None:
    assert _entity_row(["--user-id", "3", "--ad-id", "7"], KEYS) == {"user_id": 3, "ad_id": 7}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "expected --user-id VALUE --ad-id VALUE"),
        (["--user-id", "3"], "missing ad_id"),
        (["--user-id", "3", "--color", "red"], "unknown option --color"),
        (["--user-id"], "expected"),
    ],
)
def test_bad_entity_options_get_a_clear_message(args: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        _entity_row(args, KEYS)
