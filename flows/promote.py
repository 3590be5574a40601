"""Human overrides of the promotion gate: promote a chosen version, reject one (a @challenger
on live traffic, say), or roll back.

Both are flows so that they are recorded like the gate's own decisions: tags on the model
versions, and a Prefect artifact under the same key as the train flow's decisions. A request the
registry cannot honour (no such version, nothing to roll back to) is a `UserError`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.prefect_names import (
    ROLLBACK_RUN_NAME,
    artifact_key,
    from_parameters,
    name_flow_run,
    promote_run_name,
    reject_run_name,
    rollback_run_name,
)
from flows.results import RESULT_SERIALIZER
from mlops.config.runtime import setup
from mlops.contracts.usecase import active_use_case
from mlops.stores.registry import PREVIOUS, ModelRegistry


@dataclass(frozen=True)
class Override:
    """What a human override did; what `mlops promote|rollback --json` prints."""

    model_name: str
    decision: Literal["promoted", "rejected", "rolled_back"]
    champion_version: str
    previous_version: str | None
    reason: str
    by: str
    rolled_back_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def registry() -> ModelRegistry:
    settings = setup()
    return ModelRegistry(settings.tracking_uri, active_use_case(settings).model_name)


def _record(override: Override, title: str) -> None:
    create_markdown_artifact(
        key=artifact_key("promotion", override.model_name),
        markdown=f"# {override.model_name}: {title}\n\n{override.reason}\n\nBy `{override.by}`.",
        description=f"{title}: {override.reason}"[:500],
    )


@flow(
    name="promote",
    flow_run_name=from_parameters(promote_run_name),
    persist_result=True,
    result_serializer=RESULT_SERIALIZER,
)
def promote(version: str, reason: str, by: str) -> Override:
    """Make `version` the champion, whatever the gate said; the former one becomes @previous."""
    models = registry()
    models.reconcile()
    models.version(version)  # a UserError when there is no such version
    former = models.promote(version, f"manual promotion: {reason}", by=by)
    done = Override(models.name, "promoted", str(version), former, reason, by)
    _record(done, f"v{version} promoted by hand (was v{former})")
    return done


@flow(
    name="reject",
    flow_run_name=from_parameters(reject_run_name),
    persist_result=True,
    result_serializer=RESULT_SERIALIZER,
)
def reject(version: str, reason: str, by: str) -> Override:
    """Reject `version` whatever the gate or live evidence said: a @challenger stops being
    tried. The @champion cannot be rejected: roll it back."""
    models = registry()
    models.reconcile()
    models.rejectable(version)
    models.reject(version, f"manual rejection: {reason}", by=by)
    champion = models.champion()
    done = Override(models.name, "rejected", champion, models.alias(PREVIOUS), reason, by)
    _record(done, f"v{version} rejected by hand")
    return done


@flow(
    name="rollback",
    flow_run_name=ROLLBACK_RUN_NAME,
    persist_result=True,
    result_serializer=RESULT_SERIALIZER,
)
def rollback(reason: str, by: str) -> Override:
    """Give @champion back to @previous."""
    models = registry()
    models.reconcile()
    rolled_back, restored = models.rollback(reason, by=by)
    name_flow_run(rollback_run_name(rolled_back, restored))
    done = Override(
        models.name, "rolled_back", restored, models.alias(PREVIOUS), reason, by, rolled_back
    )
    _record(done, f"rolled back from v{rolled_back} to v{restored}")
    return done
