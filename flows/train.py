"""Train flow: point-in-time training set, baselines and XGBoost, scoring against the champion on
the same test window, MLflow run and registry, promotion gate, decision record.

The work lives in `models/`; this file says in which order it runs, what is retried, and what
is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.prefect_names import artifact_key, name_flow_run
from flows.results import RESULT_SERIALIZER
from mlops.config.runtime import setup
from mlops.config.settings import Settings
from mlops.contracts.usecase import UseCase, active_use_case
from mlops.stores.feature_store import open_store
from mlops.stores.mlflow_runs import (
    LoggedRun,
    day_name,
    naming_outage,
    run_url,
    server_unreachable,
    tag_run,
)
from mlops.stores.offline_store import OfflineStore
from mlops.stores.registry import CHAMPION, ModelRegistry
from models import dataset, mlflow_logging, promotion, training, training_engine
from models.train_report import TrainReport
from serving.infra_check import InfraCheck

if TYPE_CHECKING:
    import xgboost as xgb


def on_engine(local: str, ray: str) -> Callable[..., str]:
    """A task run's name that says which engine ran it, the one of its `settings` argument
    (Prefect calls a name function with the run's arguments when it takes `parameters`)."""

    def name(parameters: dict[str, Any]) -> str:
        return ray if parameters["settings"].engine == "ray" else local

    return name


# Frames and models flow between these tasks: hashing them for a cache key would cost more
# than the work, and a cached model would skip the gate.
point_in_time_join = task(
    cache_policy=NO_CACHE, task_run_name=on_engine("point-in-time-join", "point-in-time-join-ray")
)(training_engine.join_training_set)
fit_xgboost = task(
    cache_policy=NO_CACHE, task_run_name=on_engine("fit-xgboost", "fit-xgboost-ray-train")
)(training_engine.fit_model)
fit_baselines = task(cache_policy=NO_CACHE, task_run_name="fit-baselines")(training.fit_baselines)
score_on_test = task(cache_policy=NO_CACHE, task_run_name="score-on-test")(training.score_on_test)


def mlflow_unreachable(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition for the tasks below: retry only when MLflow's server did not
    answer; a mistake fails the run at once instead of after every retry."""
    return isinstance(state.data, BaseException) and server_unreachable(state.data)


# Every task that talks to MLflow rides out a server restart or a short outage: a tracking
# server takes ~20 s to start, over a minute on a busy machine. One attempt fails fast (the
# server profile caps MLflow's own HTTP retries, see Settings.library_environment), so
# Prefect's retries, visible in the run, are what recover: every 15 s once warmed up, about
# three minutes of waits (four with the attempts). Each task below can run again after failing
# anywhere inside it (see each).
MLFLOW_RETRY_DELAYS = [2, 5, 10, *[15] * 12]
MLFLOW_RETRIES: dict[str, Any] = {
    "retries": len(MLFLOW_RETRY_DELAYS),
    "retry_delay_seconds": MLFLOW_RETRY_DELAYS,
    "retry_condition_fn": mlflow_unreachable,
}


@task(cache_policy=NO_CACHE, task_run_name="reconcile-registry", **MLFLOW_RETRIES)
def reconcile(registry: ModelRegistry) -> None:
    registry.reconcile()


@task(cache_policy=NO_CACHE, task_run_name="load-champion", **MLFLOW_RETRIES)
def load_champion(registry: ModelRegistry) -> tuple[str | None, xgb.Booster | None]:
    """None only when MLflow answered that there is no champion: an MLflow that does not
    answer fails the task (`ServiceUnreachable`), and the gate never judges a challenger
    alone ("first model") for want of an answer."""
    version = registry.alias(CHAMPION)
    return version, registry.load_booster(version) if version else None


@task(cache_policy=NO_CACHE, task_run_name="log-mlflow-run", **MLFLOW_RETRIES)
def log_run(settings: Settings, use_case: UseCase, **logged: Any) -> LoggedRun:
    """A retry marks the run the failed attempt left unfinished FAILED, then logs a new one."""
    from prefect.runtime import flow_run

    with naming_outage(settings.tracking_uri):
        return mlflow_logging.log_training_run(settings, use_case, logged_by=flow_run.id, **logged)


@task(cache_policy=NO_CACHE, task_run_name="register", **MLFLOW_RETRIES)
def register(registry: ModelRegistry, logged: LoggedRun) -> str:
    """Once per MLflow run, retried or not (see `ModelRegistry.register`)."""
    return registry.register(logged.model_uri, logged.run_id)


@task(cache_policy=NO_CACHE, task_run_name="apply-decision", **MLFLOW_RETRIES)
def apply_decision(
    registry: ModelRegistry, version: str, decision: promotion.PromotionDecision
) -> None:
    """A retry finishes what the failed attempt began and records the decision once."""
    if registry.version(version).decision == decision.decision:
        return  # the failed attempt wrote it all; only the answer was lost
    if decision.shadow:
        registry.challenge(version, decision.reason)
    elif decision.promote:
        registry.promote(version, decision.reason)
    else:
        registry.reject(version, decision.reason)


@task(cache_policy=NO_CACHE, task_run_name="tag-run", **MLFLOW_RETRIES)
def tag_decision(
    settings: Settings, run_id: str, decision: promotion.PromotionDecision, version: str
) -> None:
    tags = {"decision": decision.decision, "decision.reason": decision.reason, "version": version}
    if decision.warnings:  # floors inside the noise: absent when there are none
        tags["promotion.warnings"] = "\n".join(decision.warnings)
    tag_run(settings, run_id, tags)


@task(cache_policy=NO_CACHE, task_run_name="infra-check")
def check_infra(settings: Settings, use_case: UseCase, version: str) -> InfraCheck:
    from serving.infra_check import infra_check

    return infra_check(settings, use_case, version)


@flow(name="train", persist_result=True, result_serializer=RESULT_SERIALIZER)
def train(
    as_of: datetime | None = None,
    exclude_features: list[str] | None = None,
    seed: int = 0,
    search_trials: int | None = None,
    recent: bool = False,
) -> TrainReport:
    """Train a challenger on the windows ending at `as_of` (default: the newest ingested batch)
    and promote it only if it passes the gate against the champion (or make it the @challenger
    that shadows the champion, if the card's rollout says so). `recent`: the monitoring
    gate's shorter retraining windows, so a changed world dominates. Without enough labelled
    data the run fails with a `UserError` saying what is missing."""
    settings = setup()
    use_case = active_use_case(settings)
    card = use_case.card
    registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
    reconcile(registry)
    # Asked before the training it is compared with: an MLflow that cannot be asked fails the
    # run in seconds, not after the fit.
    champion_version, champion = load_champion(registry)
    excluded = tuple(exclude_features or ())

    offline = OfflineStore(settings.offline_dir)
    end = dataset.training_end(offline, as_of)
    # Named by the last day of data it sees, like the monitored day that started a retraining.
    run_name = f"{'retrain' if recent else 'train'}-{day_name(end)}"
    name_flow_run(run_name)
    budget = dataset.training_budget(card, recent, search_trials)
    windows = dataset.TimeWindows.ending_at(end, budget)
    training_engine.start_engine(settings)
    training_set = point_in_time_join(
        settings,
        open_store(settings, use_case),
        offline,
        use_case,
        windows,
        budget.baseline_max_rows,
        seed,
    )
    lineage = training_set.lineage(use_case)
    splits = training.prepare_splits(training_set.held, use_case, excluded)
    model = fit_xgboost(settings, use_case, training_set, splits, budget, seed, excluded)
    baselines = fit_baselines(splits, budget, use_case.task, seed)
    # With the gate's bootstrap of the challenger's floor metrics: once per run, seeded.
    scores = score_on_test(
        splits, use_case, model.booster, baselines, champion, card.gates.promotion, seed
    )

    params = training.run_params(model, excluded, champion_version, recent, settings.engine)
    logged = log_run(
        settings,
        use_case,
        run_name=run_name,
        params=params,
        lineage=lineage,
        evaluations=scores.evaluations,
        predictions=scores.predictions,
        labels=splits.test_y.to_numpy(),
        model=model,
        input_example=splits.test_x.head(5),
        serving_defaults=dataset.serving_defaults(training_set.held, use_case),
        monitoring_reference=training.holdout_reference(
            splits,
            model.booster,
            scores.predictions["model"],
            card.gates.monitoring,
            use_case.task,
            seed,
        ),
        importance=scores.importance,
        splits=splits,
        noise=scores.noise,
    )
    version = register(registry, logged)

    decision = promotion.decide(
        scores.evaluations["model"],
        scores.evaluations.get("champion"),
        card.gates.promotion,
        card.offline_metrics.primary,
        scores.noise,
        baselines={name: scores.evaluations[name] for name in ("linear", "prior")},
    )
    if decision.promote and settings.serving.infra_check:
        infra = check_infra(settings, use_case, version)
        decision = promotion.with_infra_check(decision, infra.passed, infra.detail)
    decision = promotion.with_rollout(decision, card.rollout, champion_version is not None)
    apply_decision(registry, version, decision)
    tag_decision(settings, logged.run_id, decision, version)

    report = TrainReport.build(
        scores.evaluations,
        noise=scores.noise,
        floors=card.gates.promotion.floors,
        warnings=list(decision.warnings),
        run_id=logged.run_id,
        model_name=use_case.model_name,
        version=version,
        decision=decision.decision,
        reason=decision.reason,
        primary=use_case.task.primary,
        champion_version=champion_version,
        lineage=lineage,
        params=params,
        run_url=run_url(settings, logged),
        checks=[c.__dict__ for c in decision.checks],
        engine=settings.engine,
    )
    create_markdown_artifact(
        key=artifact_key("promotion", use_case.model_name),
        markdown=report.markdown(),
        description=f"v{version} {decision.reason}"[:500],
    )
    return report
