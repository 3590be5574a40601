"""Reliability drills against the real service (`bentoml serve`, as `mlops serve` starts it):
nothing lost, nothing let in.

- An ingest runs beside the service, on the same MLOPS_HOME, while requests stream: once to the
  end, once killed (SIGKILL, in a subprocess) in the middle of materializing and then rerun.
  Feast marks the views MATERIALIZING meanwhile (and a killed run leaves them so): every request
  is answered 200, or 503 with a not-ready reason; never a 500.
- Hostile requests (odd times, huge numbers, wrong types, unicode, nested junk, odd content
  types), hand-written and generated from /openapi.json by schemathesis: a 4xx, never a 5xx.
- The online store deleted, or corrupted, under the running service: /readyz 503 with the
  cause, /livez 200, /predict 503 with a message; and back to serving once the store is back.

One service for the module, on a copy of the session's trained week (v1). Tests run in
any order: each waits for the service to be ready first and puts back what it broke. Waits poll
with generous deadlines; requests have generous timeouts (this machine may be busy).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import httpx
import hypothesis
import pytest
import schemathesis

from mlops.config.settings import Settings, get_settings
from mlops.contracts.usecase import UseCase, load_use_case
from serving.process import ServiceProcess, free_port, start_service
from tests.support.session import PINNED_USE_CASE, START, WEEK_DAYS, TrainedWeek
from tests.support.stores import copy_home
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT_SECONDS = 30  # the client's, and the service's (then 504)
WAIT_SECONDS = 120  # for a state to be reached
STREAMS = 2  # threads sending requests during a drill
# Between one stream's requests: ~50 a second each still meet every state an ingest goes
# through (each lasts a second or more), and the drill no longer takes both cores from the
# rest of the suite, as back-to-back requests did.
PAUSE_SECONDS = 0.02
DAY_EVENTS = 3_000  # a drill's landed day: small, its ingest takes seconds
# What a 503 may say: the service is not ready (see serving/service.py, `unavailable`).
NOT_READY = ("online store unavailable", "cannot read the online store", "no model loaded")


@dataclass
class Drilled:
    settings: Settings
    use_case: UseCase
    service: ServiceProcess
    client: httpx.Client
    prefect_api_url: str

    def ready(self) -> httpx.Response:
        return self.client.get("/readyz")

    def wait_ready(self, timeout: float = WAIT_SECONDS) -> None:
        wait_until(
            lambda: self.ready().status_code == 200,
            "the service to be ready",
            timeout,
            ignoring=(httpx.TransportError,),
        )

    @property
    def online_db(self) -> Path:
        return self.settings.feast_dir / "online.db"

    def land_day(self, offset: int) -> Path:
        """A day after the ingested week (`offset` 0 is the day after it), landed."""
        [batch] = self.use_case.generator.generate(
            self.settings.landing_dir,
            start=START + timedelta(days=WEEK_DAYS + offset),
            days=1,
            events_per_day=DAY_EVENTS,
            seed=100 + offset,
        )
        return batch


@pytest.fixture(scope="module")
def drilled(
    trained_week: TrainedWeek, tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str
) -> Iterator[Drilled]:
    """The drills break and change the stores: a private copy of the trained week (v1)."""
    use_case = load_use_case(PINNED_USE_CASE)
    home = copy_home(trained_week.home, tmp_path_factory.mktemp("drills") / "mlops-home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLOPS_HOME", str(home))
        monkeypatch.setenv("MLOPS_SERVING__INFRA_CHECK", "false")
        get_settings.cache_clear()
        settings = get_settings().apply()
        service = start_service(
            settings,
            port=free_port(),
            overrides={"MLOPS_SERVING__TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS)},
        )
        try:
            with httpx.Client(base_url=service.url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
                yield Drilled(settings, use_case, service, client, prefect_api_url)
        finally:
            assert service.stop(timeout=WAIT_SECONDS) == 0, f"see {service.log_path}"
    get_settings.cache_clear()


def known_request(**context: Any) -> dict[str, Any]:
    return {"user_id": 1, "ad_id": 1, "device": "mobile", "ad_position": 2, **context}


@dataclass
class Traffic:
    """Requests sent from STREAMS threads, PAUSE_SECONDS apart, until the block ends: /predict
    and /predict_batch in turn, for entities of the ingested week."""

    url: str
    answers: Counter[int] = field(default_factory=Counter)
    refusals: list[tuple[int, str]] = field(default_factory=list)  # (status, error) of non-200s
    served_at: list[float] = field(default_factory=list)  # monotonic times of 200 answers
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Traffic:
        self._threads = [threading.Thread(target=self._send, args=(i,)) for i in range(STREAMS)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _send(self, stream: int) -> None:
        batch = {"requests": [known_request(user_id=u) for u in range(1, 21)]}
        with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            n = 0
            while not self._stop.wait(PAUSE_SECONDS):
                n += 1
                if n % 2:
                    response = client.post("/predict", json=known_request(user_id=stream + n))
                else:
                    response = client.post("/predict_batch", json=batch)
                with self._lock:
                    self.answers[response.status_code] += 1
                    if response.status_code == 200:
                        self.served_at.append(time.monotonic())
                    else:
                        self.refusals.append((response.status_code, response.text[:300]))

    def wait_for(self, answers: int) -> None:
        start = self.answers[200]
        wait_until(
            lambda: self.answers[200] >= start + answers,
            f"{answers} answers",
            ignoring=(httpx.TransportError,),
        )

    def assert_nothing_failed(self) -> None:
        """Every answer a 200, or a 503 saying the service is not ready."""
        assert set(self.answers) <= {200, 503}, (self.answers, self.refusals[:5])
        for status, error in self.refusals:
            assert status == 503 and any(reason in error for reason in NOT_READY), error

    def served_between(self, start: float, end: float) -> int:
        return sum(start <= t <= end for t in self.served_at)


def registry_states(settings: Settings, use_case: UseCase) -> dict[str, str]:
    """Each feature view's Feast state as the registry file says now, read as a plain reader
    (not `open_store`, which repairs what it finds). Feast rewrites the file in place: a read
    that meets a write is retried."""
    from feast import FeatureStore

    from mlops.stores.feature_store import repo_config

    for _ in range(50):
        try:
            store = FeatureStore(config=repo_config(settings, use_case))
            views = store.registry.list_feature_views(store.project, allow_cache=False)
            if views:
                return {v.name: v.state.name for v in views}
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError("the registry could not be read")


# Each online write of an in-process ingest is held this long: the views stay MATERIALIZING
# for a few seconds, long enough for requests to meet them on any machine.
HOLD_WRITE_SECONDS = 1.0


@pytest.fixture
def ingest(drilled: Drilled, monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[tuple]]:
    """Run the ingest flow in this process on one batch; return, per online write Feast made
    while materializing, (time, the views' states on disk then). Each write is held
    HOLD_WRITE_SECONDS unless `hold_writes` is false."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    from flows.ingest import ingest as ingest_flow

    writes: list[tuple[float, dict[str, str]]] = []
    original = SqliteOnlineStore.online_write_batch

    hold = True

    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        writes.append((time.monotonic(), registry_states(drilled.settings, drilled.use_case)))
        if hold:
            time.sleep(HOLD_WRITE_SECONDS)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SqliteOnlineStore, "online_write_batch", recorded)

    def run(batch: Path, hold_writes: bool = True) -> list[tuple]:
        nonlocal hold
        hold = hold_writes
        writes.clear()
        result = ingest_flow([batch])
        assert [r.status for r in result.batches] == ["ingested"], result
        return list(writes)

    return run


def test_requests_never_fail_while_a_day_is_ingested(drilled, ingest):
    drilled.wait_ready()
    batch = drilled.land_day(0)
    with Traffic(drilled.service.url) as traffic:
        traffic.wait_for(10)
        writes = ingest(batch)
        traffic.wait_for(10)

    traffic.assert_nothing_failed()
    materializing = [t for t, states in writes if "MATERIALIZING" in states.values()]
    assert materializing, f"no view was MATERIALIZING during the writes: {writes}"
    served = traffic.served_between(materializing[0], materializing[-1] + HOLD_WRITE_SECONDS)
    assert served > 0, "no request was answered while views were MATERIALIZING"
    print(f"\n{traffic.answers}; {served} answered while views were MATERIALIZING")


KILLED_INGEST = """
import os, signal
from pathlib import Path
from mlops.config.settings import get_settings
get_settings().apply()
from feast.infra.online_stores.sqlite import SqliteOnlineStore

original = SqliteOnlineStore.online_write_batch

def killed(self, config, table, data, progress):
    original(self, config, table, data[: len(data) // 2], progress)  # half of a view written
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handler: a crash

SqliteOnlineStore.online_write_batch = killed
from flows.ingest import ingest
ingest([Path({batch!r})])
"""


def test_an_ingest_killed_while_materializing_fails_no_request(drilled, ingest):
    drilled.wait_ready()
    batch = drilled.land_day(1)
    script = textwrap.dedent(KILLED_INGEST).format(batch=str(batch))
    with Traffic(drilled.service.url) as traffic:
        traffic.wait_for(10)
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PREFECT_API_URL": drilled.prefect_api_url},
            capture_output=True,
            timeout=600,
        )
        assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
        stuck = registry_states(drilled.settings, drilled.use_case)
        # Left MATERIALIZING by the dead process: Feast readers refuse such views unless told
        # otherwise; the service does not read them through the registry at all.
        assert "MATERIALIZING" in stuck.values(), stuck
        killed_at = time.monotonic()
        traffic.wait_for(20)
        served_while_stuck = traffic.served_between(killed_at, time.monotonic())
        ingest(batch, hold_writes=False)  # the rerun
        traffic.wait_for(10)

    traffic.assert_nothing_failed()
    assert served_while_stuck >= 20
    print(f"\n{traffic.answers}; stuck: {stuck}")


JSON = {"Content-Type": "application/json"}
DEEP = "[" * 5_000 + "]" * 5_000
HOSTILE: dict[str, dict[str, Any]] = {
    # Times: out of the contract's range (the first two used to overflow into a 500).
    "year 1 with an offset": {"json": known_request(event_timestamp="0001-01-01T00:00:00+05:20")},
    "year 9999 with an offset": {
        "json": known_request(event_timestamp="9999-12-31T23:59:59-23:59")
    },
    "before 2000": {"json": known_request(event_timestamp="1999-12-31T23:59:59Z")},
    "a week ahead": {"json": known_request(event_timestamp="2099-01-01T00:00:00+00:00")},
    "no time zone": {"json": known_request(event_timestamp="2026-01-08T10:00:00")},
    "hour 24": {"json": known_request(event_timestamp="2026-01-08T24:00:00Z")},
    "epoch number": {"json": known_request(event_timestamp=1767225600)},
    "empty time": {"json": known_request(event_timestamp="")},
    # Numbers.
    "id 2**64": {"json": known_request(user_id=2**64)},
    "id 10**400": {"content": b'{"user_id": 1' + b"0" * 400 + b', "ad_id": 1}', "headers": JSON},
    "id 1e400": {"content": b'{"user_id": 1e400, "ad_id": 1}', "headers": JSON},
    "id NaN": {"content": b'{"user_id": NaN, "ad_id": 1}', "headers": JSON},
    "id Infinity": {"content": b'{"user_id": Infinity, "ad_id": 1}', "headers": JSON},
    "id 0": {"json": known_request(user_id=0)},
    "id -0.0": {"content": b'{"user_id": -0.0, "ad_id": 1}', "headers": JSON},
    "id true": {"json": known_request(user_id=True)},
    "position 1e308": {"json": known_request(ad_position=1e308)},
    # Types and shapes.
    "id as string": {"json": known_request(user_id="1")},
    "id as list": {"json": known_request(user_id=[1])},
    "nested junk": {"json": known_request(device={"a": [{"b": [None, {"c": []}]}]})},
    "deep nesting": {"content": f'{{"user_id": {DEEP}, "ad_id": 1}}'.encode(), "headers": JSON},
    "null body": {"content": b"null", "headers": JSON},
    "string body": {"content": b'"predict"', "headers": JSON},
    "batch not a list": {"json": {"requests": {"user_id": 1}}, "path": "/predict_batch"},
    "batch of nulls": {"json": {"requests": [None, None]}, "path": "/predict_batch"},
    "batch with one bad time": {
        "json": {
            "requests": [known_request(), known_request(event_timestamp="0001-01-01T00:00:00Z")]
        },
        "path": "/predict_batch",
    },
    # Text.
    "emoji device": {"json": known_request(device="\U0001f4f1")},
    "NUL in device": {"json": known_request(device="mobile\u0000")},
    "right-to-left field name": {"json": {**known_request(), "\u202euser_id": 1}},
    "invalid UTF-8": {
        "content": b'{"user_id": 1, "ad_id": 1, "device": "\xff\xfe"}',
        "headers": JSON,
    },
    "lone surrogate": {
        "content": b'{"user_id": 1, "ad_id": 1, "device": "\\ud800"}',
        "headers": JSON,
    },
    # Content types.
    "text/plain": {
        "content": b'{"user_id": 1, "ad_id": 1}',
        "headers": {"Content-Type": "text/plain"},
    },
    "form": {"data": {"user_id": "1", "ad_id": "1"}},
    "multipart": {"files": {"f": b"{}"}},
    "empty content type": {
        "content": b'{"user_id": 1, "ad_id": 1}',
        "headers": {"Content-Type": ""},
    },
    "xml": {"content": b"<user_id>1</user_id>", "headers": {"Content-Type": "application/xml"}},
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_requests_get_a_4xx_with_a_message(drilled, case):
    drilled.wait_ready()
    kwargs = dict(HOSTILE[case])
    path = kwargs.pop("path", "/predict")
    response = drilled.client.post(path, **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert response.json()["error"]


def test_a_batch_with_one_bad_item_names_it(drilled):
    drilled.wait_ready()
    bad = known_request(event_timestamp="0001-01-01T00:00:00+05:20")
    response = drilled.client.post(
        "/predict_batch", json={"requests": [known_request(), known_request(), bad]}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("invalid request: requests.2.event_timestamp")
    assert response.json()["detail"][0]["loc"] == ["requests", 2, "event_timestamp"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=UTF-8",
        "APPLICATION/JSON;charset=utf-8",
    ],
)
def test_json_media_types_are_compared_case_insensitively(drilled, content_type):
    drilled.wait_ready()
    response = drilled.client.post(
        "/predict",
        content=json.dumps(known_request(event_timestamp=an_hour_ago_at_plus_0520())),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 200, response.text


def test_the_read_path_reads_what_feast_reads_without_the_registry(drilled, tmp_path):
    """In process, on a copy of the stores: the service's online lookup returns exactly what
    Feast's `get_online_features` returns, and still does when every view is MATERIALIZING and
    when the registry file is empty (as a reader can find it while Feast rewrites it)."""
    from feast import FeatureStore
    from feast.feature_view import FeatureViewState

    from mlops.stores.feature_store import repo_config
    from serving.scoring import Scorer

    home = tmp_path / "mlops-home"
    shutil.copytree(drilled.settings.feast_dir, home / drilled.settings.feast_dir.name)
    settings = Settings(home=home)
    store = FeatureStore(config=repo_config(settings, drilled.use_case))
    service = store.get_feature_service(drilled.use_case.feature_service)
    rows = [{"user_id": u, "ad_id": a} for u in (*range(1, 200), 10**12) for a in (1, 7, 10**12)]
    scorer = Scorer(store, drilled.use_case)
    feast = store.get_online_features(features=service, entity_rows=rows).to_dict()
    expected = {name: feast[name] for name in scorer.feature_columns}
    assert scorer.lookup(rows) == expected
    assert any(v is not None for v in expected["user_country"])
    assert any(v is None for v in expected["user_country"])

    for view in store.registry.list_feature_views(store.project):
        view.state = FeatureViewState.MATERIALIZING
        store.registry.apply_feature_view(view, store.project, commit=True)
    assert scorer.lookup(rows) == expected
    (settings.feast_dir / "registry.db").write_bytes(b"")
    assert (
        Scorer(
            FeatureStore(config=repo_config(settings, drilled.use_case)), drilled.use_case
        ).lookup(rows)
        == expected
    )


def an_hour_ago_at_plus_0520() -> str:
    offset = timezone(timedelta(hours=5, minutes=20))
    return (datetime.now(UTC) - timedelta(hours=1)).astimezone(offset).isoformat()


def test_model_answers_as_documented(drilled):
    import jsonschema

    drilled.wait_ready()
    docs = drilled.client.get("/openapi.json").json()
    answer = docs["paths"]["/model"]["get"]["responses"]["200"]["content"]["application/json"]
    model = drilled.client.get("/model").json()
    jsonschema.validate(model, {**answer["schema"], "components": docs["components"]})
    assert model["model_version"] == "1" and model["features"]


@contextmanager
def broken_store(drilled: Drilled, how: str) -> Iterator[None]:
    """The online store deleted or overwritten with junk in place (the service's open
    connection then reads garbage); put back as it was on the way out, whatever happened."""
    backup = drilled.online_db.with_name("online.db.drill-backup")
    shutil.copy2(drilled.online_db, backup)
    try:
        if how == "deleted":
            drilled.online_db.unlink()
        else:
            size = drilled.online_db.stat().st_size
            with drilled.online_db.open("r+b") as handle:
                handle.write(os.urandom(size))
        yield
    finally:
        shutil.copyfile(backup, drilled.online_db)  # in place when it exists: same inode
        backup.unlink()


@pytest.mark.parametrize(
    ("how", "cause"),
    [("deleted", "does not exist"), ("corrupt", "cannot read the online store")],
)
def test_a_broken_online_store_is_not_ready_and_recovers(drilled, how, cause):
    drilled.wait_ready()
    with broken_store(drilled, how):
        # The probe runs every few seconds; a request in between may find the store unreadable
        # itself: a 503 either way.
        wait_until(
            lambda: drilled.ready().status_code == 503,
            "/readyz to say 503",
            ignoring=(httpx.TransportError,),
        )
        ready = drilled.ready()
        assert "online store" in ready.text and cause in ready.text, ready.text
        assert drilled.client.get("/livez").status_code == 200
        for path, body in [
            ("/predict", known_request()),
            ("/predict_batch", {"requests": [known_request()]}),
        ]:
            response = drilled.client.post(path, json=body)
            assert response.status_code == 503, response.text
            assert "online store" in response.json()["error"]
        assert drilled.client.get("/model").status_code == 200
    drilled.wait_ready()
    response = drilled.client.post("/predict", json=known_request())
    assert response.status_code == 200, response.text
    assert response.json()["missing_features"] == []


# Generated requests: every operation in /openapi.json, valid and invalid bodies, bounded and
# derandomized (the same cases every run). Checks: no 5xx, documented statuses, content types
# and bodies; invalid data refused. Not `positive_data_acceptance`: a schema-valid time may lie
# outside the accepted range (now + 1 day moves), which the JSON schema cannot say. (Hypothesis
# directly, not schemathesis's pytest loader: that one fails on this pytest, which dropped
# `Node._nodeid`.)
FUZZ_EXAMPLES = 40


def test_generated_requests_get_no_5xx(drilled):
    from schemathesis import GenerationMode

    drilled.wait_ready()
    schema = schemathesis.openapi.from_url(drilled.service.url + "/openapi.json")
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {"/predict", "/predict_batch", "/explain", "/model"}
    answers: Counter[str] = Counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not len(operation.body):
                continue  # nothing to make invalid (GET /model)
            fuzz(drilled.service.url, operation, mode, answers)
    print(f"\n{dict(sorted(answers.items()))}")


def fuzz(url: str, operation: Any, mode: Any, answers: Counter[str]) -> None:
    """FUZZ_EXAMPLES generated calls of one operation; raises on the first failed check (after
    Hypothesis shrank the case)."""
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def call(case: Any) -> None:
        response = case.call_and_validate(
            base_url=url,
            timeout=REQUEST_TIMEOUT_SECONDS,
            excluded_checks=[positive_data_acceptance],
        )
        answers[f"{case.method} {case.path} {mode.value} {response.status_code}"] += 1

    call()
