from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mlops.contracts.card import Floor, PromotionGate, RequirementsCard, Rollout
from models.evaluation import Evaluation
from models.noise import Bootstrap, Interval
from models.promotion import decide, with_infra_check, with_rollout

GATE = PromotionGate(
    min_improvement=0.002,
    floors={"nce": Floor(max=0.98), "roc_auc": Floor(min=0.6), "ece": Floor(max=0.02)},
    slice_tolerance=0.01,
    min_slice_rows=1000,
)
CARD = Path(__file__).parents[3] / "usecases" / "adclick" / "card.yaml"


def model(nce: float, *, roc_auc: float = 0.75, ece: float = 0.01, **slices: float) -> Evaluation:
    """An evaluation; slice keyword `mobile_rows` gives that slice's row count."""
    nces = {k: v for k, v in slices.items() if not k.endswith("_rows")}
    return Evaluation(
        metrics={"nce": nce, "roc_auc": roc_auc, "ece": ece},
        slices={f"device={k}": {"nce": v} for k, v in nces.items()},
        slice_rows={f"device={k}": int(slices.get(f"{k}_rows", 5000)) for k in nces},
    )


def test_first_model_is_promoted_on_the_floors_alone():
    decision = decide(model(0.95), None, GATE, "nce")
    assert decision.promote
    assert decision.reason.startswith("promoted: first model, meets the floors")


def test_a_model_a_baseline_matches_is_promoted_with_a_warning_naming_it():
    baselines = {"linear": model(0.9400), "prior": model(1.0)}
    decision = decide(model(0.9412), None, GATE, "nce", baselines=baselines)
    assert decision.promote
    assert decision.warnings == (
        "the linear baseline scores nce 0.9400, as good as this model's 0.9412: a simpler "
        "model would serve as well here",
    )
    assert not decide(model(0.93), None, GATE, "nce", baselines=baselines).warnings


def test_first_model_below_a_floor_is_rejected_with_the_floor_named():
    decision = decide(model(0.95, ece=0.05), None, GATE, "nce")
    assert not decision.promote
    assert decision.reason == "rejected: floor missed: ece 0.0500 <= 0.02 is false"


def test_challenger_must_beat_the_champion_by_the_margin():
    assert decide(model(0.900), model(0.905), GATE, "nce").promote
    tie = decide(model(0.900), model(0.900), GATE, "nce")
    assert not tie.promote
    assert "improvement +0.0000 < margin 0.002" in tie.reason


def test_a_slice_regressing_beyond_tolerance_blocks_promotion():
    challenger = model(0.90, mobile=0.88, tablet=0.99)
    champion = model(0.91, mobile=0.89, tablet=0.95)
    decision = decide(challenger, champion, GATE, "nce")
    assert not decision.promote
    assert (
        "slice device=tablet (5000 rows) nce 0.9900 vs 0.9500: worse by 0.0400" in decision.reason
    )


def test_slices_too_small_to_judge_are_not_checked():
    challenger = model(0.90, tablet=0.99, tablet_rows=999)
    champion = model(0.91, tablet=0.95, tablet_rows=999)
    decision = decide(challenger, champion, GATE, "nce")
    assert decision.promote
    assert not [c for c in decision.checks if c.name.startswith("slice.")]


def test_higher_is_better_metrics_work_as_the_primary():
    challenger, champion = model(0.9, roc_auc=0.80), model(0.9, roc_auc=0.79)
    assert decide(challenger, champion, GATE, "roc_auc").promote
    assert not decide(champion, challenger, GATE, "roc_auc").promote


def test_floors_are_checked_from_the_mapping_in_their_direction():
    decision = decide(model(0.95, roc_auc=0.75, ece=0.01), None, GATE, "nce")
    assert [(c.name, c.detail) for c in decision.checks] == [
        ("floor.nce", "nce 0.9500 <= 0.98"),
        ("floor.roc_auc", "roc_auc 0.7500 >= 0.6"),
        ("floor.ece", "ece 0.0100 <= 0.02"),
    ]
    low_auc = decide(model(0.95, roc_auc=0.59), None, GATE, "nce")
    assert low_auc.reason == "rejected: floor missed: roc_auc 0.5900 >= 0.6 is false"


def test_a_floor_on_a_metric_the_window_cannot_measure_is_missed():
    decision = decide(model(float("nan")), None, GATE, "nce")
    assert not decision.promote
    assert "floor missed: nce nan <= 0.98 is false" in decision.reason


@pytest.mark.parametrize("bounds", [{}, {"min": 0.5, "max": 0.9}])
def test_a_floor_has_exactly_one_bound(bounds):
    with pytest.raises(ValidationError, match="exactly one of `min`"):
        Floor(**bounds)


def test_floors_name_known_metrics_only():
    with pytest.raises(ValidationError, match=r"floors\.f2_score"):
        PromotionGate.model_validate({**GATE.model_dump(), "floors": {"f2_score": {"min": 0.9}}})


def test_floors_name_the_cards_task_metrics_only(tmp_path):
    # accuracy is a multiclass metric: a binary card's floors cannot name it.
    path = card_with(
        tmp_path, lambda raw: raw["gates"]["promotion"]["floors"].update(accuracy={"min": 0.9})
    )
    with pytest.raises(ValidationError, match=r"binary task is scored by nce.*names accuracy"):
        RequirementsCard.load(path)


def card_with(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(CARD.read_text())
    change(raw)
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_card_needs_a_floor_for_its_primary_metric(tmp_path):
    path = card_with(tmp_path, lambda raw: raw["gates"]["promotion"]["floors"].pop("nce"))
    with pytest.raises(ValidationError, match="floors follow the card's primary metric") as err:
        RequirementsCard.load(path)
    assert "needs a floor for nce" in str(err.value)


def test_a_card_may_leave_the_bootstrap_at_its_defaults(tmp_path):
    def drop(raw):
        del raw["gates"]["promotion"]["bootstrap_resamples"]
        del raw["gates"]["promotion"]["bootstrap_confidence"]

    gate = RequirementsCard.load(card_with(tmp_path, drop)).gates.promotion
    assert (gate.bootstrap_resamples, gate.bootstrap_confidence) == (200, 0.90)


def noise(**intervals: tuple[float, float]) -> Bootstrap:
    return Bootstrap({m: Interval(*lh) for m, lh in intervals.items()}, 0.9, 200, 412)


def test_a_floor_inside_its_bootstrap_interval_warns_and_the_verdict_stands():
    intervals = noise(nce=(0.90, 0.93), roc_auc=(0.70, 0.80), ece=(0.011, 0.021))
    decision = decide(model(0.95, ece=0.016), None, GATE, "nce", intervals)
    assert decision.promote
    warning = (
        "floor ece <= 0.02 is inside the noise: 90% bootstrap interval [0.011, 0.021] "
        "on 412 test rows"
    )
    assert decision.warnings == (warning,)
    assert decision.reason.endswith("; warning: " + warning)
    assert decision.reason.startswith("promoted: first model, meets the floors")


def test_a_min_floor_inside_its_interval_warns_and_one_far_outside_does_not():
    near = decide(model(0.95, roc_auc=0.61), None, GATE, "nce", noise(roc_auc=(0.58, 0.64)))
    assert near.promote
    assert [w.split(":")[0] for w in near.warnings] == ["floor roc_auc >= 0.6 is inside the noise"]
    below = decide(model(0.95, roc_auc=0.59), None, GATE, "nce", noise(roc_auc=(0.56, 0.62)))
    assert not below.promote and len(below.warnings) == 1
    assert below.reason.startswith("rejected: floor missed: roc_auc 0.5900 >= 0.6 is false")
    far = noise(nce=(0.90, 0.93), roc_auc=(0.74, 0.76), ece=(0.005, 0.012))
    assert decide(model(0.95), None, GATE, "nce", far).warnings == ()


def test_an_undefined_interval_warns_about_nothing():
    nan = float("nan")
    assert decide(model(0.95), None, GATE, "nce", noise(nce=(nan, nan))).warnings == ()


def test_the_infra_check_keeps_the_warnings_last():
    warned = decide(model(0.95, ece=0.016), None, GATE, "nce", noise(ece=(0.011, 0.021)))
    passed = with_infra_check(warned, True, "infra ok")
    assert passed.promote and passed.warnings == warned.warnings
    verdict = warned.reason.split("; warning: ")[0]
    assert passed.reason == f"{verdict}; infra ok; warning: {warned.warnings[0]}"
    refused = with_infra_check(warned, False, "too slow")
    assert refused.reason == f"rejected: too slow; warning: {warned.warnings[0]}"


def test_a_shadow_rollout_makes_a_passing_model_the_challenger_with_the_warnings_last():
    shadow = Rollout(mode="shadow", shadow_share=0.25)
    warned = decide(model(0.900, ece=0.016), model(0.905), GATE, "nce", noise(ece=(0.011, 0.021)))
    challenger = with_rollout(warned, shadow, has_champion=True)
    assert challenger.promote and challenger.shadow and challenger.decision == "challenger"
    assert challenger.reason.startswith("challenger: passed the gate (nce ")
    verdict = challenger.reason.split("; warning: ")[0]
    assert verdict.endswith("); shadows @champion on 25% of live requests (card rollout)")
    assert challenger.warnings == warned.warnings

    assert with_rollout(warned, shadow, has_champion=False) == warned  # nothing to shadow
    assert with_rollout(warned, Rollout(), has_champion=True) == warned
    rejected = decide(model(0.900), model(0.900), GATE, "nce")
    assert with_rollout(rejected, shadow, has_champion=True).decision == "rejected"


def test_a_canary_rollout_says_what_share_the_challenger_answers():
    passed = decide(model(0.900), model(0.905), GATE, "nce")
    canary = with_rollout(passed, Rollout(mode="canary", canary_share=0.05), has_champion=True)
    assert canary.decision == "challenger"
    assert canary.reason.endswith("; answers 5% of the entities as a canary (card rollout)")
