"""Synthetic position-aware bandit logs whose target policy values are known exactly.

Used by the tests (coverage of the intervals), the benchmark and the data sample.

Model: each request has ``n_positions`` impressions (position ``k = 0..K-1``) and a user
segment ``s`` (uniform over ``n_segments``). At every position the logging policy draws
an item ``a ~ pi_0(a | s, k) = softmax(logging_strength * z[s, a] - 0.2 k)`` independently
(items may repeat within a request: the Open Bandit protocol treats positions
separately). The click probability is ``q(s, a, k) = base_ctr * exp(item effect +
segment x item affinity) * decay^k`` (capped at 0.95), so both the outcome and the
logging policy depend on the segment: a context-free outcome model (cell means) is
misspecified and DM is biased, while IPS/DR stay consistent.

A context-free target ``pi_e(a | k)`` has value
``V = (1/K) sum_k sum_s P(s) sum_a pi_e(a | k) q(s, a, k)`` per impression.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class SyntheticBandit:
    logs: pd.DataFrame
    targets: dict[str, pd.DataFrame]
    truth: dict[str, float]
    q: np.ndarray  # (S, A, K) click probabilities
    logging: np.ndarray  # (S, A, K) logging probabilities
    params: dict = field(default_factory=dict)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def policy_table(probs: np.ndarray) -> pd.DataFrame:
    """Long context-free table from an ``(A, K)`` matrix of per-position item probabilities."""
    a, k = probs.shape
    return pd.DataFrame({
        "item_id": np.repeat(np.arange(a), k),
        "position": np.tile(np.arange(k), a),
        "prob": probs.ravel(),
    })


def policy_value(probs: np.ndarray, q: np.ndarray, segment_share: np.ndarray | None = None) -> float:
    """``(1/K) sum_k sum_s P(s) sum_a pi(a | k) q(s, a, k)`` for an ``(A, K)`` target."""
    s = q.shape[0]
    share = np.full(s, 1.0 / s) if segment_share is None else segment_share
    return float(np.einsum("s,ak,sak->", share, probs, q) / q.shape[2])


def make_bandit_logs(
    n_rows: int = 10_000,
    n_items: int = 20,
    n_positions: int = 3,
    n_segments: int = 4,
    *,
    base_ctr: float = 0.08,
    logging_strength: float = 0.7,
    target_strength: float = 1.5,
    target_mix: float = 0.5,
    position_decay: float = 0.75,
    seed: int = 0,
    world_seed: int | None = None,
    expected_outcome: bool = False,
    shared_context: bool = True,
) -> SyntheticBandit:
    """Draw a log of ``n_rows`` impressions and two context-free targets with known values.

    ``world_seed`` fixes the click model and policies (default: ``seed``); ``seed`` the
    draws, so repeated logs of one world share the truth. Targets: ``"greedy_mix"``
    (``target_mix`` uniform + the rest softmax of the items' mean appeal) and ``"uniform"``.
    ``shared_context=False`` draws the segment per row instead of per request, making rows
    independent (the influence-function SEs treat rows as independent; with a shared
    segment the rows of one request are slightly correlated).
    """
    wrng = np.random.default_rng(seed if world_seed is None else world_seed)
    A, K, S = n_items, n_positions, n_segments
    item_eff = wrng.normal(0.0, 0.5, A)
    affinity = wrng.normal(0.0, 0.5, (S, A))
    decay = position_decay ** np.arange(K)
    q = np.minimum(base_ctr * np.exp(item_eff[None, :, None] + affinity[:, :, None]) * decay[None, None, :], 0.95)
    z = affinity + wrng.normal(0.0, 0.5, (S, A))  # the logger partly knows the affinity
    logging = _softmax(logging_strength * z[:, :, None] - 0.2 * np.arange(K)[None, None, :] * z[:, :, None] / 3,
                       axis=1)
    appeal = item_eff + affinity.mean(0)
    greedy = _softmax(np.repeat((target_strength * appeal)[:, None], K, axis=1), axis=0)
    targets_p = {
        "greedy_mix": target_mix / A + (1 - target_mix) * greedy,
        "uniform": np.full((A, K), 1.0 / A),
    }

    rng = np.random.default_rng(seed)
    rows = np.arange(n_rows)
    request = rows // K
    pos = rows % K
    if shared_context:
        seg = rng.integers(0, S, request[-1] + 1 if n_rows else 0)[request]
    else:
        seg = rng.integers(0, S, n_rows)
    item = np.empty(n_rows, dtype=np.int64)
    group = seg * K + pos
    for g in np.unique(group):  # one vectorised draw per (segment, position) group
        sel = np.flatnonzero(group == g)
        s, k = divmod(int(g), K)
        cdf = np.cumsum(logging[s, :, k])
        item[sel] = np.minimum(np.searchsorted(cdf, rng.random(sel.size) * cdf[-1], side="right"), A - 1)
    prob_click = q[seg, item, pos]
    click = (rng.random(n_rows) < prob_click).astype(np.int8)
    logs = pd.DataFrame({
        "request_id": request, "segment": seg, "item_id": item, "position": pos,
        "click": click, "propensity": logging[seg, item, pos],
    })
    if expected_outcome:
        logs["expected_click"] = prob_click
    share = np.full(S, 1.0 / S)
    truth = {name: policy_value(p, q, share) for name, p in targets_p.items()}
    truth["logging"] = float(np.einsum("s,sak,sak->", share, logging, q) / K)
    return SyntheticBandit(
        logs=logs, targets={k: policy_table(v) for k, v in targets_p.items()}, truth=truth, q=q,
        logging=logging,
        params=dict(n_rows=n_rows, n_items=A, n_positions=K, n_segments=S, base_ctr=base_ctr,
                    logging_strength=logging_strength, target_strength=target_strength,
                    target_mix=target_mix, position_decay=position_decay, seed=seed,
                    world_seed=seed if world_seed is None else world_seed),
    )
