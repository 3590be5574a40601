"""Prefect artifact keys allow lowercase letters, digits and dashes only."""


def artifact_key(*parts: str) -> str:
    text = "-".join(parts).lower()
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")
