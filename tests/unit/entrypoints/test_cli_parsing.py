import pytest

from entrypoints.cli.conventions import parse_entity_row
from mlops.config.errors import UserError
from mlops.contracts.usecase import load_use_case


def test_entity_options_map_to_join_keys(use_case) -> None:
    row = parse_entity_row(["--user-id", "3", "--ad-id", "7"], use_case)
    assert row == {"user_id": 3, "ad_id": 7}


def test_a_string_key_of_digits_stays_a_string() -> None:
    diagnosis = load_use_case("diagnosis")
    assert parse_entity_row(["--patient-id", "00042"], diagnosis) == {"patient_id": "00042"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "expected --user-id VALUE --ad-id VALUE"),
        (["--user-id", "3"], "missing ad_id"),
        (["--user-id", "3", "--color", "red"], "unknown option --color"),
        (["--user-id"], "expected"),
    ],
)
def test_bad_entity_options_get_a_clear_message(use_case, args: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_entity_row(args, use_case)


def test_init_use_case_offers_every_task_kind() -> None:
    from typing import get_args

    from entrypoints.cli.use_case_commands import TaskChoice
    from mlops.contracts.tasks import TaskKind

    assert get_args(TaskChoice) == get_args(TaskKind)
