"""The GX project under `MLOPS_HOME/gx` that validation and the data docs share: its data
context, opened once a process, and the lock held while using it."""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.stores.offline_store import exclusive

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

GX_LOCK = "gx.lock"  # in MLOPS_HOME/gx, beside the GX project


def gx_lock(gx_root: Path) -> AbstractContextManager[bool]:
    """Held while this process uses the GX project: GX writes its files (the project's config,
    suites, checkpoints, data docs pages) in place, so another ingest on the same home could
    read one half-written, or register its suite between this one's registration and run."""
    return exclusive(gx_root / GX_LOCK)


@cache
def gx_context(gx_root: Path) -> AbstractDataContext:
    import great_expectations as gx

    gx_root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=gx_root)
    context.variables.progress_bars = {"globally": False}  # type: ignore[assignment]
    return context
