from mlops.card import PromotionGate
from models.evaluation import Evaluation
from models.promotion import decide

GATE = PromotionGate(
    min_improvement=0.002,
    max_nce=0.98,
    min_roc_auc=0.6,
    max_ece=0.02,
    slice_tolerance=0.01,
    min_slice_rows=1000,
)


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
