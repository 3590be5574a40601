"""What a training run reports about its floors' noise: JSON, the Prefect artifact, the console."""

import json

from entrypoints.cli.model_commands import train_summary
from mlops.contracts.card import Floor, PromotionGate
from models.evaluation import Evaluation
from models.noise import Bootstrap, Interval
from models.promotion import decide
from models.train_report import TrainReport

GATE = PromotionGate(
    min_improvement=0.002,
    floors={"nce": Floor(max=0.98), "ece": Floor(max=0.02)},
    slice_tolerance=0.01,
    min_slice_rows=1000,
)
METRICS = {"nce": 0.93, "log_loss": 0.2, "roc_auc": 0.7, "pr_auc": 0.1, "ece": 0.016}
NOISE = Bootstrap(
    {"nce": Interval(0.91, 0.95), "ece": Interval(0.011, 0.021)}, 0.9, resamples=200, rows=412
)


def report() -> TrainReport:
    evaluations = {name: Evaluation(dict(METRICS)) for name in ("model", "prior", "linear")}
    decision = decide(evaluations["model"], None, GATE, "nce", NOISE)
    return TrainReport.build(
        evaluations,
        noise=NOISE,
        floors=GATE.floors,
        warnings=list(decision.warnings),
        run_id="r1",
        model_name="adclick",
        version="3",
        decision=decision.decision,
        primary="nce",
        reason=decision.reason,
        champion_version=None,
        lineage={
            "windows": {"test_start": "2026-01-07", "end": "2026-01-08"},
            "rows": {"test": 412},
        },
        params={},
        run_url="http://mlflow/runs/r1",
        checks=[c.__dict__ for c in decision.checks],
    )


def test_the_json_report_carries_the_intervals_and_the_warnings():
    carried = json.loads(json.dumps(report().to_dict()))
    assert carried["noise"] == {
        "confidence": 0.9,
        "resamples": 200,
        "rows": 412,
        "floors": {
            "nce": {"floor": "<= 0.98", "value": 0.93, "low": 0.91, "high": 0.95, "inside": False},
            "ece": {
                "floor": "<= 0.02",
                "value": 0.016,
                "low": 0.011,
                "high": 0.021,
                "inside": True,
            },
        },
    }
    assert carried["warnings"] == [
        "floor ece <= 0.02 is inside the noise: 90% bootstrap interval [0.011, 0.021] on 412 "
        "test rows"
    ]


def test_the_artifact_shows_each_floor_with_its_interval():
    markdown = report().markdown()
    assert "90% bootstrap interval (200 resamples of the 412 test rows)" in markdown
    assert "| nce <= 0.98 | 0.9300 | [0.9100, 0.9500] | no |" in markdown
    assert "| ece <= 0.02 | 0.0160 | [0.0110, 0.0210] | **yes** |" in markdown


def test_the_console_prints_the_verdict_then_each_warning_on_its_own_line():
    lines = train_summary(report()).splitlines()
    assert lines[0] == "adclick v3: promoted"
    assert lines[1].startswith("  promoted: first model, meets the floors")
    assert "warning" not in lines[1]
    assert lines[2].startswith("  warning: floor ece <= 0.02 is inside the noise")
    assert lines[4] == (
        "  floors, 90% bootstrap interval on 412 test rows: "
        "nce <= 0.98: 0.9300 in [0.9100, 0.9500]; ece <= 0.02: 0.0160 in [0.0110, 0.0210]"
    )


def test_the_share_of_the_reachable_lift_is_measured_from_the_prior_to_the_ceiling():
    from models.train_report import reachable_lift

    evaluations = {
        name: Evaluation({"nce": nce})
        for name, nce in (("prior", 1.0), ("model", 0.905), ("ceiling", 0.9), ("oracle", 0.86))
    }
    assert abs(reachable_lift(evaluations, "nce") - 0.95) < 1e-9
    del evaluations["ceiling"]
    assert reachable_lift(evaluations, "nce") is None  # no simulation, no ceiling
