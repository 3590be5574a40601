"""The infra check's latency verdict does not flip with machine load: a good model passes and a
truly slow one (its scoring made ~10x slower by the fault drill) is rejected, alone and beside
two CPU-bound processes of its own on this 2-core machine (the rest of the suite runs beside it
either way). Judged with the card's SLO.

The session's trained model (a private copy of its home); one service per model, each checked
quiet then busy, since a `bentoml serve` start costs ~15 s: the good model is the session's
service (it serves that model), the slow one a candidate service of its own. Each check prints
its figures (run with `-s` to see them).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import pytest

from mlops.config.settings import Settings, get_settings
from mlops.contracts.usecase import UseCase, active_use_case
from serving.infra_check import InfraCheck, check_service, start_candidate
from serving.process import ServiceProcess
from tests.support.service import Served
from tests.support.session import TrainedWeek
from tests.support.stores import copy_home

pytestmark = pytest.mark.integration

# The good model costs the service ~1.7 ms of CPU a request (online features, booster, log);
# scoring each request this many more times makes it ~10x costlier, on any machine.
SLOW_REPEATS = 20
# The CPU-bound neighbours stop by themselves after this, should the test process die.
BUSY_SECONDS_MAX = 180
SPIN = (
    f"import time\nend = time.monotonic() + {BUSY_SECONDS_MAX}\nwhile time.monotonic() < end: pass"
)


@dataclass
class Trained:
    settings: Settings
    use_case: UseCase
    version: str


@pytest.fixture(scope="module")
def trained(
    trained_week: TrainedWeek, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Trained]:
    """A private copy of the session's trained week (v1), with the card's SLO in force."""
    home = copy_home(trained_week.home, tmp_path_factory.mktemp("infra-check") / "mlops-home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLOPS_HOME", str(home))
        monkeypatch.setenv("MLOPS_SERVING__INFRA_CHECK", "false")
        monkeypatch.delenv("MLOPS_SERVING__INFRA_CHECK_P99_MS", raising=False)
        get_settings.cache_clear()
        settings = get_settings().apply()
        yield Trained(settings, active_use_case(settings), trained_week.report.version)
    get_settings.cache_clear()


@contextmanager
def serving(settings: Settings, version: str) -> Iterator[ServiceProcess]:
    service = start_candidate(settings, version)
    try:
        yield service
    finally:
        service.stop()


@contextmanager
def cpu_bound_neighbours(count: int) -> Iterator[None]:
    """`count` processes spinning on the CPU beside the check (0: a quiet machine)."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def check(trained: Trained, service: ServiceProcess, settings: Settings, label: str) -> InfraCheck:
    result = check_service(service, settings, trained.use_case, trained.version)
    figures = {k: v for k, v in result.to_dict().items() if k not in ("passed", "detail")}
    print(f"\n[infra check] {label}: passed={result.passed} {figures}")
    return result


LOADS = {"quiet": 0, "two CPU-bound processes": 2}


def test_a_good_model_passes_quiet_and_busy(trained: Trained, shared_service: Served):
    assert trained.settings.serving.infra_check_p99_ms is None  # the card's SLO decides
    slo = trained.use_case.card.serving_slo.p99_latency_ms
    # The session's service serves this very model (v1 of the same training) and nothing else:
    # checked as the infra check checks its candidate, without starting another service.
    assert shared_service.started["model_version"] == trained.version
    service = ServiceProcess(
        cast("subprocess.Popen[bytes]", shared_service.process),
        shared_service.started["url"],
        shared_service.settings.logs_dir / "mlops.log",
    )
    for label, neighbours in LOADS.items():
        with cpu_bound_neighbours(neighbours):
            result = check(trained, service, trained.settings, f"good model, {label}")
        assert result.passed, f"{label}: {result.detail}"
        assert result.slo_ms == slo and f"SLO {slo:g} ms" in result.detail
        assert result.score_max_diff is not None and result.score_max_diff <= 1e-6
        # Raw and adjusted figures are both in the reason the decision records.
        assert "the model adds" in result.detail and "raw /predict p99" in result.detail
        assert result.adjusted_ms is not None and result.budget_ms is not None
        assert result.adjusted_ms <= result.budget_ms
        assert result.slowdown is not None and result.floor_fastest_ms is not None
        assert result.budget_ms == pytest.approx(
            slo * result.slowdown - result.floor_fastest_ms, abs=0.01
        )


def test_a_slow_model_is_rejected_quiet_and_busy(trained: Trained):
    slow = trained.settings.model_copy(
        update={
            "serving": trained.settings.serving.model_copy(
                update={"fault_scoring_repeats": SLOW_REPEATS}
            )
        }
    )
    with serving(slow, trained.version) as service:
        for label, neighbours in LOADS.items():
            with cpu_bound_neighbours(neighbours):
                result = check(trained, service, slow, f"slow model, {label}")
            assert not result.passed
            assert result.detail.startswith(f"v{trained.version} is too slow: the model adds")
            # Slow, not wrong: it still answers with the in-process scores.
            assert result.score_max_diff is not None and result.score_max_diff <= 1e-6
            assert result.adjusted_ms is not None and result.budget_ms is not None
            assert result.adjusted_ms > result.budget_ms
