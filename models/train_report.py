"""What a training run tells its reader: `mlops train --json`, and the Prefect artifact."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops.contracts.card import Floor
from mlops.contracts.metrics import Metric, finite_or_none
from models.evaluation import Evaluation
from models.noise import Bootstrap
from models.promotion import verdict

MODELS_IN_TABLE = ("model", "champion", "linear", "prior", "ceiling", "oracle")


@dataclass
class TrainReport:
    run_id: str
    model_name: str
    version: str
    decision: str
    reason: str
    primary: str  # the task's primary metric (`Task.primary`: nce, nrmse), a key of `metrics`
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
    # The floors with the challenger's bootstrap intervals on the test window (see `build`),
    # and the gate's warnings about floors inside them, also at the end of `reason`.
    noise: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    engine: str = "local"  # where the training set was joined and the model fitted
    # A simulation's Bayes ceiling (the best prediction from what was knowable) on the test
    # window, and the share of the lift from the prior to it that the model captured.
    ceiling_metrics: dict[str, float | None] | None = None
    reachable_lift: float | None = None

    @classmethod
    def build(
        cls,
        evaluations: dict[str, Evaluation],
        *,
        noise: Bootstrap | None = None,
        floors: Mapping[Metric, Floor] | None = None,
        **fields: Any,
    ) -> TrainReport:
        """`noise` and `floors` give the report's `noise`: `confidence`, `resamples`, `rows`
        and, per floor metric, the `floor`, the challenger's `value`, the interval's `low` and
        `high`, and whether the floor is `inside` it."""

        def metrics(name: str) -> dict[str, float | None] | None:
            return finite_or_none(evaluations[name].metrics) if name in evaluations else None

        if noise is not None:
            fields["noise"] = _noise(noise, floors or {}, evaluations["model"].metrics)
        return cls(
            metrics=metrics("model") or {},
            baseline_metrics={
                "prior": metrics("prior") or {},
                "linear": metrics("linear") or {},
            },
            oracle_metrics=metrics("oracle"),
            ceiling_metrics=metrics("ceiling"),
            reachable_lift=reachable_lift(evaluations, fields["primary"]),
            champion_metrics=metrics("champion"),
            slices={k: finite_or_none(v) for k, v in evaluations["model"].slices.items()},
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def verdict(self) -> str:
        """The reason without the warnings at its end."""
        return verdict(self.reason, self.warnings)

    def markdown(self) -> str:
        scored = {
            "model": self.metrics,
            "champion": self.champion_metrics,
            "linear": self.baseline_metrics["linear"],
            "prior": self.baseline_metrics["prior"],
            "ceiling": self.ceiling_metrics,
            "oracle": self.oracle_metrics,
        }
        names = {
            "model": f"challenger v{self.version}",
            "champion": f"champion v{self.champion_version}",
        }
        # The task's metrics, in its order; per-class ones (`recall.<class>`) stay in the JSON.
        columns = [metric for metric in self.metrics if "." not in metric]
        lines = [
            f"# {self.model_name} v{self.version}: {self.decision}",
            "",
            self.reason,
            "",
            "Test window " + f"{self.lineage['windows']['test_start']} .. "
            f"{self.lineage['windows']['end']}, {self.lineage['rows']['test']} rows.",
            "",
            "| model | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for key in MODELS_IN_TABLE:
            if row := scored[key]:
                values = " | ".join(_fmt(row.get(m)) for m in columns)
                lines.append(f"| {names.get(key, key)} | {values} |")
        primary = self.primary
        ours, oracle = self.metrics.get(primary), (self.oracle_metrics or {}).get(primary)
        if ours is not None and oracle is not None:
            gap = ours - oracle
            lines += [
                "",
                f"{primary.upper()} gap to the oracle (the best any model can do): {gap:+.4f}",
            ]
        if self.reachable_lift is not None:
            lines += [
                "",
                f"Share of the reachable lift captured (from the prior's {primary.upper()} to the "
                f"ceiling's, the best prediction from what was knowable): "
                f"{self.reachable_lift:.1%}",
            ]
        lines += ["", "| check | passed | detail |", "|---|---|---|"]
        lines += [f"| {c['name']} | {c['passed']} | {c['detail']} |" for c in self.checks]
        lines += self._noise_lines()
        lines += ["", f"[MLflow run]({self.run_url})"]
        return "\n".join(lines)

    def _noise_lines(self) -> list[str]:
        if not self.noise:
            return []
        noise = self.noise
        lines = [
            "",
            f"Floors and the challenger's {noise['confidence'] * 100:g}% bootstrap interval "
            f"({noise['resamples']} resamples of the {noise['rows']} test rows): a floor inside "
            "it decides on noise.",
            "",
            "| floor | challenger | interval | inside the noise |",
            "|---|---:|---|---|",
        ]
        for metric, f in noise["floors"].items():
            interval = f"[{_fmt(f['low'])}, {_fmt(f['high'])}]"
            inside = "**yes**" if f["inside"] else "no"
            lines.append(f"| {metric} {f['floor']} | {_fmt(f['value'])} | {interval} | {inside} |")
        return lines


def _noise(
    noise: Bootstrap, floors: Mapping[Metric, Floor], measured: Mapping[str, float]
) -> dict[str, Any]:
    per_floor = {}
    for metric, floor in floors.items():
        if (interval := noise.intervals.get(metric)) is None:
            continue
        numbers = {"value": measured[metric], "low": interval.low, "high": interval.high}
        per_floor[metric] = {
            "floor": f"{floor.operator} {floor.bound}",
            **finite_or_none(numbers),
            "inside": floor.bound in interval,
        }
    return {
        "confidence": noise.confidence,
        "resamples": noise.resamples,
        "rows": noise.rows,
        "floors": per_floor,
    }


def reachable_lift(evaluations: Mapping[str, Evaluation], primary: str) -> float | None:
    """(prior - model) / (prior - ceiling) on the primary metric: 1 at the ceiling, 0 no better
    than the best constant; None without a ceiling."""
    if "ceiling" not in evaluations:
        return None
    prior, model, ceiling = (evaluations[k].metrics[primary] for k in ("prior", "model", "ceiling"))
    reachable = prior - ceiling
    return float((prior - model) / reachable) if reachable > 0 else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
