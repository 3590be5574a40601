"""Running Feast's own CLI as a user does: `feast -c feature_repo ...` in the environment the
platform gives it (`mlops.stores.feature_store.cli_environment`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlops.config.settings import Settings
from mlops.stores.feature_store import FEATURE_REPO, cli_environment

# The console script of the venv that runs the tests. Each call pays Feast's import (~8 s).
FEAST = str(Path(sys.executable).with_name("feast"))


def feast_environment(settings: Settings) -> dict[str, str]:
    env = {**os.environ, **cli_environment(settings)}
    if settings.profile == "local":  # the default feature_store.yaml
        env.pop("FEAST_FS_YAML_FILE_PATH", None)
    return env


def feast(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FEAST, "-c", str(FEATURE_REPO), *args],
        env=feast_environment(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_plans_no_change(settings: Settings) -> None:
    """`feast plan` finds the registry and the online store as the definitions want them, and
    says nothing else: no warning (a source path it cannot find), no object it would change."""
    done = feast(settings, "plan")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    said = [line.strip() for line in output.splitlines() if line.strip()]
    assert said == ["No changes to registry", "No changes to infrastructure"], output
