"""The wheel is the whole platform: every package and data file, installed from the lock into a
clean virtual environment, imported from outside the checkout.

The environment is `uv sync --frozen --no-install-project` into a temporary directory: the
locked dependencies from the uv cache `make install` filled (hard links: under a second), then
the wheel with `uv pip install`, which resolves its declared requirements against what is
installed. uv runs offline; only with a cold cache does it go to the package index (slow, but
still the same locked versions). Nothing from the checkout is on `sys.path`: the processes run in
a temporary directory, with no PYTHONPATH and a HOME of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from mlops.config.settings import TELEMETRY_OFF

# Builds the wheel and installs it in a fresh venv: minutes of subprocesses.
pytestmark = [pytest.mark.integration, pytest.mark.server, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[3]
# The uv `make install` used (from PATH or .tools/), so its cache is the one filled; else the
# locked one (uv is a dependency of the project).
UV = shutil.which("uv") or next(
    str(p) for p in (REPO / ".tools/bin/uv", Path(sys.executable).parent / "uv") if p.exists()
)
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGES = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
NOT_SHIPPED = {"tests", "benchmarks"}  # top-level packages of the checkout, not of the platform
MODULES = [
    "flows.ingest",
    "flows.train",
    "flows.monitor",
    "flows.promote",
    "flows.deployments",
    "flows.serve",
    "serving.service",
    "entrypoints.cli",
    "entrypoints.lifecycle",
]

# Runs in the installed environment: settings, use case, card, suites, prefect.yaml, then every
# flow module and the service. Prints what it found for the test to judge.
CHECK = """
import importlib, importlib.util, json, sys, sysconfig
from pathlib import Path

from mlops.config.settings import DATA_ROOT, PROJECT_ROOT, get_settings

modules, packages = json.loads(sys.argv[1]), json.loads(sys.argv[2])
settings = get_settings().apply()  # before Prefect is imported, as the CLI does
from mlops.contracts.usecase import active_use_case

use_case = active_use_case(settings)
card = use_case.card

from great_expectations.core import ExpectationSuite  # as ingestion.gx_validation reads one

suites = {}
for table in use_case.tables:
    path = use_case.suites_dir / f"{table.name}.json"
    suites[table.name] = len(ExpectationSuite(**json.loads(path.read_text())).expectations)

import yaml
from flows.deployments import PREFECT_FILE

entrypoints = [d["entrypoint"] for d in yaml.safe_load(PREFECT_FILE.read_text())["deployments"]]
for name in modules:
    importlib.import_module(name)
service = sys.modules["serving.service"]
files = {
    name: module.__file__
    for name, module in sys.modules.items()
    if name.split(".")[0] in packages and getattr(module, "__file__", None)
}
print(json.dumps({
    "site": sysconfig.get_path("purelib"),
    "home": str(settings.home),
    "project_root": str(PROJECT_ROOT),
    "data_root": str(DATA_ROOT),
    "card": card.model_dump(mode="json"),
    "suites": suites,
    "prefect_file": str(PREFECT_FILE),
    # A file path (`flows/ingest.py:ingest`) or a module path (`flows.ingest:ingest`).
    "entrypoints_found": [
        (PROJECT_ROOT / e.split(":")[0]).is_file()
        or Path(importlib.util.find_spec(e.split(":")[0]).origin).is_relative_to(PROJECT_ROOT)
        for e in entrypoints
    ],
    "request_model": service.use_case.request_model.__name__,
    "files": files,
}))
"""


def _run(command: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, check=False, **kwargs
    )
    shown = " ".join(str(c) for c in command[:3])
    assert done.returncode == 0, f"{shown} ...:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _uv(["build", "--wheel", "--out-dir", out, REPO], env=_uv_env(), cwd=out)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A clean environment holding the locked dependencies and the wheel; returns its root."""
    root = tmp_path_factory.mktemp("wheel-env") / "venv"
    env = {**_uv_env(), "UV_PROJECT_ENVIRONMENT": str(root)}
    started = time.perf_counter()
    sync = ["sync", "--frozen", "--no-dev", "--no-install-project"]
    _uv([*sync, "--project", REPO, "--python", sys.executable], env=env, cwd=root.parent)
    python = root / "bin" / "python"
    _uv(["pip", "install", "--python", python, wheel], env=_uv_env())
    _run([UV, "pip", "check", "--python", python], env=_uv_env())
    print(f"clean environment with the wheel: {time.perf_counter() - started:.1f} s")
    return root


def test_the_wheel_holds_every_package_and_the_files_read_at_run_time(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    in_checkout = {p.parent.name for p in REPO.glob("*/__init__.py")} - NOT_SHIPPED
    assert set(PACKAGES) == in_checkout
    assert set(PACKAGES) | {"benchmarks"} == set(PYPROJECT["tool"]["importlinter"]["root_packages"])
    sources = [
        path.relative_to(REPO).as_posix()
        for package in PACKAGES
        for path in (REPO / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
    assert [f"{p}/__init__.py" for p in PACKAGES if f"{p}/__init__.py" not in names] == []
    assert [s for s in sources if s not in names] == []
    data = [
        f"mlops/_project/{p.relative_to(REPO).as_posix()}"
        for p in [REPO / "prefect.yaml", *(REPO / "expectations").rglob("*.json")]
    ]
    assert [d for d in data if d not in names] == []
    assert {"usecases/adclick/card.yaml", "serving/bentofile.yaml"} <= names


def test_the_installed_wheel_runs_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    done = _run(
        [venv / "bin" / "python", "-c", CHECK, json.dumps(MODULES), json.dumps(PACKAGES)],
        env=_clean_env(venv, tmp_path),
        cwd=tmp_path,
    )
    print(f"imports and loads: {time.perf_counter() - started:.1f} s")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    site = Path(found["site"])
    assert site.is_relative_to(venv)
    outside = {m: f for m, f in found["files"].items() if not Path(f).is_relative_to(site)}
    assert outside == {}, "imported from outside the installed wheel"
    imported = {name.split(".")[0] for name in found["files"]}
    assert set(PACKAGES) <= imported
    assert Path(found["project_root"]) == site
    assert Path(found["data_root"]) == site / "mlops" / "_project"
    assert Path(found["home"]) == (tmp_path / "mlops-home").resolve()
    assert found["card"]["label"]["column"]
    assert found["suites"] and all(n > 0 for n in found["suites"].values())
    assert Path(found["prefect_file"]).is_relative_to(site)
    assert found["entrypoints_found"] and all(found["entrypoints_found"])
    assert found["request_model"]


def test_the_installed_cli_answers(venv: Path, tmp_path: Path) -> None:
    done = _run([venv / "bin" / "mlops", "--help"], env=_clean_env(venv, tmp_path), cwd=tmp_path)
    assert "Usage" in done.stdout


def _uv(args: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    """uv offline (the cache is warm after `make install`), else from the package index."""
    try:
        return _run([UV, *args, "--offline"], **kwargs)
    except AssertionError as offline:
        print(f"uv {args[0]} offline failed, retrying online: {str(offline)[-300:]}")
        return _run([UV, *args], **kwargs)


def _uv_env() -> dict[str, str]:
    """This process's environment, minus what would point uv at the project's own venv."""
    drop = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _clean_env(venv: Path, tmp_path: Path) -> dict[str, str]:
    """No PYTHONPATH, no MLOPS_/PREFECT_ variables of the test process, a HOME of its own."""
    return {
        **TELEMETRY_OFF,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.defpath}",
        "HOME": str(tmp_path / "user-home"),
        "LANG": "C.UTF-8",
        "MLOPS_HOME": str(tmp_path / "mlops-home"),
        "PREFECT_HOME": str(tmp_path / "mlops-home" / "prefect"),
    }
