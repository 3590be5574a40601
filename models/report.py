"""What a training run tells its reader: `mlops train --json`, and the Prefect artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlops.metrics import METRICS, finite_or_none
from models.evaluation import Evaluation

MODELS_IN_TABLE = ("model", "champion", "logistic", "prior", "oracle")


@dataclass
class TrainReport:
    run_id: str
    model_name: str
    version: str
    decision: str
    reason: str
    metrics: dict[str, float | None]
    baseline_metrics: dict[str, dict[str, float | None]]
    oracle_metrics: dict[str, float | None] | None
    champion_version: str | None
    champion_metrics: dict[str, float | None] | None
    slices: dict[str, dict[str, float | None]]
    lineage: dict[str, Any]
    params: dict[str, Any]
    run_url: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(cls, evaluations: dict[str, Evaluation], **fields: Any) -> TrainReport:
        def metrics(name: str) -> dict[str, float | None] | None:
            return finite_or_none(evaluations[name].metrics) if name in evaluations else None

        return cls(
            metrics=metrics("model") or {},
            baseline_metrics={
                "prior": metrics("prior") or {},
                "logistic": metrics("logistic") or {},
            },
            oracle_metrics=metrics("oracle"),
            champion_metrics=metrics("champion"),
            slices={k: finite_or_none(v) for k, v in evaluations["model"].slices.items()},
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        scored = {
            "model": self.metrics,
            "champion": self.champion_metrics,
            "logistic": self.baseline_metrics["logistic"],
            "prior": self.baseline_metrics["prior"],
            "oracle": self.oracle_metrics,
        }
        names = {
            "model": f"challenger v{self.version}",
            "champion": f"champion v{self.champion_version}",
        }
        lines = [
            f"# {self.model_name} v{self.version}: {self.decision}",
            "",
            self.reason,
            "",
            "Test window " + f"{self.lineage['windows']['test_start']} .. "
            f"{self.lineage['windows']['end']}, {self.lineage['rows']['test']} rows.",
            "",
            "| model | " + " | ".join(METRICS) + " |",
            "|---|" + "---:|" * len(METRICS),
        ]
        for key in MODELS_IN_TABLE:
            if row := scored[key]:
                values = " | ".join(_fmt(row.get(m)) for m in METRICS)
                lines.append(f"| {names.get(key, key)} | {values} |")
        ours, oracle = self.metrics.get("nce"), (self.oracle_metrics or {}).get("nce")
        if ours is not None and oracle is not None:
            gap = ours - oracle
            lines += ["", f"NCE gap to the oracle (the best any model can do): {gap:+.4f}"]
        lines += ["", "| check | passed | detail |", "|---|---|---|"]
        lines += [f"| {c['name']} | {c['passed']} | {c['detail']} |" for c in self.checks]
        lines += ["", f"[MLflow run]({self.run_url})"]
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
