"""What the project exposes by default: every UI and every published port on loopback, no
literal password in the compose file, telemetry off for every target."""

from __future__ import annotations

import re

import yaml

from mlops.config.settings import PROJECT_ROOT

MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
UI_TARGETS = ("feast-ui", "mlflow-ui", "evidently-ui", "prefect-ui")


def _recipe(target: str) -> str:
    match = re.search(rf"^{target}:.*\n((?:\t.*\n?)+)", MAKEFILE, re.MULTILINE)
    assert match, target
    return match.group(1)


def test_every_ui_target_binds_the_configured_host_which_defaults_to_loopback() -> None:
    assert re.search(
        r"^UI_HOST \?= \$\(or \$\(MLOPS_UI__HOST\),127\.0\.0\.1\)$", MAKEFILE, re.MULTILINE
    )
    for target in UI_TARGETS:
        assert "--host $(UI_HOST)" in _recipe(target), target


def test_telemetry_is_off_for_every_make_target() -> None:
    for variable, value in (
        ("DO_NOT_TRACK", "true"),  # Evidently's UI and others
        ("MLFLOW_DISABLE_TELEMETRY", "true"),
        ("BENTOML_DO_NOT_TRACK", "true"),
        ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
        ("GX_ANALYTICS_ENABLED", "false"),
        ("FEAST_USAGE", "False"),
    ):
        assert re.search(rf"^export {variable} := {value}$", MAKEFILE, re.MULTILINE), variable


def test_compose_publishes_on_loopback_and_holds_no_password() -> None:
    text = (PROJECT_ROOT / "infra" / "compose.yaml").read_text()
    compose = yaml.safe_load(text)
    published = [p for s in compose["services"].values() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published)
    assert not re.search(r"postgres:postgres@|PASSWORD: *postgres\b", text)
