"""What validating a table yields: its clean rows, and its quarantined rows with their reasons.

Rows an earlier batch already brought in are quarantined too (`already_ingested`, see
`mark_already_ingested`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

log = logging.getLogger(__name__)

REASON_COLUMN = "_reasons"
# The reason of an event row whose id an earlier, committed batch already stored.
ALREADY_INGESTED = "already_ingested"


@dataclass
class TableValidation:
    table: str
    clean: pd.DataFrame
    quarantined: pd.DataFrame  # the failing rows as landed, plus REASON_COLUMN
    problems: list[str] = field(default_factory=list)  # table-level: the table is unusable
    already_in: tuple[str, ...] = ()  # batches that already hold rows of this one

    @property
    def rows(self) -> int:
        return len(self.clean) + len(self.quarantined)

    @property
    def already_ingested(self) -> int:
        return int((self.quarantined[REASON_COLUMN] == ALREADY_INGESTED).sum())

    @property
    def failing_fraction(self) -> float:
        """The share of rows that broke a rule. Rows already ingested are left out: a resent
        row says nothing about the quality of the data."""
        considered = self.rows - self.already_ingested
        failing = len(self.quarantined) - self.already_ingested
        return failing / considered if considered else 0.0

    def reason_counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for reasons in self.quarantined[REASON_COLUMN]:
            counts.update(reasons.split("; "))
        return dict(sorted(counts.items()))


def mark_already_ingested(
    result: TableValidation, id_column: str, seen: pd.DataFrame
) -> TableValidation:
    """Move clean rows whose id is in `seen` (columns `id`, `batch_id`: ids earlier committed
    batches stored) to quarantine, with the reason `already_ingested`."""
    if seen.empty:
        return result
    duplicate = result.clean[id_column].isin(seen["id"])
    moved = result.clean[duplicate].assign(**{REASON_COLUMN: ALREADY_INGESTED})
    log.info("%s: %d rows were already ingested", result.table, len(moved))
    return TableValidation(
        result.table,
        result.clean[~duplicate],
        pd.concat([result.quarantined, moved]).sort_index(),
        result.problems,
        tuple(sorted(set(map(str, seen["batch_id"])))),
    )


def move_to_quarantine(result: TableValidation, rows: pd.Series, reason: str) -> TableValidation:
    """Move the clean rows `rows` (a boolean mask over `result.clean`) to quarantine, with
    `reason`."""
    moved = result.clean[rows].assign(**{REASON_COLUMN: reason})
    log.info("%s: %d rows quarantined as %s", result.table, len(moved), reason)
    return TableValidation(
        result.table,
        result.clean[~rows],
        pd.concat([result.quarantined, moved]).sort_index(),
        result.problems,
        result.already_in,
    )
