"""The lifecycle flows on schedules without a work pool: `python -m flows.serve`.

`flow.serve` runs the three flows from this one process, on the schedules `prefect.yaml` gives
its deployments (`mlops deploy` + `prefect worker start --pool mlops-process` is the work-pool
way). Needs a Prefect server: PREFECT_API_URL, or MLOPS_PREFECT_API_URL with the server profile.
"""

from __future__ import annotations

from mlops.config.runtime import setup


def main() -> None:
    setup()  # before Prefect is imported: it reads its settings once, on import
    from prefect import serve

    from flows.ingest import ingest
    from flows.monitor import monitor
    from flows.train import train

    serve(
        ingest.to_deployment(name="ingest", cron="15 0 * * *"),  # type: ignore[arg-type]
        monitor.to_deployment(name="monitor", cron="45 0 * * *"),  # type: ignore[arg-type]
        train.to_deployment(name="train"),  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
