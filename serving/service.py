"""The prediction service (BentoML): `bentoml serve serving.service:PredictionService`, or
`mlops serve`.

    POST /predict          one request: the use case's entity ids and optional context
    POST /predict_batch    {"requests": [...]}, up to MLOPS_SERVING__MAX_BATCH
    POST /explain          /predict's body; its answer with the model's inputs and each one's
                           contribution to the margin (TreeSHAP); the champion's, not logged
    GET  /model            the model version being served (POST `{}` too: BentoML's client)
    GET  /openapi.json     the schema of the four routes above
    GET  /schema.json      BentoML's service schema, the four routes listed as its endpoints:
                           `bentoml.SyncHTTPClient(url).predict(**request_fields)` works
    GET  / /docs /docs.json   the service's page: Swagger UI (BentoML's static files, so
                           offline) over /docs.json, BentoML's spec (/livez, /readyz, /metrics)
                           plus /openapi.json's routes
    GET  /livez /readyz /metrics     BentoML: alive; ready (model loaded and warm, and the
                           online store answers a lookup; else 503 with the cause); Prometheus
    POST /floor            diagnostics, not in /openapi.json: /predict without the scoring (see
                           below); the infra check's floor

With `MLOPS_AUTH__SERVING_API_KEY` set, every route but /livez, /readyz and /metrics asks for
`Authorization: Bearer <key>` (401 otherwise; serving/auth.py); bound beyond loopback
(`MLOPS_SERVING__HOST`), the service refuses to start without one.

Request bodies are validated strictly by the use case's request model (serving/request_models.py):
malformed JSON, a wrong type, an out-of-range value (an event time too, see
serving/http_limits.py), an unknown field or an oversized batch get a 400 with the reason (in a
batch, naming the item); a body over the size limit 413, a non-JSON body 415, more than
`max_concurrency` requests in flight 429 (BentoML), an online store that cannot be read 503 with
the cause (as /readyz), no answer within `timeout_seconds` 504 (BentoML). Anything else failing
is a 500 with the error's type; failures are logged once per cause with the traceback, then
counted (`ErrorLog`), never a traceback per request.

The prediction routes are bare ASGI (serving/routes.py) mounted in the BentoML service rather
than `@bentoml.api` methods: BentoML's API layer, and even Starlette's routing and request objects,
cost more per request than scoring does (see docs/serving.md). BentoML still runs the workers, the
traffic limits, health and metrics. Its clients still see the routes as its endpoints:
/schema.json, which they discover endpoints from, lists them with their request models'
schemas (`ServiceSchema`), and each route takes the body the client sends (the keyword
arguments as one JSON object). Validated requests are scored by a micro-batcher
(serving/batching.py): those in flight together share one store read per view and one model call.

`/floor` takes the same body as `/predict` and goes the same way (validation, the champion
check, the hop to the scoring thread (a batcher of its own), an orjson answer) but scores
nothing, reads no feature and logs nothing. What `/predict` takes beyond `/floor` is what the
model adds: the infra check sends the same requests to both and judges only the difference in
the service's CPU (serving/infra_check.py).

Following the registry, the service also follows its `@challenger` (the gate makes one under
the card's `rollout.mode: shadow`; a person can too) and scores it on the card's
`rollout.shadow_share` of requests in a background thread, never delaying or failing an answer
for it; its scores go to the shadow log (serving/shadow.py). /model names it.

Importing this module only defines the service, from the settings and the use case it reads
(BentoML reads the service's configuration and its app on import). `bentoml serve` applies the
settings, and refuses a service open to the network, before it starts the workers
(`before_workers`); each worker applies them when it builds the service (`__init__`).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import bentoml
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from mlops.config.errors import UserError
from mlops.config.runtime import setup
from mlops.config.settings import Settings, get_settings
from mlops.contracts.usecase import active_use_case
from serving.auth import ApiKey, require_api_key_beyond_loopback
from serving.batching import MicroBatcher
from serving.http_limits import RequestLimits
from serving.openapi_schema import (
    ServiceSchema,
    client_endpoints,
    prediction_openapi,
    service_page,
)
from serving.prediction_logger import PredictionLog, Served, records, shadow_records
from serving.request_models import ModelInfo, prediction_answer, request_models
from serving.routes import floor_answers, prediction_handlers, service_app
from serving.throttled_log import ErrorLog

if TYPE_CHECKING:
    from feast import FeatureStore

    from mlops.stores.registry import ModelRegistry
    from serving.canary import Canary
    from serving.champion import Champion
    from serving.model_loading import ServedModel
    from serving.shadow import ScoreRows, Shadow

log = logging.getLogger("serving")


def _read_settings() -> Settings:
    """The settings, validated; applied (state folders, environment, logs) where the service
    starts. Nothing BentoML does in between reads what applying them exports: `bentoml serve`
    has resolved its home before it imports this module."""
    try:
        return get_settings()
    except ValidationError:
        return setup()  # raises the UserError that names each invalid setting


settings = _read_settings()
use_case = active_use_case(settings)
limits = settings.serving

# The online store is probed this often for readiness (a real lookup), and must answer within
# the deadline.
PROBE_SECONDS = 2.0
PROBE_DEADLINE_SECONDS = 5.0

models = request_models(use_case, limits.max_batch)
OPENAPI = prediction_openapi(use_case, models)
PREDICTION_HANDLERS = prediction_handlers(models)

missing_total = bentoml.metrics.Counter(
    name="mlops_missing_feature_values",
    documentation="Raw values filled with a default or left missing, per column.",
    labelnames=["column"],
)
unreadable_total = bentoml.metrics.Counter(
    name="mlops_online_values_unreadable",
    documentation="Stored online values read as missing: they do not decode as their "
    "feature's type (a string where a number is stored, bytes that are not a value).",
    labelnames=["view", "cause"],
)
swaps_total = bentoml.metrics.Counter(
    name="mlops_model_swaps", documentation="Models loaded and swapped in.", labelnames=[]
)
shadow_total = bentoml.metrics.Counter(
    name="mlops_shadow_requests",
    documentation="Requests handed to the @challenger's shadow scoring, by outcome: scored, "
    "skipped (its queue full), failed.",
    labelnames=["outcome"],
)
canary_total = bentoml.metrics.Counter(
    name="mlops_canary_requests",
    documentation="Requests assigned to the @challenger's canary, by outcome: answered by it, "
    "failed (answered by the champion instead).",
    labelnames=["outcome"],
)
canary_stopped_total = bentoml.metrics.Counter(
    name="mlops_canary_stopped",
    documentation="Canaries a guardrail stopped (traffic handed back to the champion).",
    labelnames=[],
)
CANARY_GUARDRAIL = "canary guardrail"  # who decides, in the registry's records
CANARY_ERRORS_LOG_SECONDS = 600
SHADOW_SWITCH_INTERVAL_SECONDS = 0.001
DEFAULT_SWITCH_INTERVAL = sys.getswitchinterval()
served_version = bentoml.metrics.Gauge(
    name="mlops_served_model_version",
    documentation="The model version being served.",
    labelnames=["model"],
    multiprocess_mode="livemostrecent",  # one value across workers, not one per process
)


@bentoml.service(
    name=f"{use_case.name}-predictions",
    workers=limits.workers,
    traffic={"timeout": limits.timeout_seconds, "max_concurrency": limits.max_concurrency},
    # A log line per request costs more than scoring it; the prediction log and /metrics
    # record every request instead.
    logging={"access": {"enabled": limits.access_log}},
    # An OpenTelemetry span per prediction costs more than validating it, exported or not;
    # the prediction log and /metrics account for every prediction.
    tracing={"excluded_urls": [f"{path}$" for path in PREDICTION_HANDLERS]},
)
class PredictionService:
    @bentoml.on_deployment
    def before_workers() -> None:
        """In `bentoml serve`'s own process, before it starts the workers: the settings applied
        (the workers inherit the environment they export, and die with this process), and a
        service open to the network refused with one line rather than a traceback (`bentoml
        serve` of a bento binds 0.0.0.0; `mlops serve` refuses earlier)."""
        setup()
        try:
            require_api_key_beyond_loopback(settings)
        except UserError as refused:
            sys.exit(f"error: {refused}")

    def __init__(self) -> None:
        from mlops.stores.registry import CHALLENGER, CHAMPION, ModelRegistry
        from serving import packaging
        from serving.champion import Champion
        from serving.fault_injection import repeated
        from serving.model_loading import load_registered
        from serving.online_store_reader import READ_TIMEOUT_SECONDS
        from serving.scoring import Scorer
        from serving.store_health import StoreHealth

        setup()  # this worker's logs and environment, before Feast and MLflow are imported
        # A store read that hangs fails (503) before the request times out (504).
        read_timeout = min(READ_TIMEOUT_SECONDS, limits.timeout_seconds / 2)
        self.scorer = Scorer(self._open_store(), use_case, read_timeout)
        self.scorer.online.on_unreadable = lambda view, cause: unreadable_total.labels(
            view=view, cause=cause
        ).inc()
        # The fault drill, if on, is chosen here once: off, scoring does not check for it.
        self.score_rows = (
            repeated(self.scorer.score_rows, limits.fault_scoring_repeats)
            if limits.fault_scoring_repeats
            else self.scorer.score_rows
        )
        self.health = StoreHealth(self.scorer.online, PROBE_SECONDS, PROBE_DEADLINE_SECONDS)
        registry = ModelRegistry(settings.tracking_uri, use_case.model_name)
        # A bento serves its own model: in its container (MODEL_SOURCE=bento, the bento's envs)
        # and with `bentoml serve` in its directory or of its tag (no envs applied, but BentoML
        # loaded the service from the bento).
        self.packaged = limits.model_source == "bento" or _service.bento is not None
        wanted: Callable[[], str | None]
        load: Callable[[str], ServedModel]
        if self.packaged:
            packaged = packaging.packaged_model(use_case, _service.bento)
            version = packaging.packaged_version(packaged)
            wanted, load = (lambda: version), partial(packaging.load_packaged, packaged, use_case)
        elif limits.model_version is not None:
            wanted, load = (lambda: limits.model_version), partial(load_registered, registry)
        else:
            wanted, load = partial(registry.alias, CHAMPION), partial(load_registered, registry)
        self.champion = Champion(wanted, load, self.scorer, on_swap=self._swapped)
        self.batcher = MicroBatcher(self.score, limits.batch_max_size, limits.batch_wait_ms / 1000)
        self.floor = MicroBatcher(floor_answers, limits.batch_max_size, limits.batch_wait_ms / 1000)
        self.explainer = MicroBatcher(self.explain, limits.batch_max_size)
        self.log = PredictionLog(
            settings.predictions_dir,
            partial(records, categories=use_case.categories),
            limits.log_flush_seconds,
        ).start()
        self.score_challenger: ScoreRows = self.score_rows
        self.canary_errors = ErrorLog(log, every=CANARY_ERRORS_LOG_SECONDS)
        # The @challenger, followed like the champion, scored in the shadow and, under a card
        # whose rollout is a canary, answering its share. A pinned service (a bento, the infra
        # check's) serves one model.
        self.challenger: Champion | None = None
        self.shadow: Shadow | None = None
        self.canary: Canary | None = None
        canary = use_case.card.rollout.mode == "canary"
        if not self.pinned and (limits.shadow or canary):
            self.challenger = Champion(
                partial(registry.alias, CHALLENGER),
                partial(load_registered, registry),
                self.scorer,
                on_swap=_challenger_swapped,
                role=CHALLENGER,
                release_when_unwanted=True,
            )
            self.score_challenger = challenger_scoring(self.scorer.score_rows, limits)
            if limits.shadow:
                self.shadow = self._shadow(self.challenger)
            if canary:
                self.canary = self._canary(self.challenger, registry)
        self.champion.refresh()
        if self.challenger is not None:
            self.challenger.refresh()
            self.challenger.follow(limits.poll_seconds)
        if self.shadow is not None:
            self.shadow.start()
        if self.pinned:
            if self.champion.current is None:
                # A pinned version that cannot load never will: exit rather than never be ready.
                raise RuntimeError(self.champion.last_error)
        else:
            self.champion.follow(limits.poll_seconds)
        self.health.start()
        # Everything loaded so far (libraries, registry, model) lives as long as the process:
        # keep the collector from scanning it, or a full collection stalls requests ~100 ms.
        gc.freeze()

    def _shadow(self, challenger: Champion) -> Shadow:
        """The challenger scored on the card's share of requests, off the answer's path,
        logged beside the prediction log (see serving/shadow.py)."""
        from mlops.stores.prediction_log import shadow_log_dir
        from serving.shadow import Shadow

        shadow_log = PredictionLog(
            shadow_log_dir(settings.predictions_dir), shadow_records, limits.log_flush_seconds
        )
        return Shadow(
            self.champion,
            challenger,
            self.score_challenger,
            shadow_log,
            use_case.card.rollout.shadow_share,
            limits.shadow_queue_batches,
            on_counted=lambda outcome, count: shadow_total.labels(outcome=outcome).inc(count),
            collect_seconds=limits.shadow_collect_ms / 1000,
        )

    def _canary(self, challenger: Champion, registry: ModelRegistry) -> Canary:
        """The challenger answering the card's share of entities, watched by its guardrails; a
        breach rejects it in the registry (every worker then lets it go), in the background:
        the request that tipped the window is not held up by MLflow."""
        from mlops.stores.registry import CHALLENGER
        from serving.canary import Canary

        def reject(version: str, reason: str) -> None:
            canary_stopped_total.inc()

            def record() -> None:
                try:
                    if registry.alias(CHALLENGER) == version:  # not already, by another worker
                        registry.reject(version, reason, by=CANARY_GUARDRAIL)
                except Exception:
                    log.exception("could not record the canary's rollback of v%s", version)

            threading.Thread(target=record, name="canary-rollback", daemon=True).start()

        rollout = use_case.card.rollout
        return Canary(
            challenger, rollout.guardrails, rollout.canary_share, use_case.entity_keys[0], reject
        )

    @staticmethod
    def _open_store() -> FeatureStore:
        """The feature store, its definitions applied (tables created, stuck views repaired). A
        store that cannot be opened (a corrupt online store) must not stop the service, or it
        would restart in a loop: it starts not ready, and the probe says why until the store
        reads again. Scoring needs only the store's configuration (see Scorer)."""
        from feast import FeatureStore

        from mlops.stores.feature_store import open_store, repo_config

        try:
            return open_store(settings, use_case, registry_cache_mode="thread")
        except Exception:
            log.exception("cannot open the feature store; not ready until its online store reads")
            return FeatureStore(config=repo_config(settings, use_case, "thread"))

    @property
    def pinned(self) -> bool:
        return self.packaged or limits.model_version is not None

    def unavailable(self) -> str | None:
        """Why requests cannot be scored now (None: they can); /readyz and 503s say it."""
        if self.champion.current is None:
            error = self.champion.last_error
            return "no model loaded yet" + (f": {error}" if error else "")
        problem = self.health.problem()
        return f"online store unavailable: {problem}" if problem else None

    def __is_ready__(self) -> bool:
        # An HTTPException, not False: BentoML then answers /readyz with the cause.
        unavailable = self.unavailable()
        if unavailable is not None:
            raise HTTPException(503, f"not ready: {unavailable}")
        return True

    @bentoml.on_shutdown
    def close(self) -> None:
        self.batcher.close()  # what was queued is scored, and logged below
        self.floor.close()
        self.explainer.close()
        self.health.stop()
        self.champion.stop()
        if self.challenger is not None:
            self.challenger.stop()
        if self.shadow is not None:
            self.shadow.close()
        self.log.close()

    def describe(self) -> dict[str, Any]:
        current = self.champion.current
        model = (
            current.describe()
            if current is not None
            else {"model_name": use_case.model_name, "model_version": None, "features": []}
        )
        return ModelInfo.model_validate(
            {
                "loaded_at": None,
                **model,
                "pinned": self.pinned,
                "last_error": self.champion.last_error,
                "challenger_version": self._challenger_version(),
            }
        ).model_dump(mode="json")

    def _challenger_version(self) -> str | None:
        challenger = self.challenger.current if self.challenger is not None else None
        return challenger.version if challenger is not None else None

    def score(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        model = self.champion.current  # read once: a swap cannot change it mid-request
        assert model is not None
        served_at = datetime.now(UTC)
        timestamp = use_case.events.timestamp_column
        for request in requests:  # logged as used: the event happens now unless it says when
            if request.get(timestamp) is None:
                request[timestamp] = served_at
        features = self.scorer.lookup(requests)
        ids = [uuid.uuid4().hex for _ in requests]
        canary = self.canary.answering(model) if self.canary is not None else None
        theirs = self.canary.assigned(requests) if self.canary is not None and canary else []
        if canary is None or not theirs:
            return self._answer(model, ids, requests, features, served_at)
        assert self.canary is not None
        taken = set(theirs)
        ours = [i for i in range(len(requests)) if i not in taken]
        answers: list[dict[str, Any]] = [{}] * len(requests)
        if ours:
            picked = _picked(ours, ids, requests, features)
            for i, answer in zip(ours, self._answer(model, *picked, served_at), strict=True):
                answers[i] = answer
        try:
            picked = _picked(theirs, ids, requests, features)
            answered = self._answer(canary, *picked, served_at, canary=True)
            canary_total.labels(outcome="answered").inc(len(theirs))
        except Exception as err:  # answered by the champion instead; the guardrail counts it
            self.canary_errors.error(f"canary v{canary.version} failed", err)
            canary_total.labels(outcome="failed").inc(len(theirs))
            picked = _picked(theirs, ids, requests, features)  # the failed call filled its copy
            answered = self._answer(model, *picked, served_at)
        for i, answer in zip(theirs, answered, strict=True):
            answers[i] = answer
        return answers

    def explain(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The champion's answers with their inputs and each input's contribution; neither
        logged nor offered to a challenger."""
        from serving.scoring import decode

        model = self.champion.current
        assert model is not None
        timestamp = use_case.events.timestamp_column
        for request in requests:
            if request.get(timestamp) is None:
                request[timestamp] = datetime.now(UTC)
        columns, missing = self.scorer.raw_columns(model, requests, self.scorer.lookup(requests))
        matrix = self.scorer.matrix(model, columns)
        scores = model.predict(matrix)
        explained = self.scorer.explain(model, columns)
        return [
            {
                **prediction_answer(use_case.task, use_case.score_name, scores[i]),
                "model_version": model.version,
                "missing_features": missing[i],
                "inputs": decode(model.feature_names, use_case.categories, matrix[i]),
                "contributions": explained[i],
            }
            for i in range(len(requests))
        ]

    def _answer(
        self,
        model: ServedModel,
        ids: list[str],
        requests: list[dict[str, Any]],
        features: dict[str, list[Any]],
        served_at: datetime,
        canary: bool = False,
    ) -> list[dict[str, Any]]:
        """Score requests with `model`, log them, and answer; the champion's answers are
        offered to the shadow, and timed for a canary's guardrails while one answers."""
        shadowed = self.shadow.chosen(len(requests)) if self.shadow and not canary else []
        # Copied before the champion's scoring fills the missing ones with its own defaults.
        shadow_features = (
            {name: [values[i] for i in shadowed] for name, values in features.items()}
            if shadowed
            else {}
        )
        score_rows = self.score_challenger if canary else self.score_rows
        started = time.perf_counter()
        try:
            scored = score_rows(model, requests, features)
        except Exception:
            if canary and self.canary is not None:
                self.canary.record(model.version, True, len(requests), 0.0, None)
            raise
        if self.canary is not None:
            seconds = time.perf_counter() - started
            self.canary.record(model.version, canary, len(requests), seconds, scored.scores)
        if self.shadow is not None and shadowed:
            self.shadow.offer(
                served_at,
                [ids[i] for i in shadowed],
                [requests[i] for i in shadowed],
                shadow_features,
            )
        self.log.append(
            Served(
                served_at,
                model.version,
                model.feature_names,
                ids,
                requests,
                scored.matrix,
                scored.scores,
                scored.missing,
            )
        )
        for name, count in Counter(n for names in scored.missing for n in names).items():
            missing_total.labels(column=name).inc(count)
        return [
            {
                "request_id": request_id,
                **prediction_answer(use_case.task, use_case.score_name, score),
                "model_version": model.version,
                "missing_features": missing,
            }
            for request_id, score, missing in zip(ids, scored.scores, scored.missing, strict=True)
        ]

    def _swapped(self, model: ServedModel | None) -> None:
        if model is not None:
            swaps_total.inc()
            served_version.labels(model=model.name).set(float(model.version))


def _challenger_swapped(model: ServedModel | None) -> None:
    """While a challenger is scored beside the champion, a thread scoring it holds the GIL for up
    to the switch interval (5 ms by default) while a request waits for it: 1 ms bounds that wait,
    at the cost of more switches (docs/benchmarks.md#shadow); the default again once it goes."""
    sys.setswitchinterval(SHADOW_SWITCH_INTERVAL_SECONDS if model else DEFAULT_SWITCH_INTERVAL)


def _picked(
    indices: list[int],
    ids: list[str],
    requests: list[dict[str, Any]],
    features: dict[str, list[Any]],
) -> tuple[list[str], list[dict[str, Any]], dict[str, list[Any]]]:
    """The requests at `indices`, with their ids and a copy of their features."""
    return (
        [ids[i] for i in indices],
        [requests[i] for i in indices],
        {name: [values[i] for i in indices] for name, values in features.items()},
    )


def challenger_scoring(score_rows: ScoreRows, serving: Any) -> ScoreRows:
    """How the @challenger is scored: as the champion, unless a drill slows it down or
    breaks it (`fault_challenger_*`; off, no call checks for them)."""
    from serving.fault_injection import failing, slowed_down

    if serving.fault_challenger_spin_ms:
        score_rows = slowed_down(score_rows, serving.fault_challenger_spin_ms)
    if serving.fault_challenger_errors:
        score_rows = failing(score_rows, "drill: the challenger fails (fault_challenger_errors)")
    return score_rows


# The decorators' types lose the Service wrapper that bentoml.service returns.
_service = cast("bentoml.Service[PredictionService]", PredictionService)
_service.mount_asgi_app(
    service_app(
        PREDICTION_HANDLERS, OPENAPI, service_page(f"{use_case.name} predictions"), _service
    ),
    path="/",
)
# The first middleware added runs first: a request without the API key learns nothing about the
# limits.
if settings.auth.serving_api_key:
    _service.add_asgi_middleware(ApiKey, api_key=settings.auth.serving_api_key.get_secret_value())
_service.add_asgi_middleware(RequestLimits, max_body_bytes=limits.max_body_bytes)
# BentoML's clients discover endpoints in /schema.json, which lists `@bentoml.api` methods only:
# the routes are listed there instead of being made such methods, which measured 1-4.5 ms slower
# at the median for /predict alone (docs/serving.md); this costs one comparison per request.
_service.add_asgi_middleware(ServiceSchema, service=_service, endpoints=client_endpoints(models))
