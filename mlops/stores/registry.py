"""The model registry: versions, the `@champion` and `@previous` aliases, and decisions.

Every version carries its decision as tags: `decision` (pending, promoted, rejected, abandoned,
rolled_back), `decision.reason`, `decision.by` (the gate, or a person) and `decision.at`. People
read it in the version's description and in its training run's description (the MLflow UI shows
both): every decision, newest first, with its reason.

No half-state: a version is registered as `pending`; its reason is written before an alias
moves, and `decision=promoted` after. Aliases only ever move to a version that passed the gate
(or that a person promoted), so `@champion` is always a version someone decided on. A run that
dies in between leaves a `pending` version; the next run reconciles it: promoted if it already
holds `@champion`, abandoned otherwise. Every write can be retried (the tracking server went away
mid-way): registering once per run, a promotion resumed where it stopped, a decision described
once.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mlops.config.errors import UserError
from mlops.stores.mlflow_runs import RUN_NOTE, TAG_LIMIT

if TYPE_CHECKING:
    import xgboost as xgb
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous"
DECISION = "decision"
REASON = "decision.reason"
DECIDED_BY = "decision.by"
DECIDED_AT = "decision.at"
PROMOTED_AT = "promoted_at"  # kept after a rollback: the champion history, for the next one
ENTRY_SEPARATOR = "\n\n---\n\n"  # between the decisions of a version's description

Decision = Literal["pending", "promoted", "rejected", "abandoned", "rolled_back"]


@dataclass(frozen=True)
class VersionInfo:
    version: str
    run_id: str | None
    aliases: tuple[str, ...]
    tags: dict[str, str]

    @property
    def decision(self) -> str:
        return self.tags.get(DECISION, "unknown")


def human() -> str:
    return f"human:{getpass.getuser()}"


class ModelRegistry:
    """One registered model in MLflow's registry."""

    def __init__(self, tracking_uri: str, model_name: str) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.client: MlflowClient = MlflowClient(
            tracking_uri=tracking_uri, registry_uri=tracking_uri
        )
        self.name = model_name

    # Reading
    def alias(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:  # no such alias, or no such model yet
            return None

    def champion(self) -> str:
        """The @champion's version; none yet is the user's to fix (train a first model)."""
        version = self.alias(CHAMPION)
        if version is None:
            raise UserError(f"model '{self.name}' has no @{CHAMPION} yet: run `mlops train`")
        return version

    def versions(self) -> list[VersionInfo]:
        """All versions, newest first."""
        found = self.client.search_model_versions(f"name = '{self.name}'")
        if not found:
            return []
        # Search results leave `aliases` empty; the registered model has them.
        aliases: dict[str, list[str]] = {}
        for alias, version in self.client.get_registered_model(self.name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
        return sorted(
            (
                VersionInfo(
                    str(v.version),
                    v.run_id,
                    tuple(sorted(aliases.get(str(v.version), []))),
                    dict(v.tags or {}),
                )
                for v in found
            ),
            key=lambda v: int(v.version),
            reverse=True,
        )

    def version(self, version: str) -> VersionInfo:
        match = [v for v in self.versions() if v.version == str(version)]
        if not match:
            raise UserError(f"model '{self.name}' has no version {version}")
        return match[0]

    def load_booster(self, version: str) -> xgb.Booster:
        """The version's native Booster (probabilities, not the pyfunc wrapper's labels)."""
        import mlflow.xgboost

        self._use_globally()
        return mlflow.xgboost.load_model(self.uri(version))

    def download(self, version: str, destination: Path) -> Path:
        """The version's logged model directory (booster, MLmodel metadata), copied locally."""
        import mlflow.artifacts

        self._use_globally()
        return Path(
            mlflow.artifacts.download_artifacts(self.uri(version), dst_path=str(destination))
        )

    def uri(self, version: str) -> str:
        return f"models:/{self.name}/{version}"

    def _use_globally(self) -> None:
        import mlflow

        # `models:/` URIs resolve through the process-wide registry URI, not this client's.
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    # Writing
    def register(self, model_uri: str, run_id: str) -> str:
        """A new version, `pending` until the gate's decision is applied. Once per run: the
        version an earlier attempt registered for `run_id` (its answer lost with the server)
        is returned instead of a second one."""
        from mlflow.exceptions import MlflowException

        registered = self.client.search_model_versions(
            f"name = '{self.name}' and run_id = '{run_id}'"
        )
        if registered:
            return str(min(int(v.version) for v in registered))
        try:
            self.client.create_registered_model(self.name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        model_id = model_uri.removeprefix("models:/")
        created = self.client.create_model_version(
            self.name,
            source=model_uri,
            run_id=run_id,
            model_id=model_id,
            tags={DECISION: "pending", DECIDED_AT: _now()},
        )
        return str(created.version)

    def reject(self, version: str, reason: str, by: str = "gate") -> None:
        self._record(version, "rejected", reason, by)

    def promote(self, version: str, reason: str, by: str = "gate") -> str | None:
        """Make `version` the champion and the former one `@previous`; return the former.

        A `pending` version that holds `@champion` already is a promotion an earlier attempt
        began (the server went away before the record was written): it is finished, the
        aliases left where they are."""
        former = self.alias(CHAMPION)
        resumed = former == str(version) and self.version(version).decision == "pending"
        if former == str(version) and not resumed:
            raise UserError(f"version {version} is already @{CHAMPION}")
        self._tag(version, {REASON: reason, DECIDED_BY: by})
        if resumed:
            former = self.alias(PREVIOUS)
        else:
            if former is not None:
                self.client.set_registered_model_alias(self.name, PREVIOUS, former)
            self.client.set_registered_model_alias(self.name, CHAMPION, str(version))
        self._record(version, "promoted", reason, by, **{PROMOTED_AT: _now()})
        log.info("%s v%s is @%s (was %s): %s", self.name, version, CHAMPION, former, reason)
        return former

    def rollback(self, reason: str, by: str) -> tuple[str, str]:
        """Give `@champion` back to `@previous`; return (from, to)."""
        current, previous = self.alias(CHAMPION), self.alias(PREVIOUS)
        if current is None or previous is None:
            raise UserError(f"nothing to roll back to: model '{self.name}' has no @{PREVIOUS}")
        self.client.set_registered_model_alias(self.name, CHAMPION, previous)
        self._record(current, "rolled_back", reason, by)
        self._tag(previous, {REASON: f"restored by rollback: {reason}", DECIDED_BY: by})
        self._describe(previous, f"**@{CHAMPION} again** (rollback from v{current})", reason, by)
        # The new @previous is the champion before `previous`, so rollbacks can chain.
        earlier = [
            v
            for v in self.versions()
            if v.tags.get(DECISION) == "promoted"
            and v.version not in (current, previous)
            and v.tags.get(PROMOTED_AT, "") < self.version(previous).tags.get(PROMOTED_AT, "")
        ]
        if earlier:
            latest = max(earlier, key=lambda v: v.tags[PROMOTED_AT])
            self.client.set_registered_model_alias(self.name, PREVIOUS, latest.version)
        else:
            self.client.delete_registered_model_alias(self.name, PREVIOUS)
        return current, previous

    def reconcile(self) -> list[str]:
        """Finish the record of versions a dead run left `pending`; return what was fixed."""
        champion = self.alias(CHAMPION)
        fixed = []
        for v in self.versions():
            if v.decision != "pending":
                continue
            if v.version == champion:
                reason = v.tags.get(REASON, "passed the gate")
                self._record(v.version, "promoted", reason, v.tags.get(DECIDED_BY, "gate"))
            else:
                self._record(
                    v.version,
                    "abandoned",
                    "its run stopped before the gate's decision was applied",
                    "reconcile",
                )
            fixed.append(v.version)
        if fixed:
            log.warning("reconciled version(s) left pending by a stopped run: %s", fixed)
        return fixed

    def _record(self, version: str, decision: Decision, reason: str, by: str, **extra: str) -> None:
        # `decision` last: until it is written, the version still reads as pending.
        self._tag(version, {REASON: reason, DECIDED_BY: by, DECIDED_AT: _now(), **extra})
        self._describe(version, f"**{decision}**", reason, by)
        self._tag(version, {DECISION: decision})

    def _describe(self, version: str, what: str, reason: str, by: str) -> None:
        """Put a decision on top of the version's description and its training run's: what,
        who and when, then the reason in full (tags cut it, the UI shortens tag values). The
        same decision already on top (an attempt retried after the server went away) is not
        written twice."""
        from mlflow.exceptions import MlflowException

        entry = f"{what} by {by}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n{reason}"
        found = self.client.get_model_version(self.name, str(version))
        history = (found.description or "").strip()
        latest = history.split(ENTRY_SEPARATOR, 1)[0]
        if latest.startswith(f"{what} by {by}, ") and latest.endswith(f"\n\n{reason}"):
            text = history
        else:
            text = f"{entry}{ENTRY_SEPARATOR}{history}" if history else entry
            self.client.update_model_version(self.name, str(version), description=text[:TAG_LIMIT])
        if found.run_id:
            note = f"Registered as **{self.name} v{version}**; its decisions, newest first:\n\n"
            try:
                self.client.set_tag(found.run_id, RUN_NOTE, (note + text)[:TAG_LIMIT])
            except MlflowException:  # the run was deleted: the version still says it
                log.warning("could not describe run %s of v%s", found.run_id, version)

    def _tag(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, str(version), key, value[:TAG_LIMIT])


def _now() -> str:
    return datetime.now(UTC).isoformat()
