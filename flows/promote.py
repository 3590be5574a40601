"""Human overrides of the promotion gate: promote a chosen version, or roll back.

Both are flows so that they are recorded like the gate's own decisions: tags on the model
versions, and a Prefect artifact under the same key as the train flow's decisions. A request the
registry cannot honour (no such version, nothing to roll back to) fails the run with that
message, not with a traceback.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State

from flows.artifacts import artifact_key
from mlops.registry import ModelRegistry
from mlops.settings import get_settings


def _registry() -> ModelRegistry:
    from mlops.usecase import load_use_case

    settings = get_settings()
    return ModelRegistry(settings.tracking_uri, load_use_case(settings.use_case).model_name)


def _record(registry: ModelRegistry, title: str, result: dict) -> None:
    create_markdown_artifact(
        key=artifact_key("promotion", registry.name),
        markdown=f"# {registry.name}: {title}\n\n{result['reason']}\n\nBy `{result['by']}`.",
        description=f"{title}: {result['reason']}"[:500],
    )


@flow(name="promote")
def promote(version: str, reason: str, by: str) -> State:
    """Make `version` the champion, whatever the gate said; the former one becomes @previous."""
    registry = _registry()
    registry.reconcile()
    try:
        registry.version(version)
        former = registry.promote(version, f"manual promotion: {reason}", by=by)
    except ValueError as refused:
        return Failed(message=str(refused))
    result = {
        "model_name": registry.name,
        "champion_version": str(version),
        "previous_version": former,
        "decision": "promoted",
        "reason": reason,
        "by": by,
    }
    _record(registry, f"v{version} promoted by hand (was v{former})", result)
    return Completed(message=f"v{version} is @champion", data=result)


@flow(name="rollback")
def rollback(reason: str, by: str) -> State:
    """Give @champion back to @previous."""
    registry = _registry()
    registry.reconcile()
    try:
        rolled_back, restored = registry.rollback(reason, by=by)
    except ValueError as refused:
        return Failed(message=str(refused))
    result = {
        "model_name": registry.name,
        "champion_version": restored,
        "rolled_back_version": rolled_back,
        "previous_version": registry.alias("previous"),
        "decision": "rolled_back",
        "reason": reason,
        "by": by,
    }
    _record(registry, f"rolled back from v{rolled_back} to v{restored}", result)
    return Completed(message=f"v{restored} is @champion again", data=result)
