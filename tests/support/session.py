"""What the test session shares: the pinned use case and week, and `built_once`, which builds
an expensive fixture once per run whichever pytest-xdist worker asks first."""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from mlops.config.settings import Settings, get_settings

if TYPE_CHECKING:
    from models.train_report import TrainReport

T = TypeVar("T")
START = date(2026, 1, 1)
# The card's windows: 5 training days, 1 validation day, 1 test day.
WEEK_DAYS = 7
WEEK_EVENTS_PER_DAY = 8_000
# What the suite runs unless a test says otherwise: not a developer's own MLOPS_USE_CASE.
PINNED_USE_CASE = "adclick"
# Every service a test starts runs one worker unless the test says otherwise: a second one
# doubles a service's start-up (imports, model load), which the suite's time budget cannot pay
# for every service. tests/integration/serving/test_serving.py runs one service with two.
SERVICE_WORKERS = "1"


@dataclass(frozen=True)
class TrainedWeek:
    home: Path  # copy it (`copy_home`) before changing anything
    report: TrainReport  # v1's training: promoted, the infra check passed


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]
) -> tuple[Path, T]:
    """`build(directory)` once per run, whichever worker asks first; the others wait for it and
    get the same directory and (pickled) result. Never change what is in the directory."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the run's workers (and only by them)
    directory, done = root / f"built-{name}", root / f"built-{name}.pickle"
    with FileLock(str(root / f"built-{name}.lock")):
        if not done.exists():
            if directory.exists():  # a build that failed half-way in another worker
                shutil.rmtree(directory)
            done.write_bytes(pickle.dumps(build(directory)))
    return directory, pickle.loads(done.read_bytes())


def settings_at(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLOPS_HOME", str(home))
    # The infra check starts a real service (~20 s) for every promotion; tests/integration/
    # test_serving.py runs it, the other flow tests are about the gate and turn it off.
    monkeypatch.setenv("MLOPS_SERVING__INFRA_CHECK", "false")
    get_settings.cache_clear()
    return get_settings().apply()
