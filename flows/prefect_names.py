"""Names of what a flow leaves in Prefect: its run's name and its artifacts' keys."""


def name_flow_run(name: str) -> None:
    """Give the running flow run (a subflow too) the name its MLflow run has; outside a flow
    run (`train.fn(...)`), nothing."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if flow_run.id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, name=name)


def artifact_key(*parts: str) -> str:
    """`parts` as a Prefect artifact key: lowercase letters, digits and dashes only."""
    text = "-".join(parts).lower()
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")
