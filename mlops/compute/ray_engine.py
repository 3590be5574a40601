"""The Ray engine's session (`MLOPS_ENGINE=ray`): one per process, started before Feast, Ray
Train or Prefect's Ray task runner would start one of their own.

Each of them calls `ray.init()` unless Ray is already running in the process, and a bare
`ray.init()` takes every core and 30% of the machine's memory for its object store. Starting it
here first, with the settings' caps (or connecting to `MLOPS_RAY_ADDRESS`), is what makes them
all share one capped session.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from mlops.config.settings import Settings

log = logging.getLogger(__name__)


def ray_init_options(settings: Settings) -> dict[str, Any]:
    """`ray.init`'s arguments: connect to the configured cluster, or start a capped local one."""
    # Workers' output stays in Ray's log files (/tmp/ray/session_latest/logs) unless `verbose`;
    # Ray's own log records go where every library's go (`mlops.config.runtime`: the log file).
    quiet: dict[str, Any] = {"log_to_driver": settings.verbose, "configure_logging": False}
    if settings.ray_address:
        return {"address": settings.ray_address, **quiet}
    return {
        "num_cpus": settings.ray_num_cpus,
        "object_store_memory": settings.ray_object_store_mb * 2**20,
        "include_dashboard": False,
        **quiet,
    }


def start_ray(settings: Settings) -> None:
    """Join or start this process's Ray session (once; later calls do nothing)."""
    import ray

    if ray.is_initialized():
        return
    _route_ray_logs()
    options = ray_init_options(settings)
    # A local Ray's raylet starts its workers at niceness 15; they do the flow's own work, and
    # niced they starve beside any busy process (a test module took 7.6 min instead of 2 beside
    # two CPU-bound processes). A cluster's nodes have their own settings.
    os.environ.setdefault("RAY_worker_niceness", "0")
    # Prefect tasks that run on Ray's workers report to this process's Prefect API; without its
    # address, a worker on the local profile would start an ephemeral Prefect server of its own.
    options["runtime_env"] = {"env_vars": {"PREFECT_API_URL": prefect_api_url()}}
    log.info("starting Ray: %s", options.get("address") or f"{settings.ray_num_cpus} local CPUs")
    ray.init(**options)


def prefect_api_url() -> str:
    """The Prefect API this process uses: the server's, or the ephemeral one it started."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url)


def _route_ray_logs() -> None:
    """Ray gives its loggers handlers of their own that print to the terminal; routed like every
    library's instead (`mlops.config.runtime`: the log file, the terminal with `verbose`)."""
    import ray.data  # they configure their loggers when imported: import them first
    import ray.train  # noqa: F401

    for name in [*logging.root.manager.loggerDict, "ray"]:
        if name == "ray" or name.startswith("ray."):
            logger = logging.getLogger(name)
            logger.handlers = []
            logger.propagate = True
