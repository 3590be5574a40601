"""Attribution shift: whether the champion's reasons moved between its reference and a window.

Each model input's share of the mean absolute contribution to the margin (XGBoost's TreeSHAP,
`mlops.contracts.model_inputs.contributions`), on the reference and on the window's sample; the
shift is the total variation between the two shares (half the sum of their differences): 0 when
the model leans on its inputs as it did on the reference, 1 when on other inputs entirely.

It says *why* scores moved where drift says *that* inputs moved: a drifted input the model
hardly uses shifts little, and a shift with no drifted input means that inputs moved together
into regions where the trees weigh them differently. No rule acts on it (the card has no limit for
it): it is drawn on the dashboard and kept in the record for a person to read beside the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.contracts.model_inputs import contributions

if TYPE_CHECKING:
    import xgboost as xgb

# TreeSHAP costs trees x leaves x depth per row: a few thousand rows give the shares to well
# under a percent, in a fraction of a second.
ATTRIBUTION_ROWS = 5_000
MOVERS = 3  # inputs named in the record: those whose share moved most


@dataclass(frozen=True)
class AttributionShift:
    reference: dict[str, float]  # input -> share of the mean |contribution| on the reference
    window: dict[str, float]  # and on the window's sample

    @property
    def distance(self) -> float:
        return 0.5 * sum(abs(self.window[name] - share) for name, share in self.reference.items())

    def moved(self, count: int = MOVERS) -> list[str]:
        """The inputs whose share moved most, as `click_effect 31% -> 22%`."""
        ranked = sorted(self.reference, key=lambda n: -abs(self.window[n] - self.reference[n]))
        return [
            f"{name} {self.reference[name]:.0%} -> {self.window[name]:.0%}"
            for name in ranked[:count]
        ]


def attribution_shares(
    booster: xgb.Booster,
    categories: Mapping[str, Sequence[Any]],
    frame: pd.DataFrame,
    rows: int = ATTRIBUTION_ROWS,
) -> dict[str, float]:
    """Each model input's share of the mean |contribution| on (up to `rows` of) `frame`, a frame
    of readable model inputs (the reference's and the window's shape: categories by name)."""
    names = list(booster.feature_names or [])
    sample = frame.sample(n=rows, random_state=0) if len(frame) > rows else frame
    absent = pd.Series(np.nan, index=sample.index)  # an input the frame lacks: missing
    inputs = pd.DataFrame(
        {
            name: pd.Categorical(sample.get(name, absent), categories=list(categories[name]))
            if name in categories
            else sample.get(name, absent).astype(np.float64)
            for name in names
        }
    )
    explained = np.abs(contributions(booster, inputs), dtype=np.float64)[..., :-1]  # bias: no input
    per_input = explained.reshape(-1, len(names)).mean(axis=0)
    total = float(per_input.sum())
    return {
        name: float(v) / total if total else 0.0 for name, v in zip(names, per_input, strict=True)
    }


def attribution_shift(
    booster: xgb.Booster,
    categories: Mapping[str, Sequence[Any]],
    reference: pd.DataFrame,
    window: pd.DataFrame,
) -> AttributionShift:
    """The champion's attribution shares on its reference and on the window's sample
    (`categories`: the use case's, by input)."""
    return AttributionShift(
        attribution_shares(booster, categories, reference),
        attribution_shares(booster, categories, window),
    )
