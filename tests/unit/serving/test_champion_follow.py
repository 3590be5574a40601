"""Following `@champion`: a registry that does not answer changes nothing. The same with a
real MLflow behind a faulty proxy: tests/integration/flows/test_mlflow_drills.py."""

from __future__ import annotations

from typing import Any, cast

from mlops.config.errors import ServiceUnreachable
from serving.champion import Champion
from serving.model_loading import ServedModel
from serving.scoring import Scorer


def unreachable() -> str | None:
    raise ServiceUnreachable("MLflow", "http://mlflow:5000", "connection refused")


def never_loaded(version: str) -> ServedModel:
    raise AssertionError(f"nothing is loaded when the registry does not answer (v{version})")


def test_an_mlflow_outage_keeps_the_model_serving_and_says_why() -> None:
    champion = Champion(unreachable, never_loaded, cast(Scorer, None))
    serving = cast(Any, object())
    champion.current = serving

    assert not champion.refresh()
    assert champion.current is serving
    assert champion.last_error is not None
    assert "MLflow at http://mlflow:5000 does not answer" in champion.last_error


def test_an_answer_of_no_champion_keeps_the_model_serving_too() -> None:
    champion = Champion(lambda: None, never_loaded, cast(Scorer, None))
    serving = cast(Any, object())
    champion.current = serving

    assert not champion.refresh()
    assert champion.current is serving and champion.last_error is None
