"""The platform names no column or concept of a particular use case: everything specific to
ad-click lives under usecases/adclick/ and expectations/adclick/, so a fork replaces it whole.

(`adclick` itself may appear: it is the default value of MLOPS_USE_CASE.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlops.config.settings import PROJECT_ROOT
from mlops.contracts.usecase import load_use_case

PLATFORM = (
    "entrypoints",
    "mlops",
    "flows",
    "ingestion",
    "models",
    "serving",
    "monitoring",
    "feature_repo",
)
SOURCES = ("*.py", "*.yaml", "*.yml", "*.html")
CONCEPTS = {"click", "clicks", "clicked", "impression", "impressions", "ctr", "advertiser"}
# Contract names that are also everyday words ("users" of the platform): names only as a string
# or a file name, e.g. "users" or users.parquet.
WORDS = {"users", "ads"}


def adclick_names() -> set[str]:
    use_case = load_use_case("adclick")
    names = {use_case.label, use_case.score_name, use_case.feature_service}
    names |= {use_case.oracle_column or ""}
    names |= {*use_case.entity_keys, *use_case.request_columns, *use_case.categories}
    for table in use_case.tables:
        names |= {table.name, table.id_column, table.timestamp_column}
    for obj in use_case.feast_definitions(lambda view: view):
        if type(obj).__name__ == "Entity":  # its name ("user") is a word; its keys are not
            continue
        names.add(obj.name)
        names |= {field.name for field in getattr(obj, "schema", [])}
    # Feast's own name for the timestamp of an entity row is the platform's, not ad-click's.
    return (names - {"", "event_timestamp"}) | CONCEPTS


def platform_files() -> list[Path]:
    return sorted(
        path
        for package in PLATFORM
        for pattern in SOURCES
        for path in (PROJECT_ROOT / package).rglob(pattern)
    )


def test_the_check_sees_the_platform_and_the_contract() -> None:
    assert len(platform_files()) > 40
    assert {"user_id", "clicked", "impressions", "user_ctr_7d", "click_model"} <= adclick_names()


@pytest.mark.parametrize("path", platform_files(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_no_platform_file_names_an_adclick_column_or_concept(path: Path) -> None:
    text = path.read_text()
    patterns = {
        name: rf"[\"']{name}[\"']|\b{name}\.parquet" if name in WORDS else rf"\b{re.escape(name)}\b"
        for name in adclick_names()
    }
    found = sorted(name for name, pattern in patterns.items() if re.search(pattern, text))
    assert not found, f"{path.relative_to(PROJECT_ROOT)} names {found}: use the UseCase instead"
