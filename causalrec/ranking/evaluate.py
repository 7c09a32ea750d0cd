"""Unbiased evaluation of a ranker: against known relevance, and by OPE on randomised logs.

Known relevance (the simulator's ``true_relevance``, a probability ``r``):
within each request (list of candidates) rank by score; with ``rank_j`` the
0-based rank of candidate ``j``::

    DCG@k  = sum_{rank_j < k} r_j / log2(rank_j + 2)
    NDCG@k = DCG@k / IDCG@k                       (IDCG: the same sum, sorted by r)
    recall@k = sum_{rank_j < k} r_j / sum_j r_j    (expected share of relevant items found)

Each metric is the mean over requests; its interval is the normal interval
with ``se = sd / sqrt(n_requests)`` (requests are independent draws).

Randomised logs (e.g. Open Bandit's uniform-random policy): the ranker defines a
deterministic position-wise policy -- position ``k`` of row ``i`` gets the item
it ranks ``k``-th for that row's context -- and its value (clicks per
impression) is estimated by :func:`causalrec.ope.evaluate` (IPS, SNIPS, DR with
influence-function intervals). Assumes the logged propensities are the
logging policy's and positive for every item the ranker picks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causalrec.errors import InputError
from causalrec.inference import influence_se
from causalrec.results import CausalResult, Estimate


@dataclass
class RankingResult(CausalResult):
    """Ranking metrics (and policy values) with intervals; ``per_request`` keeps the raw values."""

    per_request: pd.DataFrame | None = field(default=None, repr=False)
    title: str = "causalrec rank eval"

    def side_by_side(self) -> pd.DataFrame:
        """One row per metric (target), one column per model (``estimator``, or ``policy`` in OPE mode)."""
        f = self.to_frame()
        if f.empty:
            return f
        col = "model" if "model" in f.columns else "estimator"
        f = f.assign(model=f[col]) if col != "model" else f
        key = ["target"] + (["estimator"] if col == "model" and f["estimator"].nunique() > 1 else [])
        wide = f.pivot_table(index=key, columns="model", values="estimate", sort=False)
        return wide[list(dict.fromkeys(f["model"]))].reset_index()

    def summary(self) -> str:
        f = self.to_frame()
        if f.empty or "model" not in f.columns or f["model"].nunique() < 2:
            return super().summary()
        lines = [f"{self.title}  (n_rows={self.n_rows:,}; models side by side, estimates)",
                 self.side_by_side().to_string(index=False, float_format=lambda v: f"{v:.4f}")]
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        return "\n".join(lines)


def _group_ranks(groups: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes of groups, and the 0-based rank of each row within its group by descending ``key``."""
    _, g = np.unique(groups, return_inverse=True)
    order = np.lexsort((-key, g))
    gs = g[order]
    start = np.r_[0, np.flatnonzero(np.diff(gs)) + 1]
    first = np.repeat(start, np.diff(np.r_[start, gs.shape[0]]))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0]) - first
    return g, rank, order


def per_request_metrics(scores: np.ndarray, relevance: np.ndarray, groups: np.ndarray,
                        ks: Sequence[int] = (5, 10), seed: int = 0) -> pd.DataFrame:
    """NDCG@k and recall@k per request (groups with no relevance mass are dropped).

    Ties in the score are broken at random (seeded), so a constant scorer gets
    the expected metric of a random ranking rather than the data order.
    """
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(relevance, dtype=np.float64)
    grp = np.asarray(groups)
    if not (s.shape == r.shape == grp.shape) or s.ndim != 1:
        raise InputError("scores, relevance and groups must be 1-d and aligned", column="relevance",
                         fix="pass one score, relevance and request id per candidate row")
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise InputError("relevance must be finite and non-negative", column="relevance",
                         fix="point --relevance at the true relevance column (e.g. true_relevance)")
    jitter = np.random.default_rng(seed).random(s.shape[0]) * 1e-9 * (np.abs(s).max() + 1.0)
    g, rank, _ = _group_ranks(grp, s + jitter)
    _, ideal, _ = _group_ranks(grp, r)
    n_g = int(g.max()) + 1
    disc = 1.0 / np.log2(np.arange(s.shape[0]) + 2.0)
    total = np.bincount(g, weights=r, minlength=n_g)
    out = {"request": np.arange(n_g), "relevance_total": total, "n_candidates": np.bincount(g, minlength=n_g)}
    for k in ks:
        top = rank < k
        dcg = np.bincount(g, weights=np.where(top, r * disc[rank], 0.0), minlength=n_g)
        idcg = np.bincount(g, weights=np.where(ideal < k, r * disc[ideal], 0.0), minlength=n_g)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"ndcg@{k}"] = dcg / idcg
            out[f"recall@{k}"] = np.bincount(g, weights=np.where(top, r, 0.0), minlength=n_g) / total
    frame = pd.DataFrame(out)
    return frame[frame["relevance_total"] > 0].reset_index(drop=True)


def ranking_estimates(frame: pd.DataFrame, ks: Sequence[int], estimator: str = "ranker",
                      ci_level: float = 0.95) -> list[Estimate]:
    """Mean over requests of each metric with a normal interval."""
    ests = []
    for k in ks:
        for m in (f"ndcg@{k}", f"recall@{k}"):
            v = frame[m].to_numpy(np.float64)
            ests.append(Estimate.normal(estimator, m, float(v.mean()) if v.size else float("nan"),
                                        influence_se(v), ci_level, n_requests=int(v.size)))
    return ests


def ranker_policy_table(scores: np.ndarray, item_ids: np.ndarray, n_positions: int) -> pd.DataFrame:
    """Deterministic position-wise policy from a ``(n_rows, n_items)`` score matrix.

    Row ``i``, position ``k``: the item with the ``k``-th highest score, probability 1;
    every other logged item gets probability 0 (listed so the table is a full distribution).
    Returns the long table ``row, item_id, position, prob`` for :func:`causalrec.ope.evaluate`.
    """
    S = np.asarray(scores, dtype=np.float64)
    n, m = S.shape
    if n_positions > m:
        raise InputError(f"{n_positions} positions but only {m} candidate items", column="position",
                         fix="rank at most as many positions as there are items")
    top = np.argsort(-S, axis=1, kind="stable")[:, :n_positions]
    rows = np.repeat(np.arange(n), m * n_positions)
    pos = np.tile(np.repeat(np.arange(n_positions), m), n)
    items = np.tile(np.arange(m), n * n_positions)
    prob = (top[rows, pos] == items).astype(np.float64)
    return pd.DataFrame({"row": rows, "item_id": np.asarray(item_ids)[items], "position": pos, "prob": prob})


def policy_value(logs: pd.DataFrame, scores: np.ndarray, item_ids: np.ndarray, *, schema: Any = None,
                 estimators: Sequence[str] = ("ips", "snips", "dr"), n_positions: int | None = None,
                 ci_level: float = 0.95, seed: int = 0, label: str = "ranker") -> list[Estimate]:
    """Value of the ranker's top-``n_positions`` policy on randomised ``logs`` by OPE.

    ``scores[i, j]``: the ranker's score of ``item_ids[j]`` for row ``i``'s context.
    Returns ``causalrec.ope.evaluate``'s estimates, tagged with ``policy=label``.
    """
    from causalrec.data.schema import LogSchema
    from causalrec.ope import evaluate

    schema = schema or LogSchema()
    K = n_positions or int(logs[schema.position].max()) + 1 - schema.position_base
    table = ranker_policy_table(scores, item_ids, K)
    res = evaluate(logs.reset_index(drop=True), table, schema=schema, estimators=list(estimators),
                   ci_level=ci_level, seed=seed)
    out = []
    for e in res.estimates:
        e.extra = {**e.extra, "policy": label}
        out.append(e)
    return out
