"""A user's own table, onboarded with no file edited by hand: init-use-case, land, ingest,
train (promoted), a prediction over HTTP from `mlops serve`, and monitor.

The table is built here and shaped unlike ad-click on purpose: one entity with string keys,
its own column names, a Yes/No label, a numeric column with gaps and a category.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.cli import cli_runner
from tests.support.service import start_serving, stop_serving

pytestmark = pytest.mark.e2e
DAYS, ROWS_PER_DAY = 8, 250


def accounts(path: Path, seed: int = 3) -> pd.DataFrame:
    """Accounts that churn more on the basic plan, with few seats or a high bill."""
    rng = np.random.default_rng(seed)
    rows = DAYS * ROWS_PER_DAY
    plan = rng.choice(["basic", "pro", "team"], rows, p=[0.5, 0.3, 0.2])
    seats = rng.integers(1, 60, rows)
    spend = rng.gamma(2.0, 40.0, rows).round(2)
    logit = -0.8 + 1.4 * (plan == "basic") - 0.05 * seats + 0.012 * spend
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    spend[rng.random(rows) < 0.03] = np.nan  # a bill not known yet
    opened = pd.Timestamp("2026-03-01") + pd.to_timedelta(
        np.sort(rng.uniform(0, DAYS * 86_400, rows)).round(), unit="s"
    )
    table = pd.DataFrame(
        {
            "AccountKey": [f"acct-{i:05d}" for i in rng.permutation(rows)],
            "OpenedAt": opened.strftime("%Y-%m-%d %H:%M:%S"),  # naive: read as UTC
            "Plan": plan,
            "Seats": seats,
            "MonthlySpend": spend,
            "Churned": np.where(churned, "Yes", "No"),
        }
    )
    table.to_csv(path, index=False)
    return table


def test_a_new_table_goes_from_sample_to_served_and_monitored(
    tmp_path: Path, prefect_api_url: str
) -> None:
    table = accounts(tmp_path / "accounts.csv")
    root = tmp_path / "fork"
    cli = cli_runner(
        tmp_path / "home",
        prefect_api_url,
        env={"MLOPS_USE_CASE": "churn", "MLOPS_USE_CASES_ROOT": str(root)},
    )

    code, scaffold, stderr = cli(
        "init-use-case", "churn", "--from", str(tmp_path / "accounts.csv"),
        "--entity", "AccountKey", "--timestamp", "OpenedAt", "--label", "Churned",
    )  # fmt: skip
    assert code == 0, stderr
    assert scaffold["use_case"] == "churn"
    assert (root / "usecases" / "churn" / "contract.yaml").exists()
    assert (root / "expectations" / "churn" / "accounts.json").exists()

    code, landed, stderr = cli("land", str(tmp_path / "accounts.csv"))
    assert code == 0, stderr
    assert len(landed["batches"]) == DAYS

    code, ingested, stderr = cli("ingest", str(cli.home / "landing"))
    assert code == 0, stderr
    assert ingested["offline_rows"] == len(table)  # every row stored: none quarantined
    assert {b["status"] for b in ingested["batches"]} == {"ingested"}
    assert sum(b["quarantined"] for b in ingested["batches"]) == 0
    assert {"batch_id", "rows", "valid", "quarantined", "quarantine_path"} <= set(
        ingested["batches"][0]
    )

    known = table.iloc[-1]
    code, features, stderr = cli("features", "--AccountKey", known["AccountKey"])
    assert code == 0, stderr
    assert features["Plan"] == known["Plan"] and features["Seats"] == known["Seats"]

    code, trained, stderr = cli("train", "--search-trials", "1")
    assert code == 0, stderr
    assert trained["decision"] == "promoted", trained["reason"]
    assert set(trained["baseline_metrics"]) == {"prior", "linear"}
    assert set(trained["metrics"]) == {"nce", "log_loss", "roc_auc", "pr_auc", "ece"}
    assert trained["oracle_metrics"] is None  # a real table knows no true probability
    assert {"run_id", "version", "champion_metrics", "noise", "warnings"} <= set(trained)

    # What needs no flow is refused before one runs, in one paragraph.
    code, result, stderr = cli("promote", trained["version"], "--reason", "again")
    assert code == 2 and "already @champion" in result["error"]
    code, result, stderr = cli("monitor", "--as-of", "2020-01-01")
    assert code == 2 and "outside the ingested data" in result["error"]
    assert "Traceback" not in stderr

    last_day = table[table["OpenedAt"] >= "2026-03-08"]
    process, started = start_serving(cli.env)
    url = started["url"]
    try:
        status, answer = post(url, "/predict", {"AccountKey": known["AccountKey"]})
        assert status == 200, answer
        assert 0 < answer["churned_probability"] < 1 and answer["missing_features"] == []

        # An account the store does not know yet, scored on the values the caller sends.
        fresh = {"AccountKey": "acct-new", "Plan": "basic", "Seats": 2, "MonthlySpend": 99.5}
        status, answer = post(url, "/predict", fresh)
        assert status == 200 and answer["missing_features"] == [], answer

        status, answer = post(url, "/predict", {"AccountKey": 7})
        assert status == 400 and "AccountKey" in json.dumps(answer)

        # The last day's traffic, so that monitoring has a window to judge.
        requests = [
            {"AccountKey": r.AccountKey, "OpenedAt": pd.Timestamp(r.OpenedAt, tz="UTC").isoformat()}
            for r in last_day.itertuples()
        ]
        status, answer = post(url, "/predict_batch", {"requests": requests[:256]})
        assert status == 200, answer
    finally:
        stop_serving(process)

    code, monitored, stderr = cli("monitor", "--no-retrain")
    assert code == 0, stderr
    assert monitored["decision"] in {"none", "retrain", "alert"} and monitored["reason"]
    assert monitored["window"]["rows"] == min(256, len(requests))


def post(url: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")
