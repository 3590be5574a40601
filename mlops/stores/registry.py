"""The model registry: versions, the `@champion`, `@previous` and `@challenger` aliases, and
decisions.

Every version carries its decision as tags: `decision` (pending, promoted, challenger,
rejected, abandoned, rolled_back), `decision.reason`, `decision.by` (the gate, or a person) and
`decision.at`. People read it in the version's description and in its training run's
description (the MLflow UI shows both): every decision, newest first, with its reason.

No half-state: a version is registered as `pending`; its reason is written before an alias
moves, and `decision=promoted` after. Aliases only ever move to a version that passed the gate
(or that a person promoted), so `@champion` is always a version someone decided on.
`@challenger` is a version that passed the gate and shadows the champion on live traffic (the
card's `rollout`) until it is promoted or rejected, which takes the alias from it; a newer
challenger replaces it (the former one is `abandoned`). A run that dies in between leaves a
`pending` version; the next run reconciles it: promoted if it already holds `@champion`, a
challenger if it holds `@challenger`, abandoned otherwise. Every write can be retried (the
tracking server went away mid-way): registering once per run, a promotion resumed where it
stopped, a decision described once.

Nothing is decided on missing information: every call tells "absent" (no such alias, model or
version: an answer) from "could not ask" (refused, reset, timed out, 5xx). Could not ask is
asked again a few times (`mlflow_runs.MLFLOW_RETRIES`), then `ServiceUnreachable`: never read
as "no champion".
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from mlops.config.errors import UserError
from mlops.stores.mlflow_runs import (
    RUN_NOTE,
    TAG_LIMIT,
    Retries,
    ask_mlflow,
    server_unreachable,
)

if TYPE_CHECKING:
    import xgboost as xgb
    from mlflow import MlflowClient

log = logging.getLogger(__name__)
T = TypeVar("T")

CHAMPION = "champion"
PREVIOUS = "previous"
CHALLENGER = "challenger"
DECISION = "decision"
REASON = "decision.reason"
DECIDED_BY = "decision.by"
DECIDED_AT = "decision.at"
PROMOTED_AT = "promoted_at"  # kept after a rollback: the champion history, for the next one
# The @champion a promotion replaces, written before any alias moves: a promotion cut short
# after @champion moved is finished from it (@previous), by a retry or by `reconcile`.
PROMOTED_FROM = "promoted_from"
NO_VERSION = "none"
# Where a rollback gives @champion, written on the rolled-back version before any alias moves.
ROLLED_BACK_TO = "rolled_back_to"
ENTRY_SEPARATOR = "\n\n---\n\n"  # between the decisions of a version's description

Decision = Literal["pending", "promoted", "challenger", "rejected", "abandoned", "rolled_back"]


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


def absent(error: BaseException) -> bool:
    """Whether MLflow answered "no such thing" (model, version or alias): the registry's
    answer, not a failure to ask. MLflow 3 says a missing alias with INVALID_PARAMETER_VALUE
    ("Registered model alias champion not found"), a missing model or version with
    RESOURCE_DOES_NOT_EXIST."""
    if server_unreachable(error):
        return False
    code = getattr(error, "error_code", None)
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    message = str(error)
    return code == "INVALID_PARAMETER_VALUE" and "alias" in message and "not found" in message


class ModelRegistry:
    """One registered model in MLflow's registry."""

    def __init__(self, tracking_uri: str, model_name: str, retries: Retries | None = None) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.client: MlflowClient = MlflowClient(
            tracking_uri=tracking_uri, registry_uri=tracking_uri
        )
        self.name = model_name
        self.retries = retries

    def _ask(self, what: str, call: Callable[[], T]) -> T:
        """`call()` asked until MLflow answers, or `ServiceUnreachable` (see the module)."""
        return ask_mlflow(self.tracking_uri, f"{what} of model '{self.name}'", call, self.retries)

    # Reading
    def alias(self, alias: str) -> str | None:
        """The version holding `alias`; None only when MLflow answered that none does."""

        def read() -> str | None:
            try:
                return str(self.client.get_model_version_by_alias(self.name, alias).version)
            except Exception as err:
                if absent(err):  # no such alias, or no such model yet
                    return None
                raise

        return self._ask(f"@{alias}", read)

    def champion(self) -> str:
        """The @champion's version; none yet is the user's to fix (train a first model)."""
        version = self.alias(CHAMPION)
        if version is None:
            raise UserError(f"model '{self.name}' has no @{CHAMPION} yet: run `mlops train`")
        return version

    def versions(self) -> list[VersionInfo]:
        """All versions, newest first."""
        return self._ask("versions", self._versions)

    def _versions(self) -> list[VersionInfo]:
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

    def resolve(self, model: str) -> str:
        """`champion`, `@<alias>` or a version number, as the version it names now (a
        UserError when it names none)."""
        if model.isdigit():
            return self.version(model).version
        alias = model.removeprefix("@")
        version = self.alias(alias)
        if version is None:
            hint = ": run `mlops train`" if alias == CHAMPION else ""
            raise UserError(f"model '{self.name}' has no @{alias}{hint}")
        return version

    def load_booster(self, version: str) -> xgb.Booster:
        """The version's native Booster (probabilities, not the pyfunc wrapper's labels)."""
        import mlflow.xgboost

        self._use_globally()
        return self._ask(
            f"v{version}'s model", lambda: mlflow.xgboost.load_model(self.uri(version))
        )

    def download(self, version: str, destination: Path) -> Path:
        """The version's logged model directory (booster, MLmodel metadata), copied locally."""
        import mlflow.artifacts

        self._use_globally()
        return Path(
            self._ask(
                f"v{version}'s model",
                lambda: mlflow.artifacts.download_artifacts(
                    self.uri(version), dst_path=str(destination)
                ),
            )
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
        is returned instead of a second one (asked again, it looks again first)."""
        return self._ask(f"registering run {run_id}", lambda: self._register(model_uri, run_id))

    def _register(self, model_uri: str, run_id: str) -> str:
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
        """Record the rejection, then take `@challenger` from the version if it holds it (cut
        short in between, `reconcile` takes it)."""
        self._record(version, "rejected", reason, by)
        self._drop_challenger(str(version))

    def rejectable(self, version: str) -> VersionInfo:
        """The version a person asks to reject; a UserError when there is none, or when it is
        the champion (a rollback's to undo)."""
        found = self.version(version)
        if CHAMPION in found.aliases:
            raise UserError(f"v{version} is @{CHAMPION}: roll it back instead (`mlops rollback`)")
        return found

    def challenge(self, version: str, reason: str, by: str = "gate") -> str | None:
        """Make `version` the `@challenger`, to shadow the champion; return the challenger it
        replaces (now `abandoned`). Its reason is written before the alias moves, its decision
        after: cut short, `reconcile` finishes either record."""
        version = str(version)
        former = self.alias(CHALLENGER)
        if former != version:
            self._tag(version, {REASON: reason, DECIDED_BY: by})
            self._set_alias(CHALLENGER, version)
        self._record(version, "challenger", reason, by)
        if former is not None and former != version:
            self._record(former, "abandoned", f"replaced as @{CHALLENGER} by v{version}", by)
        log.info(
            "%s v%s is @%s (was %s): %s", self.name, version, CHALLENGER, former or "none", reason
        )
        return former

    def promote(self, version: str, reason: str, by: str = "gate") -> str | None:
        """Make `version` the champion and the former one `@previous`; return the former.

        A `pending` version that holds `@champion` already is a promotion an earlier attempt
        began (the server went away before the record was written): it is finished from the
        former champion it wrote down first. `@champion` moves before `@previous`: cut short
        before, nothing moved; after, the promotion is decided and finishing it is all that
        is left."""
        version = str(version)
        current = self.alias(CHAMPION)
        target = self.version(version)
        resumed = current == version and target.decision == "pending"
        if current == version and not resumed:
            raise UserError(f"version {version} is already @{CHAMPION}")
        if resumed:
            former = _version_or_none(target.tags.get(PROMOTED_FROM)) or self.alias(PREVIOUS)
        else:
            former = current
            self._tag(
                version,
                {
                    REASON: reason,
                    DECIDED_BY: by,
                    PROMOTED_FROM: former or NO_VERSION,
                    ROLLED_BACK_TO: NO_VERSION,  # a rollback of an earlier term is over
                },
            )
            self._set_alias(CHAMPION, version)
        if former is not None and former != version:
            self._set_alias(PREVIOUS, former)
        self._record(version, "promoted", reason, by, **{PROMOTED_AT: _now()})
        self._drop_challenger(version)  # a challenger promoted shadows no more
        log.info("%s v%s is @%s (was %s): %s", self.name, version, CHAMPION, former, reason)
        return former

    def rollback(self, reason: str, by: str) -> tuple[str, str]:
        """Give `@champion` back to `@previous`; return (from, to). Everything is read before
        anything is written, so an outage while reading changes nothing. The rolled-back
        version is told where `@champion` goes (a tag) before an alias moves: a rollback cut
        short after `@champion` moved (both aliases on one version) is finished by the next."""
        champion, previous = self.alias(CHAMPION), self.alias(PREVIOUS)
        versions = self.versions()
        begun = [
            v
            for v in versions
            if champion is not None
            and v.version != champion
            and v.tags.get(ROLLED_BACK_TO) == champion
            and v.decision == "promoted"
        ]
        if begun and champion is not None:  # cut short after @champion moved: finish it
            current, restored = begun[0].version, champion
        elif champion is None or previous is None or champion == previous:
            raise UserError(f"nothing to roll back to: model '{self.name}' has no @{PREVIOUS}")
        else:
            current, restored = champion, previous
        restored_at = next(
            (v.tags.get(PROMOTED_AT, "") for v in versions if v.version == restored), ""
        )
        # The new @previous is the champion before `restored`, so rollbacks can chain.
        earlier = [
            v
            for v in versions
            if v.tags.get(DECISION) == "promoted"
            and v.version not in (current, restored)
            and v.tags.get(PROMOTED_AT, "") < restored_at
        ]
        self._tag(current, {ROLLED_BACK_TO: restored})
        self._set_alias(CHAMPION, restored)
        if earlier:
            latest = max(earlier, key=lambda v: v.tags[PROMOTED_AT])
            self._set_alias(PREVIOUS, latest.version)
        else:
            self._ask(
                f"removing @{PREVIOUS}",
                lambda: self._ignore_absent(
                    lambda: self.client.delete_registered_model_alias(self.name, PREVIOUS)
                ),
            )
        self._record(current, "rolled_back", reason, by)
        self._tag(restored, {REASON: f"restored by rollback: {reason}", DECIDED_BY: by})
        self._describe(restored, f"**@{CHAMPION} again** (rollback from v{current})", reason, by)
        return current, restored

    def reconcile(self, abandon_pending: bool = True) -> list[str]:
        """Finish the record of versions a dead run left `pending`, and of a challenger whose
        promotion, rejection or replacement was cut short; return what was fixed. Without
        `abandon_pending`, a pending version that holds no alias is left alone: only a train
        run may take it for dead (another one may be training it now)."""
        champion, challenger = self.alias(CHAMPION), self.alias(CHALLENGER)
        fixed = []
        for v in self.versions():
            if v.version == champion and v.decision in ("pending", "challenger"):
                # A promotion cut short after @champion moved: @previous too, then the record.
                former = _version_or_none(v.tags.get(PROMOTED_FROM))
                if former is not None and former != v.version and self.alias(PREVIOUS) != former:
                    self._set_alias(PREVIOUS, former)
                reason = v.tags.get(REASON, "passed the gate")
                self._record(v.version, "promoted", reason, v.tags.get(DECIDED_BY, "gate"))
                self._drop_challenger(v.version)
            elif v.version == challenger and v.decision == "pending":
                reason = v.tags.get(REASON, "passed the gate")
                self._record(v.version, "challenger", reason, v.tags.get(DECIDED_BY, "gate"))
            elif v.version == challenger and v.decision != "challenger":
                self._drop_challenger(v.version)  # promoted or rejected, cut short before this
            elif v.decision == "challenger" and v.version != challenger:
                why = (
                    f"replaced as @{CHALLENGER} by v{challenger}"
                    if challenger
                    else f"no longer @{CHALLENGER}"
                )
                self._record(v.version, "abandoned", why, "reconcile")
            elif v.decision == "pending" and abandon_pending:
                self._record(
                    v.version,
                    "abandoned",
                    "its run stopped before the gate's decision was applied",
                    "reconcile",
                )
            else:
                continue
            fixed.append(v.version)
        if fixed:
            log.warning("reconciled version(s) left pending by a stopped run: %s", fixed)
        return fixed

    def _record(self, version: str, decision: Decision, reason: str, by: str, **extra: str) -> None:
        # `decision` last: until it is written, the version still reads as pending.
        self._tag(version, {REASON: reason, DECIDED_BY: by, DECIDED_AT: _now(), **extra})
        self._describe(version, f"**{decision}**", reason, by)
        self._tag(version, {DECISION: decision})

    def note(self, version: str, tags: dict[str, str]) -> None:
        """Tags on a version that decide nothing (a live-evidence verdict still waiting)."""
        self._tag(version, tags)

    def _drop_challenger(self, version: str) -> None:
        if self.alias(CHALLENGER) == version:
            self._ask(
                f"removing @{CHALLENGER}",
                lambda: self._ignore_absent(
                    lambda: self.client.delete_registered_model_alias(self.name, CHALLENGER)
                ),
            )

    def _set_alias(self, alias: str, version: str) -> None:
        self._ask(
            f"moving @{alias} to v{version}",
            lambda: self.client.set_registered_model_alias(self.name, alias, version),
        )

    @staticmethod
    def _ignore_absent(call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as err:
            if not absent(err):
                raise

    def _describe(self, version: str, what: str, reason: str, by: str) -> None:
        """Put a decision on top of the version's description and its training run's: what,
        who and when, then the reason in full (tags cut it, the UI shortens tag values). The
        same decision already on top (an attempt retried after the server went away) is not
        written twice."""
        self._ask(f"describing v{version}", lambda: self._describe_once(version, what, reason, by))

    def _describe_once(self, version: str, what: str, reason: str, by: str) -> None:
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
            except MlflowException as err:  # the run was deleted: the version still says it
                if server_unreachable(err):
                    raise
                log.warning("could not describe run %s of v%s", found.run_id, version)

    def _tag(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._ask(f"tagging v{version}", partial(self._set_tag, version, key, value))

    def _set_tag(self, version: str, key: str, value: str) -> None:
        self.client.set_model_version_tag(self.name, str(version), key, value[:TAG_LIMIT])


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _version_or_none(tag: str | None) -> str | None:
    return None if tag in (None, "", NO_VERSION) else tag
