"""A seeded synthetic ad platform: users, ads and impressions with a click label.

The click probability has interactions a linear model cannot express (age bucket x ad category,
device x slot position, hour of day), hidden per-user and per-ad propensities that only behaviour
aggregates reveal, and users and ads that appear over time (cold start). Each impression keeps
its true probability in `click_probability`: the oracle for evaluation, never a feature. The
oracle knows each entity's hidden propensity, which no model can; `knowable_probability` is the
best prediction possible from what was observable before the impression's day (the Bayes
ceiling): the context effects, and each propensity's posterior given the entity's impressions
and clicks on the days before. The share of the *reachable* lift a model captures is measured
against it.

Scenarios change the world from `drift_day` on:
- covariate-shift: the traffic mix moves (more mobile, more top slots); P(click | x) does not.
- concept-drift:   P(click | x) changes (tastes rotate across categories, mobile slots invert).
- data-incident:   on that one day a feature pipeline breaks: some rows carry nulls,
                   out-of-range slots or an unseen device.
`incident_day` adds such an incident to any scenario (the lifecycle run's default story: an
incident on one day, a concept drift from another).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.config.errors import UserError
from mlops.contracts.batches import write_batch
from usecases.adclick.contract import (
    AD_CATEGORIES,
    AD_POSITIONS,
    AGE_BUCKETS,
    CEILING,
    COUNTRIES,
    DEVICES,
    LABEL,
    ORACLE,
)

SCENARIOS = ("baseline", "covariate-shift", "concept-drift", "data-incident")
SECONDS_PER_DAY = 86_400
BASE_LOGIT = -4.2
HISTORY_DAYS = 60  # users and ads that existed before the first generated day
DEVICE_MIX = np.array([0.6, 0.3, 0.1])
DEVICE_MIX_SHIFTED = np.array([0.85, 0.1, 0.05])
POSITION_MIX = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
POSITION_MIX_SHIFTED = np.array([0.5, 0.25, 0.15, 0.05, 0.05])
INCIDENT_DEVICE = "smart-tv"
USER_PROPENSITY_SD = 0.6
AD_PROPENSITY_SD = 0.5


@dataclass(frozen=True)
class World:
    """Entities and hidden effects, fixed for the whole simulation by the seed."""

    users: pd.DataFrame  # user_id, signup_at, age_bucket, country
    ads: pd.DataFrame  # ad_id, created_at, advertiser_id, category
    user_weight: np.ndarray  # how often each user browses
    user_logit: np.ndarray  # hidden propensity
    ad_weight: np.ndarray
    ad_logit: np.ndarray  # hidden quality
    taste: np.ndarray  # [age bucket, category] -> logit
    taste_after_drift: np.ndarray
    slot: np.ndarray  # [device, position] -> logit
    slot_after_drift: np.ndarray


def build_world(rng: np.random.Generator, start: datetime, days: int, events_per_day: int) -> World:
    n_users = max(200, events_per_day * days // 20)
    n_ads = max(30, n_users // 25)
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1, dtype=np.int64),
            "signup_at": _appearance_times(rng, n_users, start, days, new_share=0.3),
            "age_bucket": rng.choice(AGE_BUCKETS, n_users, p=[0.15, 0.3, 0.25, 0.18, 0.12]),
            "country": rng.choice(COUNTRIES, n_users, p=[0.35, 0.15, 0.15, 0.1, 0.15, 0.1]),
        }
    )
    ads = pd.DataFrame(
        {
            "ad_id": np.arange(1, n_ads + 1, dtype=np.int64),
            "created_at": _appearance_times(rng, n_ads, start, days, new_share=0.4),
            "advertiser_id": rng.integers(1, max(2, n_ads // 5) + 1, n_ads).astype(np.int64),
            "category": rng.choice(AD_CATEGORIES, n_ads),
        }
    )
    taste = rng.normal(0.0, 0.7, (len(AGE_BUCKETS), len(AD_CATEGORIES)))
    # Mobile users click the top slot far more and lower slots far less than desktop users.
    slot = np.array(
        [
            [0.9, 0.1, -0.5, -0.9, -1.2],  # mobile
            [0.3, 0.2, 0.0, -0.2, -0.3],  # desktop
            [0.5, 0.3, -0.1, -0.4, -0.6],  # tablet
        ]
    )
    return World(
        users=users,
        ads=ads,
        user_weight=rng.lognormal(0.0, 1.0, n_users),
        user_logit=rng.normal(0.0, USER_PROPENSITY_SD, n_users),
        ad_weight=rng.lognormal(0.0, 0.7, n_ads),
        ad_logit=rng.normal(0.0, AD_PROPENSITY_SD, n_ads),
        taste=taste,
        taste_after_drift=-np.roll(taste, 2, axis=1),
        slot=slot,
        slot_after_drift=slot[:, ::-1].copy(),
    )


class Posterior:
    """What the days so far tell about each entity's hidden propensity: a posterior over a grid
    of values, from the normal prior the world draws them from and the likelihood of each click
    and non-click seen, given the context and what was known of the other entity then."""

    POINTS = 41
    CHUNK = 100_000  # rows at a time: rows x POINTS floats stay small

    def __init__(self, entities: int, prior_sd: float) -> None:
        self.grid = np.linspace(-4 * prior_sd, 4 * prior_sd, self.POINTS)
        self.log_weights = np.tile(-0.5 * (self.grid / prior_sd) ** 2, (entities, 1))

    def weights(self, idx: np.ndarray) -> np.ndarray:
        log_w = self.log_weights[idx]
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        return w / w.sum(axis=1, keepdims=True)

    def mean(self, idx: np.ndarray) -> np.ndarray:
        return self.weights(idx) @ self.grid

    def predictive(self, idx: np.ndarray, logit_without: np.ndarray) -> np.ndarray:
        """P(click), the propensity integrated over its posterior; `logit_without`: the logit
        of everything else."""
        out = np.empty(len(idx))
        for start in range(0, len(idx), self.CHUNK):
            rows = slice(start, start + self.CHUNK)
            z = logit_without[rows, None] + self.grid[None, :]
            out[rows] = (self.weights(idx[rows]) / (1 + np.exp(-z))).sum(axis=1)
        return out

    def observe(self, idx: np.ndarray, logit_without: np.ndarray, clicked: np.ndarray) -> None:
        for start in range(0, len(idx), self.CHUNK):
            rows = slice(start, start + self.CHUNK)
            z = logit_without[rows, None] + self.grid[None, :]
            sign = np.where(clicked[rows] == 1, -1.0, 1.0)[:, None]
            log_likelihood = -np.logaddexp(0.0, sign * z)
            # Summed per entity (sorted runs): np.add.at is ~10x slower at a million rows.
            order = np.argsort(idx[rows], kind="stable")
            entities = idx[rows][order]
            starts = np.flatnonzero(np.r_[True, entities[1:] != entities[:-1]])
            summed = np.add.reduceat(log_likelihood[order], starts, axis=0)
            self.log_weights[entities[starts]] += summed


@dataclass(frozen=True)
class Knowledge:
    """The posteriors of both entities' propensities, from the days simulated so far."""

    users: Posterior
    ads: Posterior

    @classmethod
    def none_yet(cls, world: World) -> Knowledge:
        return cls(
            Posterior(len(world.users), USER_PROPENSITY_SD),
            Posterior(len(world.ads), AD_PROPENSITY_SD),
        )


def _appearance_times(
    rng: np.random.Generator, n: int, start: datetime, days: int, new_share: float
) -> pd.Series:
    """Most entities exist before `start`; `new_share` of them appear during the simulation."""
    is_new = rng.random(n) < new_share
    offset_s = np.where(
        is_new,
        rng.uniform(0, days * SECONDS_PER_DAY, n),
        -rng.uniform(1, HISTORY_DAYS * SECONDS_PER_DAY, n),
    )
    return pd.Series(pd.Timestamp(start) + pd.to_timedelta(offset_s.astype(np.int64), unit="s"))


def simulate_day(
    rng: np.random.Generator,
    world: World,
    day_start: datetime,
    events: int,
    *,
    drifted: bool,
    scenario: str,
    id_offset: int,
    knowledge: Knowledge,
) -> pd.DataFrame:
    """One day's impressions, with the oracle and the Bayes ceiling from `knowledge` (the days
    before), which then learns this day's clicks."""
    day_start_ts = pd.Timestamp(day_start)
    day_end_ts = day_start_ts + pd.Timedelta(days=1)
    users_known = np.flatnonzero((world.users["signup_at"] < day_end_ts).to_numpy())
    ads_known = np.flatnonzero((world.ads["created_at"] < day_end_ts).to_numpy())
    user_idx = users_known[_weighted_draw(rng, world.user_weight[users_known], events)]
    ad_idx = ads_known[_weighted_draw(rng, world.ad_weight[ads_known], events)]

    # An impression happens after both its user and its ad exist.
    earliest = np.maximum.reduce(
        [
            np.full(events, day_start_ts.value // 1000),
            world.users["signup_at"].to_numpy("datetime64[us]")[user_idx].astype(np.int64),
            world.ads["created_at"].to_numpy("datetime64[us]")[ad_idx].astype(np.int64),
        ]
    )
    end_us = day_end_ts.value // 1000 - 1
    ts_us = earliest + (rng.random(events) * (end_us - earliest)).astype(np.int64)
    timestamps = pd.to_datetime(ts_us, unit="us", utc=True)

    shifted_mix = drifted and scenario == "covariate-shift"
    device_idx = rng.choice(
        len(DEVICES), events, p=DEVICE_MIX_SHIFTED if shifted_mix else DEVICE_MIX
    )
    position_idx = rng.choice(
        len(AD_POSITIONS), events, p=POSITION_MIX_SHIFTED if shifted_mix else POSITION_MIX
    )

    concept_changed = drifted and scenario == "concept-drift"
    taste = world.taste_after_drift if concept_changed else world.taste
    slot = world.slot_after_drift if concept_changed else world.slot
    age_idx = pd.Categorical(world.users["age_bucket"], categories=AGE_BUCKETS).codes[user_idx]
    category_idx = pd.Categorical(world.ads["category"], categories=AD_CATEGORIES).codes[ad_idx]
    hour = timestamps.hour.to_numpy()
    context = (
        BASE_LOGIT
        + taste[age_idx, category_idx]
        + slot[device_idx, position_idx]
        + 0.4 * np.sin(2 * np.pi * (hour - 14) / 24)
    )
    probability = 1.0 / (
        1.0 + np.exp(-(context + world.user_logit[user_idx] + world.ad_logit[ad_idx]))
    )
    # What the days before tell of each side; each learns today's clicks given the other's.
    user_known, ad_known = knowledge.users.mean(user_idx), knowledge.ads.mean(ad_idx)
    knowable = knowledge.users.predictive(user_idx, context + ad_known)
    clicked = (rng.random(events) < probability).astype(np.int64)
    knowledge.users.observe(user_idx, context + ad_known, clicked)
    knowledge.ads.observe(ad_idx, context + user_known, clicked)

    return pd.DataFrame(
        {
            "impression_id": id_offset + np.arange(1, events + 1, dtype=np.int64),
            "event_timestamp": timestamps,
            "user_id": world.users["user_id"].to_numpy()[user_idx],
            "ad_id": world.ads["ad_id"].to_numpy()[ad_idx],
            "device": np.asarray(DEVICES, dtype=object)[device_idx],
            "ad_position": np.asarray(AD_POSITIONS, dtype=np.int64)[position_idx],
            LABEL: clicked,
            ORACLE: probability,
            CEILING: knowable,
        }
    )


def _weighted_draw(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    cumulative = np.cumsum(weights)
    return np.searchsorted(cumulative, rng.random(size) * cumulative[-1], side="right")


def break_pipeline(rng: np.random.Generator, impressions: pd.DataFrame, fraction: float) -> None:
    """A broken feature pipeline: nulls, out-of-range slots and an unseen device, in place."""
    broken = rng.choice(len(impressions), int(len(impressions) * fraction), replace=False)
    nulls, out_of_range, unseen = np.array_split(broken, 3)
    impressions["ad_position"] = impressions["ad_position"].astype("Int64")
    impressions.loc[nulls, "device"] = None
    impressions.loc[out_of_range, "ad_position"] = 99
    impressions.loc[unseen, "device"] = INCIDENT_DEVICE


def generate(
    landing_dir: Path,
    *,
    start: date,
    days: int = 7,
    events_per_day: int = 20_000,
    seed: int = 7,
    scenario: str = "baseline",
    drift_day: int | None = None,
    incident_day: int | None = None,
    incident_fraction: float = 0.03,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write one batch per day under `landing_dir`; return the batch directories.

    `drift_day` counts from 0 (the first generated day); scenarios other than baseline default
    to the middle day.
    """
    if scenario not in SCENARIOS:
        raise UserError(f"unknown scenario '{scenario}'; choose one of {', '.join(SCENARIOS)}")
    if days < 1 or events_per_day < 1:
        raise UserError("days and events_per_day must be at least 1")
    if drift_day is None:
        drift_day = days // 2
    rng = np.random.default_rng(seed)
    start_dt = datetime(start.year, start.month, start.day, tzinfo=UTC)
    world = build_world(rng, start_dt, days, events_per_day)
    knowledge = Knowledge.none_yet(world)
    batches = []
    for day in range(days):
        day_start = start_dt + timedelta(days=day)
        day_end = day_start + timedelta(days=1)
        impressions = simulate_day(
            rng,
            world,
            day_start,
            events_per_day,
            drifted=day >= drift_day,
            scenario=scenario,
            id_offset=day_start.date().toordinal() * 100_000_000,
            knowledge=knowledge,
        )
        if day == incident_day or (scenario == "data-incident" and day == drift_day):
            break_pipeline(rng, impressions, incident_fraction)
        users = world.users[world.users["user_id"].isin(impressions["user_id"])]
        ads = world.ads[world.ads["ad_id"].isin(impressions["ad_id"])]
        batch_dir = landing_dir / day_start.date().isoformat()
        write_batch(
            batch_dir,
            {"impressions": impressions, "users": users, "ads": ads},
            closed_at=day_end,
            scenario=scenario,
            seed=seed,
            day_index=day,
            drifted=day >= drift_day and scenario != "baseline",
        )
        batches.append(batch_dir)
        if progress:
            progress(day + 1)
    return batches
