"""The infra check (TFX's InfraValidator): before a model becomes `@champion`, load it in the
real service, answer golden requests, and meet the card's latency SLO.

It catches what offline metrics cannot: a model the service fails to load or to warm up, inputs
it cannot score, a cold-start path that errors, a model too slow for the SLO. The service runs
as its own `bentoml serve` process pinned to the candidate, with its own prediction log under
`HOME/infra_check/v<version>/`, so the check never touches the live log.
"""

from __future__ import annotations

import http.client
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlops.offline_store import OfflineStore
from mlops.settings import Settings
from mlops.usecase import UseCase
from serving.process import ServiceFailed, ServiceProcess, free_port, start_service

GOLDEN_REQUESTS = 20
WARM_UP_REQUESTS = 50
TIMED_REQUESTS = 300
# The best of a few rounds: the check asks whether the model can meet the SLO, and a burst of
# unrelated load on a shared machine should not decide that.
TIMED_ROUNDS = 5


@dataclass(frozen=True)
class InfraCheck:
    passed: bool
    detail: str
    p99_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def golden_requests(settings: Settings, use_case: UseCase) -> list[dict[str, Any]]:
    """The newest ingested events as requests, then two of them with unknown entities."""
    events = use_case.events
    keys = use_case.entity_keys
    columns = [*keys, *use_case.request_columns, events.timestamp_column]
    con = OfflineStore(settings.offline_dir).connect([events.name])
    try:
        frame = con.execute(
            f"""SELECT {", ".join(f'"{c}"' for c in columns)} FROM "{events.name}"
                ORDER BY "{events.timestamp_column}" DESC LIMIT {GOLDEN_REQUESTS}"""
        ).df()
        newest_ids = con.execute(
            f"""SELECT {", ".join(f'max("{k}")' for k in keys)} FROM "{events.name}" """
        ).fetchone()
    finally:
        con.close()
    # JSON as a client would send it: integers stay integers, timestamps carry their zone.
    requests = json.loads(frame.convert_dtypes().to_json(orient="records", date_format="iso"))
    unknown = {key: int(newest) + 1_000_000 for key, newest in zip(keys, newest_ids, strict=True)}
    return [*requests, *({**r, **unknown} for r in requests[:2])]


def infra_check(settings: Settings, use_case: UseCase, version: str) -> InfraCheck:
    """Serve `version` in a real service process and check it; never raises for a bad model."""
    slo_ms = settings.serving.infra_check_p99_ms or use_case.card.serving_slo.p99_latency_ms
    workdir = settings.home / "infra_check" / f"v{version}"
    try:
        service = start_service(
            settings,
            port=free_port(),
            overrides={
                "MLOPS_SERVING__MODEL_VERSION": str(version),
                "MLOPS_SERVING__PREDICTION_LOG_DIR": str(workdir / "predictions"),
            },
            log_path=workdir / "service.log",
        )
    except ServiceFailed as err:
        return InfraCheck(False, f"v{version} did not start in the service: {err}")
    try:
        golden = golden_requests(settings, use_case)
        if problems := _answer_golden(service, use_case, version, golden):
            return InfraCheck(False, f"v{version} failed golden requests: {'; '.join(problems)}")
        p99 = min(_p99_ms(service, golden) for _ in range(TIMED_ROUNDS))
    finally:
        service.stop()
    summary = (
        f"p99 {p99:.2f} ms (best of {TIMED_ROUNDS} rounds of {TIMED_REQUESTS} sequential "
        f"requests), SLO {slo_ms:g} ms"
    )
    if p99 > slo_ms:
        return InfraCheck(False, f"v{version} is too slow: {summary}", p99)
    return InfraCheck(True, f"infra check passed: {len(golden)} golden requests, {summary}", p99)


def _answer_golden(
    service: ServiceProcess, use_case: UseCase, version: str, golden: list[dict[str, Any]]
) -> list[str]:
    problems = []
    for request in golden:
        status, body = service.post("/predict", request)
        score = body.get(use_case.score_name) if isinstance(body, dict) else None
        if status != 200:
            problems.append(f"{request} answered {status}: {body}")
        elif body["model_version"] != str(version):
            problems.append(f"{request} was scored by v{body['model_version']}")
        elif not (isinstance(score, float) and math.isfinite(score) and 0 <= score <= 1):
            problems.append(f"{request} scored {score!r}, not a probability")
    status, body = service.post("/predict_batch", {"requests": golden})
    if status != 200 or len(body.get("predictions", [])) != len(golden):
        problems.append(f"the batch of {len(golden)} answered {status}: {str(body)[:300]}")
    return problems


def _p99_ms(service: ServiceProcess, golden: list[dict[str, Any]]) -> float:
    """Sequential requests on one keep-alive connection, as the service sees them."""
    host, port = service.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    bodies = [json.dumps(r) for r in golden]
    headers = {"Content-Type": "application/json"}
    latencies = []
    try:
        for i in range(WARM_UP_REQUESTS + TIMED_REQUESTS):
            started = time.perf_counter()
            connection.request("POST", "/predict", bodies[i % len(bodies)], headers)
            connection.getresponse().read()
            latencies.append(time.perf_counter() - started)
    finally:
        connection.close()
    return float(np.percentile(latencies[WARM_UP_REQUESTS:], 99) * 1000)
