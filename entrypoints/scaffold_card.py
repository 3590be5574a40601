"""The requirements card `mlops init-use-case` drafts: TODO text for what only people know, and
every number that depends on how much data there is (windows, slice rows, the ECE floor, the
monitoring window, the NCE degradation that retrains) computed from the sample's profile, its
formula written beside it in card.yaml.

What the sample cannot tell comes from the card's schema (`mlops.contracts.card`: its defaults
and least values), or is a starting threshold the card says to review.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from entrypoints.scaffold_inference import TEST_MINORITY_ROWS, Inference
from mlops.contracts.card import MonitoringGate, PromotionGate, RequirementsCard
from mlops.contracts.metrics import ECE_BINS


def _schema_minimum(model: type[BaseModel], name: str) -> int:
    """The least value the card's schema accepts for the field `name` (its `ge` bound)."""
    for constraint in model.model_fields[name].metadata:
        if (least := getattr(constraint, "ge", None)) is not None:
            return int(least)
    raise LookupError(f"{model.__name__}.{name} has no least value")


def _schema_default(model: type[BaseModel], name: str) -> Any:
    return model.model_fields[name].default


SLICE_MINORITY_ROWS = 70  # rows of the rarer class a judged slice should hold
MIN_SLICE_ROWS = 30
TRAIN_TO_TEST = 3  # train:validation:test = 3:1:1 when the sample allows it
RESERVED_DAYS = 2  # days `mlops run` serves and monitors after the first model's windows
MIN_MONITORED_ROWS = 20
MIN_ECE_FLOOR = 0.02  # the ECE floor is never tighter than this, however many test rows
# max_degradation (of NCE) where it was calibrated (the worked use case's simulator, over 20 seeds:
# docs/benchmarks.md#monitoring): 0.04 over windows of 5,000 labelled rows. A sample has no
# model to measure NCE's noise with, so the draft scales that point by 1/sqrt(rows).
CALIBRATED_NCE_DEGRADATION, CALIBRATED_LABELLED_ROWS = 0.04, 5_000
MIN_NCE_DEGRADATION, MAX_NCE_DEGRADATION = 0.02, 0.3
MAX_REFERENCE_ROWS, MAX_SAMPLE_ROWS = 20_000, 50_000  # what monitoring compares, at most
MIN_REFERENCE_ROWS = _schema_minimum(MonitoringGate, "reference_rows")
MIN_SAMPLE_ROWS = _schema_minimum(MonitoringGate, "sample_rows")
BOOTSTRAP_RESAMPLES = _schema_default(PromotionGate, "bootstrap_resamples")
BOOTSTRAP_CONFIDENCE = _schema_default(PromotionGate, "bootstrap_confidence")
MIN_THROUGHPUT_RPS, PEAK_MULTIPLE = 10, 10
DRIFT_COMMENT = (
    "Drift: a window drifts when the score's distance to the reference ({}) reaches "
    "`score_drift_threshold`, or when `drift_share` of the model's inputs reach "
    "`column_drift_threshold` (Jensen-Shannon for categories); retrain when k of the last n "
    "windows (same champion) drifted."
)
# adclick's thresholds, calibrated there over 20 seeds on 5,000-row windows
# (docs/benchmarks.md#monitoring). On smaller windows two samples of one unchanged world are
# further apart: the 99th percentile of the normed Wasserstein distance between samples of n
# and m rows is about DRIFT_NOISE x sqrt(1/n + 1/m) (2.7-2.9 over the numeric columns of the
# bundled tables; 3 to be safe), and a threshold below it calls quiet days drifted.
CALIBRATED_SCORE_DRIFT, CALIBRATED_COLUMN_DRIFT, DRIFT_NOISE = 0.12, 0.3, 3.0


@dataclass(frozen=True)
class CardDraft:
    card: dict[str, Any]  # validated by mlops.contracts.card.RequirementsCard
    text: str  # card.yaml: the same values, with why beside each number
    warnings: list[str]


def draft_card(inference: Inference, name: str) -> CardDraft:
    """The requirements card: TODO text for what only people know, numbers from the sample's
    volume (rows a day) and label rate, each with its formula in a comment."""
    p, warnings = inference.profile, []
    label = inference.contract["label"]
    rarer = p.rarer_rate  # regression: 1, every labelled row counts
    rarer_per_day = p.labelled_per_day * rarer
    rows_that_count = "labelled rows" if p.task == "regression" else "rows of the rarer class"

    # Windows: the test window holds ~TEST_MINORITY_ROWS of the rarer class; validation as long,
    # train 3x; all within the sample's days less those `mlops run` keeps to serve and monitor.
    needed = max(1, math.ceil(TEST_MINORITY_ROWS / rarer_per_day))
    room = p.days - RESERVED_DAYS
    ideal = (TRAIN_TO_TEST + 2) * needed
    if ideal <= room:
        train, validation, test = TRAIN_TO_TEST * needed, needed, needed
        windows_why = f"fits the sample's {p.days} days less {RESERVED_DAYS} kept to monitor."
    else:
        test = validation = max(1, room // (TRAIN_TO_TEST + 2))
        train = max(test, room - 2 * test)
        windows_why = (
            f"but the sample spans {p.days} days and `mlops run` keeps {RESERVED_DAYS} to serve "
            f"and monitor: test = validation = max(1, floor({room} / {TRAIN_TO_TEST + 2})) = "
            f"{test}, train = max({test}, {room} - 2 x {test}) = {train}."
        )
    if train + validation + test > room:
        warnings.append(
            f"the sample spans {p.days} day(s): too few for the card's windows "
            f"({train}+{validation}+{test} days) and {RESERVED_DAYS} more to serve and monitor; "
            "land more days before `mlops run`, or review card.yaml's windows"
        )
    elif test < needed:
        warnings.append(
            f"the test window ({test} day(s)) holds ~{test * rarer_per_day:.0f} "
            f"{rows_that_count}, fewer than {TEST_MINORITY_ROWS}: its metrics are noisy; a "
            "longer sample makes firmer gates"
        )
    test_labelled = max(1.0, p.labelled_per_day * test)

    min_slice_rows = max(MIN_SLICE_ROWS, math.ceil(SLICE_MINORITY_ROWS / rarer))

    min_rows = max(MIN_MONITORED_ROWS, math.ceil(p.rows_per_day / 2))
    min_labelled = max(MIN_MONITORED_ROWS, math.ceil(p.labelled_per_day / 2))
    window_days = max(
        1, math.ceil(min_rows / p.rows_per_day), math.ceil(min_labelled / p.labelled_per_day)
    )
    window_rows = p.rows_per_day * window_days
    window_labelled = p.labelled_per_day * window_days
    # NCE's noise shrinks as 1/sqrt(rows): the calibrated bound, scaled to this window's rows
    # (NRMSE's, for regression, is of the same order and shrinks alike).
    scaled = CALIBRATED_NCE_DEGRADATION * math.sqrt(CALIBRATED_LABELLED_ROWS / window_labelled)
    degradation = min(MAX_NCE_DEGRADATION, max(MIN_NCE_DEGRADATION, _round_up(scaled, 3)))
    test_rows = p.rows_per_day * test
    reference_rows = max(MIN_REFERENCE_ROWS, min(MAX_REFERENCE_ROWS, math.floor(test_rows)))
    sample_rows = max(MIN_SAMPLE_ROWS, min(MAX_SAMPLE_ROWS, math.ceil(window_rows)))
    throughput = max(MIN_THROUGHPUT_RPS, math.ceil(PEAK_MULTIPLE * p.peak_rows_per_second))
    compared = min(window_rows, sample_rows)  # what Evidently compares with the reference
    drift_noise = DRIFT_NOISE * math.sqrt(1 / compared + 1 / reference_rows)
    score_drift = max(CALIBRATED_SCORE_DRIFT, _round_up(drift_noise, 2))
    column_drift = max(CALIBRATED_COLUMN_DRIFT, _round_up(drift_noise, 2))
    retrain_train = max(validation, math.ceil(train / 2))

    values = {
        "name": name,
        "label_column": label["column"],
        "train": train,
        "validation": validation,
        "test": test,
        "min_slice_rows": min_slice_rows,
        "window_hours": 24 * window_days,
        "reference_rows": reference_rows,
        "sample_rows": sample_rows,
        "min_rows": min_rows,
        "min_labelled": min_labelled,
        "degradation": degradation,
        "throughput": throughput,
        "retrain_train": retrain_train,
        "score_drift": score_drift,
        "column_drift": column_drift,
    }
    why = {
        "sample": f"{p.rows} rows over {p.days} day(s) ({p.rows_per_day:.1f} a day, "
        f"{p.labelled_per_day:.1f} labelled), {inference.notes[label['column']]}: "
        f"~{rarer_per_day:.1f} {rows_that_count} a day",
        "windows": f"The test window should hold ~{TEST_MINORITY_ROWS} {rows_that_count}: "
        f"test_days = ceil({TEST_MINORITY_ROWS} / {rarer_per_day:.1f}) = {needed}, "
        f"validation as long, train {TRAIN_TO_TEST}x: {ideal} days, {windows_why}",
        "slices": f"ceil({SLICE_MINORITY_ROWS} / {rarer:.3f}) = "
        f"{math.ceil(SLICE_MINORITY_ROWS / rarer)}, at least {MIN_SLICE_ROWS}",
        "window": f"24 x max(1, ceil({min_rows} / {p.rows_per_day:.1f}), ceil({min_labelled} / "
        f"{p.labelled_per_day:.1f})) = {24 * window_days}",
        "degradation": f"adclick's {CALIBRATED_NCE_DEGRADATION} at {CALIBRATED_LABELLED_ROWS} "
        "labelled rows a window, scaled by the noise (1/sqrt(rows)): "
        f"{CALIBRATED_NCE_DEGRADATION} x sqrt({CALIBRATED_LABELLED_ROWS} / "
        f"{window_labelled:.0f}) = {_round_up(scaled, 3)} (rounded up), "
        f"within [{MIN_NCE_DEGRADATION}, {MAX_NCE_DEGRADATION}].",
        "drift": f"adclick's {CALIBRATED_SCORE_DRIFT} (score) and {CALIBRATED_COLUMN_DRIFT} "
        "(inputs), or the noise of two samples of one world this size, if larger: "
        f"{DRIFT_NOISE:g} x sqrt(1 / {compared:.0f} + 1 / {reference_rows}) = "
        f"{drift_noise:.3f} (scaffold_card.py says why); calibrate yours on weeks of your data.",
        "throughput": f"max({MIN_THROUGHPUT_RPS}, {PEAK_MULTIPLE} x "
        f"{p.peak_rows_per_second:.3f} rows/s in the sample's busiest hour)",
    }
    values["sections"] = _kind_sections(inference, test_labelled)
    text = _card_text(values, why, inference)
    card = yaml.safe_load(text)
    RequirementsCard.model_validate(card)  # a draft that does not validate is a platform bug
    return CardDraft(card, text, warnings)


def _kind_sections(inference: Inference, test_labelled: float) -> dict[str, str]:
    """What the card says differently for each task kind: the `task` and `offline_metrics`
    sections, the floors, how the label lands, words for the ml_task."""
    task, p = inference.task, inference.profile
    common = {"rows": "labelled rows" if p.task == "regression" else "rows of the rarer class"}
    if task["kind"] == "regression":
        return common | {
            "ml_task": "Regression",
            "score_distance": "normed Wasserstein",
            "definition": "what the number measures, in which unit",
            "predict": "{}",
            "matters": "whether a large miss costs more than several small ones (the "
            "objective, reg:squarederror, says it does; reg:absoluteerror says not)",
            "task": f"task: {yaml_inline(task)}",
            "landing": "`mlops land` lands it as a number (contract.yaml).",
            "primary": "NRMSE",
            "metrics": "  # Normalized RMSE: RMSE divided by that of always predicting the "
            "window's mean. Below 1\n  # means the model knows more than the mean; lower is "
            "better.\n"
            "  primary: nrmse\n  secondary: [rmse, mae, r2]",
            "floors": "      nrmse: {max: 0.98}",
        }
    if task["kind"] == "multiclass":
        return common | {
            "ml_task": "Multiclass classification",
            "score_distance": "of the predicted class: Jensen-Shannon",
            "definition": "what puts a row in each class",
            "predict": "the probability of each class of {}",
            "matters": "which confusions cost the most",
            "task": f"task:\n  kind: multiclass\n  classes: {yaml_inline(task['classes'])}",
            "landing": "`mlops land` lands each value as its place in task.classes "
            "(contract.yaml).",
            "primary": "NCE",
            "metrics": "  # Normalized cross-entropy: log loss divided by the log loss of always "
            "predicting the\n  # classes' frequencies. Below 1 means the model knows more "
            "than they do; lower is better.\n  primary: nce\n"
            "  secondary: [log_loss, accuracy, macro_f1]",
            "floors": "      nce: {max: 0.98}",
        }
    label = inference.contract["label"]
    rate = p.positive_rate or 0.0
    # A calibrated model's ECE on n rows in B equal-mass bins: each bin's gap is ~N(0, s) with
    # s = sqrt(B p(1-p) / n); the mean of |gap| is 0.80 s, its spread over B bins 0.60 s / sqrt(B).
    # The floor sits 2 spreads above the mean: a calibrated model meets it.
    spread = math.sqrt(ECE_BINS * rate * (1 - rate) / test_labelled)
    ece_factor = math.sqrt(2 / math.pi) + 2 * math.sqrt(1 - 2 / math.pi) / math.sqrt(ECE_BINS)
    ece_noise = spread * ece_factor
    ece_max = max(MIN_ECE_FLOOR, _round_up(ece_noise, 3))
    ece_why = (
        "Outside the noise of a calibrated model's ECE on the test window's labelled "
        f"rows ({ECE_BINS} equal-mass bins): max({MIN_ECE_FLOOR}, {ece_factor:.2f} x "
        f"sqrt({ECE_BINS} x {rate:.3f} x {1 - rate:.3f} / {test_labelled:.0f})) = "
        f"max({MIN_ECE_FLOOR}, {ece_noise:.3f})."
    )
    return common | {
        "ml_task": "Binary classification",
        "score_distance": "normed Wasserstein",
        "definition": "what makes a row positive",
        "predict": "P({} is positive)",
        "matters": "whether calibration matters as much as ranking",
        "task": "task:\n  kind: binary",
        "landing": f"`mlops land` maps source values {yaml_inline(label['positive'])} to 1 and "
        f"{yaml_inline(label['negative'])} to 0 (contract.yaml).",
        "primary": "NCE",
        "metrics": "  # Normalized cross-entropy: log loss divided by the log loss of always "
        "predicting the base\n  # rate. Below 1 means the model knows more than the base rate; "
        "lower is better.\n  primary: nce\n  secondary: [roc_auc, pr_auc, ece, log_loss]",
        "floors": "      nce: {max: 0.98}\n      roc_auc: {min: 0.60}\n"
        f"{_yaml_comment(ece_why, 6)}\n      ece: {{max: {ece_max}}}",
    }


def _round_up(value: float, digits: int) -> float:
    scale = 10**digits
    return math.ceil(value * scale - 1e-9) / scale


def _card_text(v: dict[str, Any], why: dict[str, str], inference: Inference) -> str:
    p = inference.profile
    entity = inference.contract["entity"]["name"]
    kind = v["sections"]
    objective = _yaml_folded(
        "TODO: what the business gains when the model is right, and what a wrong score costs; "
        "how much better than today is worth shipping.",
    )
    task = _yaml_folded(
        f"TODO: review. {kind['ml_task']}: for each row (one {entity}), as of its "
        f"{inference.contract['timestamp']}, predict {kind['predict'].format(v['label_column'])}. "
        f"Say who uses the prediction and {kind['matters']}.",
    )
    definition = _yaml_folded(f"TODO: {kind['definition']}, and when it is known.", indent=4)
    reference_bounds = f"at least {MIN_REFERENCE_ROWS}, at most {MAX_REFERENCE_ROWS}"
    sample_bounds = f"at least {MIN_SAMPLE_ROWS}, at most {MAX_SAMPLE_ROWS}"
    return f"""\
# Requirements card for {v["name"]}: steps 1-2 of ML system design. Every gate threshold the
# platform uses is here; code never hard-codes one.
{_yaml_comment(f"Drafted by `mlops init-use-case` from {p.source}: {why['sample']}.", 0)}
# The TODOs are yours; the numbers follow from the sample (each formula beside its number):
# review them before production (docs/make-it-yours.md).
use_case: {yaml_inline(v["name"])}
business_objective: {objective}
ml_task: {task}
{kind["task"]}
label:
  column: {yaml_inline(v["label_column"])}
  # {kind["landing"]}
  definition: {definition}
  arrives_within_hours: 24  # TODO: how long after a row's time its label is known
offline_metrics:
{kind["metrics"]}
online_metric:
  name: TODO
  definition: "TODO: the business metric the model moves, measured per day per model version."
serving_slo:
{_yaml_comment(f"A generic default, review it: {why['throughput']}.", 2)}
  p99_latency_ms: 50
  throughput_rps: {v["throughput"]}
training:
  # The search tries all `search_trials` parameter sets (seeded: the same data gives the same
  # model, on a quiet machine or a busy one). The time budget only guards against a runaway
  # search: spent before the last trial, training stops and says so.
  time_budget_seconds: 900
  search_trials: 6
  early_stopping_rounds: 30
  baseline_max_rows: 100000  # the linear baseline converges long before 1M rows
  # Windows end at the newest ingested batch: train, then validation (early stopping, search),
  # then test (metrics, and the promotion gate re-scores the champion on it). Split by time.
{_yaml_comment(why["windows"], 2)}
  train_days: {v["train"]}
  validation_days: {v["validation"]}
  test_days: {v["test"]}
gates:
  validation:
    # Above this share of failing rows in any table, the whole batch is quarantined.
    max_failing_fraction: 0.05
    # An event row older than this before its batch closed is quarantined (a resent or
    # misdated row), not stored as the day's data.
    max_event_age_days: 30
  promotion:
    # The challenger must beat the champion on the primary metric (offline_metrics.primary) by at
    # least this, in that metric's better direction: here, {kind["primary"]} at least 0.002 lower.
    min_improvement: 0.002
    floors:                 # bounds every promoted model meets on the test window
{kind["floors"]}
    slice_tolerance: 0.01   # no slice's {kind["primary"]} may get worse than this
    # A slice is judged from ~{SLICE_MINORITY_ROWS} {kind["rows"]}: {why["slices"]}.
    min_slice_rows: {v["min_slice_rows"]}
    # A floor inside its metric's bootstrap interval on the test window is noise, not a bar:
    # the gate still applies it, and warns.
    bootstrap_resamples: {BOOTSTRAP_RESAMPLES}
    bootstrap_confidence: {BOOTSTRAP_CONFIDENCE:.2f}
  monitoring:
    # Each window (the last `window_hours` of traffic) is compared with the champion's
    # reference: a sample of its validation and test windows, stored with the model.
{_yaml_comment(f"Long enough for min_rows and min_labelled_rows: {why['window']}.", 4)}
    window_hours: {v["window_hours"]}
    # The reference: the test window's rows ({reference_bounds}).
    reference_rows: {v["reference_rows"]}
    # Evidently's seeded sample of a window: its rows ({sample_bounds}).
    sample_rows: {v["sample_rows"]}
    # Below these a window decides nothing: half a day's (labelled) rows, >= {MIN_MONITORED_ROWS}.
    min_rows: {v["min_rows"]}
    min_labelled_rows: {v["min_labelled"]}
    # Performance: labelled {kind["primary"]} worse than the reference's by more than this: retrain.
{_yaml_comment(why["degradation"], 4)}
    max_degradation: {v["degradation"]}
{_yaml_comment(DRIFT_COMMENT.format(kind["score_distance"]), 4)}
{_yaml_comment(why["drift"], 4)}
    score_drift_threshold: {v["score_drift"]}
    column_drift_threshold: {v["column_drift"]}
    drift_share: 0.5
    windows_k: 2
    windows_n: 3
    # Data incident -> alert, never retrain (a model trained on broken data is worse):
    max_quarantined_fraction: 0.01   # events the data path quarantined in the window
    max_null_fraction: 0.005         # requests missing a value of their own context
    # Retraining starts from a recent window, so a changed world dominates what is learned:
    # half the training days (at least the validation's), evaluated on windows as long as
    # training's so the gate judges with the same power.
    retrain_windows:
      train_days: {v["retrain_train"]}
      validation_days: {v["validation"]}
      test_days: {v["test"]}
"""


def _yaml_comment(text: str, indent: int) -> str:
    """`text` as YAML comment lines, wrapped, at `indent`."""
    prefix = " " * indent + "# "
    return "\n".join(textwrap.wrap(text, width=98, initial_indent=prefix, subsequent_indent=prefix))


def _yaml_folded(text: str, indent: int = 2) -> str:
    """A YAML folded block (`>`), wrapped: read back as `text` and a newline."""
    lines = textwrap.wrap(text, width=96 - indent, break_on_hyphens=False)
    return ">\n" + "\n".join(" " * indent + line for line in lines)


def yaml_inline(value: Any) -> str:
    """`value` as one line of YAML (quoted where YAML would read it as something else)."""
    return (
        yaml.safe_dump(
            value, default_flow_style=True, width=2**31, sort_keys=False, allow_unicode=True
        )
        .removesuffix("\n...\n")
        .strip()
    )
