"""What an ingest run reports: a `BatchReport` per batch, the run's `IngestResult`, and
`BatchesRejected`, raised when a gate refused a batch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops.config.errors import Rejected

if TYPE_CHECKING:
    from ingestion.data_gate import GateDecision
    from ingestion.table_validation import TableValidation
    from mlops.contracts.batches import LandedBatch
    from mlops.contracts.usecase import UseCase


@dataclass
class BatchReport:
    """What happened to one batch; what `mlops ingest --json` prints and the artifact shows."""

    batch_id: str
    status: Literal["ingested", "rejected"]
    reason: str
    rows: int = 0  # event-table rows landed
    valid: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    quarantine_path: str | None = None
    offline_rows: int = 0  # event-table rows in the offline store afterwards
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    data_docs: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [
            f"# Ingest `{self.batch_id}`: {self.status}",
            "",
            f"{self.reason}",
            "",
            "| table | rows in | clean | quarantined |",
            "|---|---:|---:|---:|",
            *(
                f"| {name} | {t['rows']} | {t['valid']} | {t['quarantined']} |"
                for name, t in self.tables.items()
            ),
            "",
            f"Offline store now holds **{self.offline_rows}** event rows.",
        ]
        if self.quarantined_by_reason:
            lines += ["", "| quarantine reason | rows |", "|---|---:|"]
            lines += [f"| `{r}` | {n} |" for r, n in self.quarantined_by_reason.items()]
        if self.quarantine_path:
            lines += ["", f"Quarantine: `{self.quarantine_path}`"]
        if self.data_docs:
            lines += ["", f"[GX data docs]({Path(self.data_docs).as_uri()})"]
        return "\n".join(lines)


@dataclass
class IngestResult:
    """Every batch an ingest run saw, in order; what `mlops ingest --json` prints."""

    batches: list[BatchReport]

    @property
    def rejected(self) -> list[BatchReport]:
        return [b for b in self.batches if b.status == "rejected"]

    @property
    def offline_rows(self) -> int:
        return self.batches[-1].offline_rows if self.batches else 0

    def to_dict(self) -> dict[str, Any]:
        return {"batches": [b.to_dict() for b in self.batches], "offline_rows": self.offline_rows}


class BatchesRejected(Rejected):
    """A gate rejected one or more batches; `result` still reports every batch."""

    def __init__(self, result: IngestResult) -> None:
        rejected = result.rejected
        summary = "; ".join(f"batch {r.batch_id}: {r.reason}" for r in rejected)
        super().__init__(f"{len(rejected)} of {len(result.batches)} batch(es) rejected. {summary}")
        self.result = result


def batch_report(
    batch: LandedBatch,
    results: dict[str, TableValidation],
    decision: GateDecision,
    use_case: UseCase,
    quarantine_path: Path | None,
    offline_rows: int,
    data_docs: Path | None,
) -> BatchReport:
    """The report of a batch that was read and validated, passed or refused by the gate; no
    `quarantine_path`: refused before anything was written, nothing quarantined."""
    events = results[use_case.event_table]
    reasons: dict[str, int] = {}
    for result in results.values():
        for reason, count in result.reason_counts().items():
            reasons[f"{result.table}.{reason}"] = count
    if quarantine_path is None:
        return BatchReport(
            batch_id=batch.batch_id,
            status="rejected",
            reason=decision.reason,
            rows=events.rows,
            offline_rows=offline_rows,
            tables={n: {"rows": r.rows, "valid": 0, "quarantined": 0} for n, r in results.items()},
            data_docs=str(data_docs) if data_docs else None,
        )
    quarantined_events = events.rows if not decision.passed else len(events.quarantined)
    return BatchReport(
        batch_id=batch.batch_id,
        status="ingested" if decision.passed else "rejected",
        reason=decision.reason,
        rows=events.rows,
        valid=events.rows - quarantined_events,
        quarantined=quarantined_events,
        quarantined_by_reason=reasons,
        quarantine_path=str(quarantine_path),
        offline_rows=offline_rows,
        tables={
            name: {
                "rows": r.rows,
                "valid": len(r.clean) if decision.passed else 0,
                "quarantined": len(r.quarantined) if decision.passed else r.rows,
            }
            for name, r in results.items()
        },
        data_docs=str(data_docs) if data_docs else None,
    )
