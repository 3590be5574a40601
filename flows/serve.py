"""The lifecycle flows on schedules without a work pool: `python -m flows.serve`.

`flow.serve` runs the deployments of `prefect.yaml` from this one process, on the schedules the
file gives them (`mlops deploy` + `prefect worker start --pool mlops-process` is the work-pool
way). Needs a Prefect server: PREFECT_API_URL, or MLOPS_PREFECT_API_URL with the server profile.
"""

from __future__ import annotations

from mlops.config.runtime import setup


def main() -> None:
    setup()  # before Prefect is imported: it reads its settings once, on import
    from prefect import serve

    from flows.deployments import deployments

    served = [d.load_flow().to_deployment(name=d.name, cron=d.cron) for d in deployments()]
    serve(*served)  # type: ignore[arg-type]  # called from sync code: deployments, not coroutines


if __name__ == "__main__":
    main()
