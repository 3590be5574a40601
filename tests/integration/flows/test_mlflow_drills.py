"""Drills at every MLflow call on a decision path: a real `mlflow server` on a copy of the
ingested week (v1, trained through it, is `@champion`), a fault-injecting proxy in front of it
(tests/support/fault_proxy.py), and each kind of call the train flow, the registry's promote,
rollback and reconcile, monitoring's reads and the service's champion follow make, failing in
turn: refused (closed without an answer), hung (no answer until the client's timeout) or 5xx.

Every drill ends in the correct decision or a clean failure naming MLflow, never in a decision
taken as if the answer were "none": `@champion` and `@previous` unchanged unless the outcome is
a correct promotion (or the rest of one that was decided), and no version left `promoted`
without `@champion` when it was not.

The flows' task retries are turned off where a drill wants the clean failure (they ride out
a short outage: tests/integration/flows/test_mlflow_outage.py); the headline drill runs the
train flow with them, and with the fault lasting past the registry's own retries.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from mlops.config.errors import ServiceUnreachable
from mlops.config.settings import Settings, get_settings
from mlops.contracts.usecase import UseCase, load_use_case
from mlops.stores.mlflow_runs import Retries
from mlops.stores.registry import CHAMPION, DECISION, PREVIOUS, ModelRegistry
from serving.process import free_port
from tests.support.fault_proxy import FAULT_MODES, FaultMode, FaultProxy
from tests.support.mlflow_server import MlflowServer
from tests.support.session import PINNED_USE_CASE

pytestmark = [pytest.mark.integration, pytest.mark.server]

# A hung request gives up after this (MLflow's client; the platform's default is 20 s). Each
# attempt is one request (MLflow's own retries off): with 2 s and a retry, a busy machine saw
# MLflow's client resend a slow `log-batch` the server had already written, and MLflow refused
# the copy (a 400 for a duplicate key), an error no drill had injected.
HTTP_TIMEOUT_SECONDS = "5"
# While a `hung` fault is armed: the client gives up on the hung call sooner, and each hung
# call is waited for twice (QUICK), some twenty times in the module: at 5 s that was about
# 200 s of the module's time spent watching a socket. A call the fault spares may time out
# too on a busy machine; it then fails the act as the hung one would (still MLflow not
# answering, still a clean failure), and nothing is resent that the server already wrote
# (MLflow's own retries are off; the registry's calls are safe to repeat).
HUNG_TIMEOUT_SECONDS = "2"
# The drills insist less than the platform does (3 attempts over ~10 s), the flows' calls
# included: each drill is about what happens once asking failed, not about how long it is
# asked (the platform's insistence took most of this module's time).
QUICK = Retries(attempts=2, delays_seconds=(0.2,), budget_seconds=30)
TRIALS = 1
UNANSWERED_LIMIT_SECONDS = 60  # what the issue allows a command against a dead MLflow
TRAIN_TASKS = (
    "reconcile",
    "load_champion",
    "log_run",
    "register",
    "apply_decision",
    "tag_decision",
)


@dataclass
class Drill:
    settings: Settings
    use_case: UseCase
    proxy: FaultProxy
    registry: ModelRegistry  # through the proxy
    direct: ModelRegistry  # straight to the server: what the registry really holds

    def aliases(self) -> dict[str, str | None]:
        return {alias: self.direct.alias(alias) for alias in (CHAMPION, PREVIOUS)}

    def decisions(self) -> dict[str, str]:
        return {v.version: v.decision for v in self.direct.versions()}

    def new_version(self, decision: str = "pending") -> str:
        """A new version of the champion's own model (the same booster): whatever the drills
        promote, the model serving scores the same."""
        client = self.direct.client
        champion = client.get_model_version(self.use_case.model_name, self.direct.champion())
        assert champion.source is not None
        created = client.create_model_version(
            self.use_case.model_name,
            source=champion.source,
            run_id=champion.run_id,
            model_id=champion.source.removeprefix("models:/"),
            tags={DECISION: decision},
        )
        return str(created.version)


@pytest.fixture(scope="module")
def drill(
    ingested_week: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str
) -> Iterator[Drill]:
    """A copy of the ingested week, its registry on a real MLflow server behind the proxy (the
    platform's settings point at the proxy), and v1 trained through it: `@champion`."""
    from flows.train import train as train_flow

    use_case = load_use_case(PINNED_USE_CASE)
    home = tmp_path_factory.mktemp("mlflow-drills") / "mlops-home"
    shutil.copytree(ingested_week, home, ignore=shutil.ignore_patterns("mlflow", "prefect"))
    server = MlflowServer(
        free_port(),
        f"sqlite:///{home / 'mlflow-server' / 'mlflow.db'}",
        home / "mlflow-server" / "artifacts",
        home / "logs" / "mlflow-server.log",
    )
    server.artifacts.mkdir(parents=True)
    server.start()
    try:
        with FaultProxy(server.url) as proxy, pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setenv("MLOPS_HOME", str(home))
            monkeypatch.setenv("MLOPS_MLFLOW_TRACKING_URI", proxy.url)
            monkeypatch.setenv("MLOPS_SERVING__INFRA_CHECK", "false")
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_TIMEOUT_SECONDS)
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
            monkeypatch.setattr("mlops.stores.mlflow_runs.MLFLOW_RETRIES", QUICK)
            get_settings.cache_clear()
            settings = get_settings().apply()
            first = train_flow(search_trials=TRIALS)
            assert first.decision == "promoted", first.reason
            proxy.clear()
            yield Drill(
                settings,
                use_case,
                proxy,
                ModelRegistry(proxy.url, use_case.model_name),
                ModelRegistry(server.url, use_case.model_name),
            )
    finally:
        get_settings.cache_clear()
        server.kill()


@pytest.fixture
def proxy(drill: Drill, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The drill's proxy, with MLflow's client timeout short while a `hung` fault is armed
    (HUNG_TIMEOUT_SECONDS) and back to HTTP_TIMEOUT_SECONDS once the faults are cleared."""
    fault_proxy = drill.proxy
    fail, clear = fault_proxy.fail, fault_proxy.clear

    def failing(path: str, mode: FaultMode, **kwargs: Any) -> Any:
        if mode == "hung":
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", HUNG_TIMEOUT_SECONDS)
        return fail(path, mode, **kwargs)

    def clearing() -> None:
        clear()
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_TIMEOUT_SECONDS)

    monkeypatch.setattr(fault_proxy, "fail", failing)
    monkeypatch.setattr(fault_proxy, "clear", clearing)
    fault_proxy.clear()
    yield fault_proxy
    fault_proxy.clear()


def split(kind: str) -> tuple[str, str]:
    method, path = kind.split(" ", 1)
    return method, path


def fail_kind(proxy: FaultProxy, kind: str, mode: FaultMode, after: int = 0) -> None:
    method, path = split(kind)
    proxy.clear()
    proxy.fail(path, mode, method=method, after=after)


def assert_clean_failure(raised: BaseException, proxy: FaultProxy) -> None:
    """A failure that names MLflow and where it was asked, in the platform's words."""
    assert isinstance(raised, ServiceUnreachable), repr(raised)
    assert raised.service == "MLflow" and raised.url == proxy.url
    assert str(raised).startswith(f"MLflow at {proxy.url} does not answer ("), str(raised)


# MLflow's client asks the server what it supports (cached for 60 s) and does without the
# answer when it gets none: a probe, not a call a decision rests on.
CAPABILITY_PROBES = ("/server-info", "/server-features")


def registry_kinds(proxy: FaultProxy) -> list[str]:
    """The kinds of call seen to MLflow's API: tracking, registry, artifacts."""
    return [
        k
        for k in proxy.kinds()
        if "/api/" in k and not any(probe in k for probe in CAPABILITY_PROBES)
    ]


def decision_kinds(proxy: FaultProxy) -> list[str]:
    """The kinds of registry call seen: the train flow's decision path (reconcile, load the
    champion, register, apply and record the decision). Logging the run is the rest of what
    it asks MLflow; one of those kinds is drilled too, and a whole outage while logging is
    test_mlflow_outage.py's."""
    return [k for k in proxy.kinds() if "/registered-models/" in k or "/model-versions/" in k]


# What "absent" and "could not ask" are.


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_an_alias_mlflow_cannot_be_asked_for_fails_closed_not_as_no_champion(
    drill: Drill, proxy: FaultProxy, mode: FaultMode
) -> None:
    assert drill.registry.alias("no-such-alias") is None  # an answer: absent
    proxy.fail("/registered-models/alias", mode)
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable) as raised:
        drill.registry.alias(CHAMPION)
    assert time.monotonic() - started < UNANSWERED_LIMIT_SECONDS
    assert_clean_failure(raised.value, proxy)
    assert len(proxy.failed()) >= QUICK.attempts  # asked again before giving up


def test_mlflow_answering_again_within_the_retries_gives_the_answer(
    drill: Drill, proxy: FaultProxy
) -> None:
    champion = drill.aliases()[CHAMPION]
    proxy.fail("/registered-models/alias", "5xx", times=QUICK.attempts - 1)
    assert drill.registry.alias(CHAMPION) == champion
    assert len(proxy.failed()) == QUICK.attempts - 1


# The registry's writes on a decision path: promote, rollback, reconcile.


def _each_kind_in_turn(
    drill: Drill,
    proxy: FaultProxy,
    prepare: Callable[[], Any],
    act: Callable[[Any], Any],
    check: Callable[[Any, dict[str, str | None], str], None],
) -> list[str]:
    """`act(prepare())` once with no fault, to see the kinds of call it makes; then once per
    kind with that kind failing (modes in turn), `check(prepared, aliases before, kind)`."""
    prepared = prepare()
    proxy.clear()
    act(prepared)
    kinds = registry_kinds(proxy)
    assert kinds
    for index, kind in enumerate(kinds):
        prepared = prepare()
        before = drill.aliases()
        fail_kind(proxy, kind, FAULT_MODES[index % len(FAULT_MODES)])
        with pytest.raises(ServiceUnreachable) as raised:
            act(prepared)
        assert_clean_failure(raised.value, proxy)
        proxy.clear()
        check(prepared, before, kind)
    return kinds


def test_a_promotion_mlflow_stops_answering_during_is_undone_or_finished_never_guessed(
    drill: Drill, proxy: FaultProxy
) -> None:
    def check(version: str, before: dict[str, str | None], kind: str) -> None:
        after = drill.aliases()
        if after[CHAMPION] == version:  # cut short once @champion moved: decided, finished
            assert drill.decisions()[version] == "pending", kind
            drill.registry.reconcile()
            assert drill.aliases() == {CHAMPION: version, PREVIOUS: before[CHAMPION]}, kind
            assert drill.decisions()[version] == "promoted", kind
        else:  # nothing moved; the next run abandons the version
            assert after == before, kind
            assert drill.decisions()[version] == "pending", kind
            drill.registry.reconcile()
            assert drill.aliases() == before, kind
            assert drill.decisions()[version] == "abandoned", kind

    kinds = _each_kind_in_turn(
        drill,
        proxy,
        drill.new_version,
        lambda version: drill.registry.promote(version, "drill: a promotion"),
        check,
    )
    assert any("/registered-models/alias" in kind for kind in kinds), kinds


def test_a_rollback_mlflow_stops_answering_during_changes_nothing_or_is_finished_next_time(
    drill: Drill, proxy: FaultProxy
) -> None:
    def prepare() -> tuple[str, str]:
        """A champion with a @previous to roll back to."""
        version = drill.new_version()
        former = drill.aliases()[CHAMPION]
        assert former is not None
        drill.direct.promote(version, "drill: a champion to roll back")
        return version, former

    def rollback(_: tuple[str, str]) -> tuple[str, str]:
        return drill.registry.rollback("drill: a rollback", by="human:drill")

    def check(prepared: tuple[str, str], before: dict[str, str | None], kind: str) -> None:
        version, former = prepared
        if drill.aliases() != before:  # @champion moved: the next rollback finishes this one
            assert drill.aliases()[CHAMPION] == former, kind
        assert drill.decisions()[version] == "promoted", kind  # not rolled back on a guess
        assert drill.registry.rollback("drill: again", by="human:drill") == (version, former)
        assert drill.aliases()[CHAMPION] == former, kind
        assert drill.aliases()[PREVIOUS] != former, kind
        assert drill.decisions()[version] == "rolled_back", kind

    _each_kind_in_turn(drill, proxy, prepare, rollback, check)


def test_reconcile_mlflow_stops_answering_during_abandons_nothing_it_cannot_see(
    drill: Drill, proxy: FaultProxy
) -> None:
    def check(version: str, before: dict[str, str | None], kind: str) -> None:
        assert drill.aliases() == before, kind
        assert drill.decisions()[version] in ("pending", "abandoned"), kind
        drill.registry.reconcile()
        assert drill.decisions()[version] == "abandoned", kind

    _each_kind_in_turn(drill, proxy, drill.new_version, lambda _: drill.registry.reconcile(), check)


# Monitoring's reads and the service's champion follow.


def test_monitoring_reads_of_the_champion_fail_closed_not_as_run_mlops_train(
    drill: Drill, proxy: FaultProxy
) -> None:
    from mlops.stores.reference import load_reference

    def read(_: object) -> object:
        return load_reference(drill.registry, drill.registry.champion())

    def check(_: object, before: dict[str, str | None], kind: str) -> None:
        assert drill.aliases() == before, kind

    reference = read(None)
    assert len(reference) > 0  # type: ignore[arg-type]
    _each_kind_in_turn(drill, proxy, lambda: None, read, check)


def test_the_service_keeps_its_model_while_mlflow_does_not_answer(
    drill: Drill, proxy: FaultProxy
) -> None:
    from mlops.stores.feature_store import open_store
    from serving.champion import Champion
    from serving.model_loading import load_registered
    from serving.scoring import Scorer

    registry = drill.registry
    champion = Champion(
        partial(registry.alias, CHAMPION),
        partial(load_registered, registry),
        Scorer(open_store(drill.settings, drill.use_case), drill.use_case),
    )
    assert champion.refresh()
    serving = champion.current
    assert serving is not None and serving.version == drill.aliases()[CHAMPION]
    for mode in FAULT_MODES:
        proxy.clear()
        proxy.fail("/registered-models/alias", mode)
        assert not champion.refresh()
        assert champion.current is serving
        assert champion.last_error is not None and "MLflow at" in champion.last_error


# The train flow, call by call.


@pytest.fixture
def no_task_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The train flow's MLflow tasks fail at their first failure: a drill sees the clean
    failure at once instead of after minutes of Prefect's retries."""
    import flows.train

    for name in TRAIN_TASKS:
        monkeypatch.setattr(flows.train, name, getattr(flows.train, name).with_options(retries=0))


@pytest.fixture
def quick_task_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The train flow's MLflow tasks retry as many times as the platform's, a fifth of a
    second apart instead of 2 s, 5 s, 10 s...: a drill sees the retry decide as with MLflow up
    without waiting out the delays meant for a server restarting."""
    import flows.train

    for name in TRAIN_TASKS:
        task = getattr(flows.train, name)
        quick = task.with_options(retry_delay_seconds=[0.2] * task.retries)
        monkeypatch.setattr(flows.train, name, quick)


def train() -> Any:
    from flows.train import train as train_flow

    return train_flow(search_trials=TRIALS)


def test_mlflow_down_between_reconciling_and_loading_the_champion_never_promotes_on_a_guess(
    drill: Drill, proxy: FaultProxy, quick_task_retries: None
) -> None:
    """The issue's drill: the second alias read (loading the champion, after reconciling)
    fails past the registry's retries. The flow retries the task; the challenger is judged
    against the champion, as with MLflow up."""
    drill.direct.reconcile()
    before = drill.aliases()
    proxy.fail("/registered-models/alias", "refused", after=1, times=2 * QUICK.attempts)
    report = train()
    assert proxy.failed(), "the fault never struck"
    assert report.champion_version == before[CHAMPION]
    assert report.champion_metrics is not None  # judged against the champion
    assert not report.reason.startswith("promoted: first model")
    if report.decision != "promoted":
        assert drill.aliases() == before
    assert drill.decisions()[report.version] == report.decision


def test_the_train_flow_fails_cleanly_at_each_mlflow_call_it_cannot_make(
    drill: Drill, proxy: FaultProxy, no_task_retries: None
) -> None:
    """Each kind of MLflow call the train flow makes fails in turn, where the flow first
    makes it; each run ends in a clean failure naming MLflow, with the aliases unchanged and
    nothing promoted. The next run reconciles what a failed one left."""
    drill.direct.reconcile()
    before = drill.aliases()
    clean = train()
    seen = registry_kinds(proxy)
    logging = [k for k in seen if "/runs/create" in k]
    downloads = [k for k in seen if k.startswith("GET ") and "/mlflow-artifacts/" in k][:1]
    kinds = decision_kinds(proxy) + logging + downloads
    assert clean.champion_version == before[CHAMPION]
    if clean.decision == "promoted":  # the same model again: promoted only on its merits
        before = drill.aliases()
    failed_runs = []
    for index, kind in enumerate(kinds):
        versions = set(drill.decisions())
        fail_kind(proxy, kind, FAULT_MODES[index % len(FAULT_MODES)])
        with pytest.raises(ServiceUnreachable) as raised:
            train()
        assert_clean_failure(raised.value, proxy)
        proxy.clear()
        assert drill.aliases() == before, kind
        left = {v: d for v, d in drill.decisions().items() if v not in versions}
        assert set(left.values()) <= {"pending"}, (kind, left)  # nothing decided
        failed_runs.append(kind)
    drill.direct.reconcile()
    assert "pending" not in drill.decisions().values()
    assert drill.aliases() == before
    print(f"\ntrain flow drilled at {len(failed_runs)} kinds of MLflow call: {failed_runs}")


def test_a_promote_or_rollback_flow_mlflow_does_not_answer_fails_cleanly(
    drill: Drill, proxy: FaultProxy
) -> None:
    from flows.promote import promote, rollback

    version = drill.new_version("rejected")  # a person overrides the gate
    before = drill.aliases()
    proxy.fail("/registered-models/alias", "hung", method="POST")
    with pytest.raises(ServiceUnreachable) as raised:
        promote(version, "drill", by="human:drill")
    assert_clean_failure(raised.value, proxy)
    proxy.clear()
    assert drill.aliases() == before
    proxy.fail("/model-versions/search", "5xx")
    with pytest.raises(ServiceUnreachable) as raised:
        rollback("drill", by="human:drill")
    assert_clean_failure(raised.value, proxy)
    proxy.clear()
    assert drill.aliases() == before
    drill.direct.reconcile()
