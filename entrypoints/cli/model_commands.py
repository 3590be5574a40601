"""The model's commands, a champion's life: `mlops train` a challenger against it, `mlops
monitor` it on traffic (and retrain when the gate says so), `mlops promote` and `mlops
rollback` by hand, `mlops models` to list the registered versions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from entrypoints.cli.conventions import (
    ALL_SERVICES,
    JsonOption,
    answer,
    parse_reason,
    parse_time,
    start,
)
from mlops.config.errors import UserError

if TYPE_CHECKING:
    from models import TrainReport


def train(
    as_of: Annotated[
        str | None,
        typer.Option(help="End of the test window, ISO time (default: the newest batch's close)."),
    ] = None,
    exclude_feature: Annotated[
        list[str] | None, typer.Option(help="Train without this model input (repeatable).")
    ] = None,
    seed: int = 0,
    search_trials: Annotated[
        int | None, typer.Option(min=1, help="Override the card's number of search trials.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a challenger, score it and the champion on the same fresh window, and promote it
    only if it passes the gate. A rejection is a normal outcome: exit 0 either way."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, _ = start(needs=ALL_SERVICES)
        from mlops.stores.offline_store import OfflineStore
        from models import training_end

        end = parse_time(as_of, "--as-of") if as_of else None
        training_end(OfflineStore(settings.offline_dir), end)  # nothing ingested: said now
        from flows.train import train as train_flow

        report = train_flow(
            as_of=end, exclude_features=exclude_feature, seed=seed, search_trials=search_trials
        )
        return report.to_dict(), train_summary(report), 0

    answer(as_json, work)


def monitor(
    as_of: Annotated[
        str | None,
        typer.Option(help="End of the window, ISO time (default: the newest batch's close)."),
    ] = None,
    retrain: Annotated[bool, typer.Option(help="Start retraining when the gate says so.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Judge the last window of traffic against the champion (drift, data quality,
    performance on the labels that arrived): none, retrain, or alert, with the reason."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = start(needs=ALL_SERVICES)  # a retrain needs them all
        from mlops.stores.offline_store import OfflineStore
        from mlops.stores.registry import ModelRegistry
        from monitoring import window_bounds

        # What can be refused without a flow is refused first: no champion, no data.
        ModelRegistry(settings.tracking_uri, use_case.model_name).champion()
        end = parse_time(as_of, "--as-of") if as_of else None
        window_bounds(OfflineStore(settings.offline_dir), use_case.card.gates.monitoring, end)
        from flows.monitor import monitor as monitor_flow

        monitored = monitor_flow(as_of=end, retrain=retrain)
        judged = monitored.judged
        lines = [f"{judged.day} {judged.decision}: {judged.reason}", *judged.reports]
        if monitored.challenger is not None:
            live = monitored.challenger
            lines.append(f"@challenger v{live.challenger_version}: {live.reason}")
        if monitored.retraining is not None:
            lines += train_summary(monitored.retraining).splitlines()
        elif monitored.retraining_note:
            lines.append(f"retraining: {monitored.retraining_note}")
        return monitored.to_dict(), "\n".join(lines), 0

    answer(as_json, work)


def promote(
    version: Annotated[str, typer.Argument(help="The model version to make @champion.")],
    reason: Annotated[str, typer.Option(help="Why; recorded on the version.")],
    as_json: JsonOption = False,
) -> None:
    """Human override: make VERSION the champion (the former one becomes @previous)."""

    def work() -> tuple[dict[str, Any], str, int]:
        why = parse_reason(reason)
        settings, use_case = start(needs=("mlflow", "prefect"))
        from mlops.stores.registry import ModelRegistry, human

        ModelRegistry(settings.tracking_uri, use_case.model_name).version(version)  # exists?
        from flows.promote import promote as promote_flow

        done = promote_flow(version=version, reason=why, by=human())
        text = (
            f"{done.model_name} @champion is v{done.champion_version} "
            f"(@previous v{done.previous_version})"
        )
        return done.to_dict(), text, 0

    answer(as_json, work)


def reject(
    version: Annotated[str, typer.Argument(help="The model version to reject.")],
    reason: Annotated[str, typer.Option(help="Why; recorded on the version.")],
    as_json: JsonOption = False,
) -> None:
    """Human override: reject VERSION (a @challenger on live traffic stops being tried)."""

    def work() -> tuple[dict[str, Any], str, int]:
        why = parse_reason(reason)
        settings, use_case = start(needs=("mlflow", "prefect"))
        from mlops.stores.registry import ModelRegistry, human

        ModelRegistry(settings.tracking_uri, use_case.model_name).rejectable(version)
        from flows.promote import reject as reject_flow

        done = reject_flow(version=version, reason=why, by=human())
        text = f"{done.model_name} v{version} rejected (@champion stays v{done.champion_version})"
        return done.to_dict(), text, 0

    answer(as_json, work)


def rollback(
    reason: Annotated[str, typer.Option(help="Why; recorded on both versions.")],
    as_json: JsonOption = False,
) -> None:
    """Human override: give @champion back to @previous."""

    def work() -> tuple[dict[str, Any], str, int]:
        why = parse_reason(reason)
        settings, use_case = start(needs=("mlflow", "prefect"))
        from mlops.stores.registry import PREVIOUS, ModelRegistry, human

        registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
        if registry.alias(PREVIOUS) is None:
            raise UserError(f"nothing to roll back to: model '{registry.name}' has no @{PREVIOUS}")
        from flows.promote import rollback as rollback_flow

        done = rollback_flow(reason=why, by=human())
        text = (
            f"{done.model_name} @champion is v{done.champion_version} again "
            f"(v{done.rolled_back_version} rolled back)"
        )
        return done.to_dict(), text, 0

    answer(as_json, work)


def models(as_json: JsonOption = False) -> None:
    """The registered versions: aliases, decisions and reasons, newest first."""

    def work() -> tuple[dict[str, Any], str, int]:
        settings, use_case = start(needs=("mlflow",))
        from mlops.stores.registry import DECIDED_BY, REASON, ModelRegistry

        registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
        versions = [
            {
                "version": v.version,
                "aliases": list(v.aliases),
                "decision": v.decision,
                "by": v.tags.get(DECIDED_BY),
                "reason": v.tags.get(REASON),
                "run_id": v.run_id,
            }
            for v in registry.versions()
        ]
        text = "\n".join(
            f"v{v['version']} {'@' + ',@'.join(v['aliases']) if v['aliases'] else ''} "
            f"{v['decision']} by {v['by']}: {v['reason']}"
            for v in versions
        )
        return {"model_name": registry.name, "versions": versions}, text or "no versions yet", 0

    answer(as_json, work)


def train_summary(report: TrainReport) -> str:
    """A training run on the console: the decision and why, the metrics against the baselines,
    the floors' noise and the MLflow run."""
    baselines, oracle = report.baseline_metrics, report.oracle_metrics or {}
    primary = report.primary
    compared = [f"{name} {baselines[name][primary]:.4f}" for name in ("linear", "prior")]
    ceiling = report.ceiling_metrics or {}
    if ceiling.get(primary) is not None:
        compared.append(f"ceiling {ceiling[primary]:.4f}")
    if oracle.get(primary) is not None:
        compared.append(f"oracle {oracle[primary]:.4f}")
    lines = [
        f"{report.model_name} v{report.version}: {report.decision}"
        + (f" (trained on {report.engine})" if report.engine != "local" else ""),
        f"  {report.verdict}",  # the reason; its warnings get a line each
        *(f"  warning: {warning}" for warning in report.warnings),
        f"  test {primary} {report.metrics[primary]:.4f} ({', '.join(compared)})",
    ]
    if report.reachable_lift is not None:
        lines.append(f"  {report.reachable_lift:.0%} of the reachable lift (prior to ceiling)")
    if noise := report.noise:

        def number(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        floors = [
            f"{metric} {f['floor']}: {number(f['value'])} in "
            f"[{number(f['low'])}, {number(f['high'])}]"
            for metric, f in noise["floors"].items()
        ]
        lines.append(
            f"  floors, {noise['confidence'] * 100:g}% bootstrap interval on {noise['rows']} "
            f"test rows: {'; '.join(floors)}"
        )
    lines.append(f"  MLflow run: {report.run_url}")
    return "\n".join(lines)
