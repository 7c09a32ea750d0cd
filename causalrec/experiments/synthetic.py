"""A seeded synthetic A/B experiment with known effects (for the demo and tests).

Each user has a latent activity level ``a ~ LogNormal(0, 0.8)``. Before the
experiment it produced ``pre_revenue`` (noisy, correlated with the in-experiment
revenue) and ``pre_sessions``; during the experiment it produces ``sessions``
(Poisson), ``clicks`` (Binomial over sessions), ``revenue`` and ``converted``
(0/1). Treatment arms multiply revenue by ``1 + lift`` and the click
probability by ``1 + click_lift``, so the true relative lifts are known.
A short text ``history`` of the user's pre-period interests is generated
from the latent taste so that CUPAC can use text. Users arrive uniformly over
``days`` days (``day``: days since the start, a float); with ``impressions=True``
each session's ``day`` falls between the user's arrival and the end, so looks at
day cut-offs see each user's sessions so far. The times are drawn from their own
random stream: the other columns do not depend on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

_TOPICS = np.array(["running shoes", "denim jackets", "summer dresses", "leather boots", "wool sweaters",
                    "sunglasses", "handbags", "sneakers", "rain coats", "silk scarves"])


def simulate_experiment(
    n_users: int = 4000,
    variants: Sequence[str] = ("control", "treatment"),
    split: Sequence[float] | None = None,
    lift: Sequence[float] | float = 0.0,
    click_lift: Sequence[float] | float = 0.0,
    seed: int = 0,
    impressions: bool = False,
    days: float = 14.0,
) -> pd.DataFrame:
    """One row per user (or per session with ``impressions=True``).

    ``lift`` / ``click_lift``: relative lifts per variant (first = control,
    so usually 0). Columns: user_id, variant, platform, revenue, converted,
    sessions, clicks, pre_revenue, pre_sessions, history, day.
    """
    rng = np.random.default_rng(seed)
    k = len(variants)
    lifts = np.broadcast_to(np.asarray(lift, dtype=float), (k,)).copy()
    clifts = np.broadcast_to(np.asarray(click_lift, dtype=float), (k,)).copy()
    p = np.full(k, 1.0 / k) if split is None else np.asarray(split, dtype=float) / np.sum(split)
    arm = rng.choice(k, size=n_users, p=p)
    activity = rng.lognormal(0.0, 0.8, n_users)
    taste = rng.integers(0, len(_TOPICS), n_users)
    platform = rng.choice(np.array(["web", "ios", "android"]), size=n_users, p=[0.5, 0.3, 0.2])
    pre_sessions = rng.poisson(3.0 * activity)
    pre_revenue = np.round(rng.gamma(4.0, 2.5 * activity) * (rng.random(n_users) < 0.9), 2)
    # taste-driven spend: part of the revenue variance visible only in the text history
    taste_mult = 0.6 + 0.1 * taste
    sessions = rng.poisson(3.0 * activity) + 1
    ctr = np.clip(0.08 * (1 + clifts[arm]) * (0.7 + 0.3 * np.sqrt(activity)), 0, 1)
    clicks = rng.binomial(sessions, ctr)
    mean_rev = 10.0 * activity * taste_mult * (1.0 + lifts[arm])
    revenue = np.round(rng.gamma(4.0, mean_rev / 4.0) * (rng.random(n_users) < 0.8), 2)
    converted = (revenue > 12.0).astype(np.int64)
    history = np.char.add(np.char.add("viewed ", _TOPICS[taste]), np.char.add(" and ", _TOPICS[(taste + 3) % 10]))
    users = pd.DataFrame({
        "user_id": np.arange(n_users), "variant": np.asarray(variants)[arm], "platform": platform,
        "revenue": revenue, "converted": converted, "sessions": sessions, "clicks": clicks,
        "pre_revenue": pre_revenue, "pre_sessions": pre_sessions, "history": history,
    })
    clock = np.random.default_rng([seed, 7919])  # its own stream: adding times changed no other column
    arrival = clock.uniform(0.0, days, n_users)
    users["day"] = np.round(arrival, 4)
    if not impressions:
        return users
    # one row per session: clicks spread over the user's sessions
    rep = np.repeat(np.arange(n_users), sessions)
    sess = users.iloc[rep].reset_index(drop=True)
    sess["clicks"] = rng.binomial(1, ctr[rep]).astype(np.int64)
    sess["revenue"] = np.round(revenue[rep] / sessions[rep], 4)
    sess = sess.drop(columns=["sessions", "converted"])
    sess["day"] = np.round(arrival[rep] + clock.random(len(rep)) * (days - arrival[rep]), 4)
    sess.insert(1, "session_id", np.arange(len(sess)))
    return sess
