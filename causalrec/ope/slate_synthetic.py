"""Synthetic ranked-list logs whose target values are known (tests, benchmark, study, sample).

World (fixed by ``world_seed``): ``n_segments`` user segments, ``n_items`` items with a
segment x item appeal ``z[s, a] ~ N(0, 1)``. A request draws a segment uniformly and
shows a list of ``list_length`` items:

- **logging policy** ``mu``: ``"plackett-luce"`` ranks without replacement with scores
  ``logging_strength * (z + noise)``; ``"independent"`` fills every slot independently
  (with replacement) from ``softmax(logging_strength * (z + noise) - 0.3 k)``, a product
  distribution (the setting in which PseudoInverse's closed form is exact);
- **target policy** ``pi``: Plackett-Luce over ``target_strength * z`` (plus
  ``target_noise``), given as per-request scores ``request_id, item_id, score``
  (``target_keyed=True``) or one context-free score table;
- **rewards** (clicks): slot ``k`` has base probability
  ``q(s, a, k) = sigmoid(base + z[s, a]) * decay^k``. ``reward="independent"``: clicks
  are independent with these probabilities (item-position model: every estimator is
  unbiased). ``reward="cascade"``: a click at slot ``j`` satisfies the user with
  probability ``satisfaction``, who then stops looking, so slot ``k`` is clicked with
  probability ``q(s, a_k, k) * prod_{j<k} (1 - satisfaction * q(s, a_j, j))`` (in
  expectation over the clicks above): the reward at ``k`` depends on the items above it
  (cascade model: iips and pi are biased, sips, rips and cascade_dr are not).

The truth ``V = E_s E_{a ~ pi(s)} [sum_k E(y_k | s, a)]`` (per list; ``/ L`` per
impression) is computed exactly by enumerating every ordered list when there are at most
``EXACT_LISTS`` of them, and otherwise by Monte Carlo over ``truth_samples`` target lists
per segment (its standard error is in ``truth_se``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import perm

import numpy as np
import pandas as pd

from causalrec.ope.plackett_luce import exact_marginals, prefix_counts

EXACT_LISTS = 200_000


@dataclass
class SlateWorld:
    """The fixed part: segments, appeal, policies' scores and the click model."""

    z: np.ndarray  # (S, A)
    logging_scores: np.ndarray  # (S, A) or (S, A, L) for independent logging (per slot)
    target_scores: np.ndarray  # (S, A)
    list_length: int
    logging: str
    reward: str
    base: float
    decay: float
    satisfaction: float

    @property
    def n_segments(self) -> int:
        return self.z.shape[0]

    @property
    def n_items(self) -> int:
        return self.z.shape[1]

    def q(self, seg: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``(n, L)`` base click probabilities of lists ``items`` shown to segments ``seg``."""
        k = np.arange(items.shape[1])
        return 1.0 / (1.0 + np.exp(-(self.base + self.z[seg[:, None], items]))) * self.decay ** k[None, :]

    def expected_clicks(self, seg: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``(n, L)`` expected clicks per slot given the whole list (the cascade integrates the clicks above)."""
        q = self.q(seg, items)
        if self.reward == "independent":
            return q
        stay = np.cumprod(1.0 - self.satisfaction * q, axis=1)
        return q * np.concatenate([np.ones((q.shape[0], 1)), stay[:, :-1]], axis=1)

    def logging_probs(self, seg: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(conditional given the items above, marginal)`` logging probabilities, ``(n, L)`` each."""
        if self.logging == "independent":
            e = _softmax(self.logging_scores[seg], axis=1)  # (n, A, L)
            p = np.take_along_axis(e, items[:, None, :], axis=1)[:, 0, :]
            return p, p
        cond = _pl_conditional(self.logging_scores[seg], items)
        marg = _pl_marginal_of(self.logging_scores, seg, items)
        return cond, marg


@dataclass
class SyntheticSlates:
    logs: pd.DataFrame
    target_scores: pd.DataFrame
    truth: dict[str, float]
    world: SlateWorld
    params: dict = field(default_factory=dict)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _pl_conditional(scores: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``(n, L)`` PL probability of each item given the items above (scores ``(n, A)``, distinct items):
    ``e_{a_k} / sum_{a not in a_1..a_{k-1}} e_a`` with ``e = exp(score - max)``."""
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    ei = np.take_along_axis(e, items, axis=1)
    # the remaining mass summed over the items not yet placed, not ``E - sum of the placed``: with a
    # peaked policy the placed items hold nearly all of ``E`` and the subtraction would cancel
    rem = np.empty(ei.shape)
    left = e.copy()
    rows = np.arange(e.shape[0])
    for k in range(items.shape[1]):  # a loop over slots, vectorised over rows
        rem[:, k] = left.sum(axis=1)
        left[rows, items[:, k]] = 0.0
    return ei / rem


def _pl_marginal_table(scores: np.ndarray, n_slots: int, batches: bool = False) -> np.ndarray:
    """``(S, A, L)`` PL marginals per segment: exact when enumerable, else 200k-sample Monte Carlo
    (with ``batches``: ``(B, S, A, L)``, one estimate per Monte Carlo batch; ``B = 1`` when exact)."""
    s, a = scores.shape
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    count = np.full(s, a)
    start = np.arange(s) * a
    if prefix_counts(a, n_slots) * a <= 5_000_000:
        ex = exact_marginals(e.ravel(), start, count, n_slots).reshape(s, a, n_slots)
        return ex[None] if batches else ex
    from causalrec.ope.plackett_luce import mc_marginals

    qs = np.repeat(np.arange(s), a * n_slots)
    qc = np.tile(np.repeat(np.arange(a), n_slots), s)
    qk = np.tile(np.arange(n_slots), s * a)
    est = mc_marginals(e.ravel(), start, count, np.arange(s, dtype=np.uint64) + 991, n_slots, 200_000, 8, qs, qc, qk)
    est = est.reshape(-1, s, a, n_slots)
    return est if batches else est.mean(axis=0)


_MARG_CACHE: dict = {}


def _pl_marginal_of(scores: np.ndarray, seg: np.ndarray, items: np.ndarray) -> np.ndarray:
    key = (scores.tobytes(), items.shape[1])
    if key not in _MARG_CACHE:
        _MARG_CACHE.clear()
        _MARG_CACHE[key] = _pl_marginal_table(scores, items.shape[1])
    tab = _MARG_CACHE[key]
    return tab[seg[:, None], items, np.arange(items.shape[1])[None, :]]


def _sample_pl(rng: np.random.Generator, scores: np.ndarray, n_slots: int) -> np.ndarray:
    """``(n, L)`` lists drawn without replacement (Gumbel-top-k) from per-row scores ``(n, A)``."""
    keys = scores + rng.gumbel(size=scores.shape)
    top = np.argpartition(-keys, n_slots - 1, axis=1)[:, :n_slots] if n_slots < scores.shape[1] else \
        np.argsort(-keys, axis=1)
    kk = np.take_along_axis(keys, top, axis=1)
    return np.take_along_axis(top, np.argsort(-kk, axis=1), axis=1)[:, :n_slots]


def draw_clicks(rng: np.random.Generator, q: np.ndarray, reward: str, satisfaction: float) -> np.ndarray:
    """``(n, L)`` int8 clicks of lists with base click probabilities ``q`` (``(n, L)``).

    ``"independent"``: ``y_k ~ Bernoulli(q_k)`` (position-based). ``"cascade"``: the user scans
    down; slot ``k`` is clicked with probability ``q_k`` while still looking, and a click
    satisfies (stops the scan) with probability ``satisfaction``, so that
    ``E y_k = q_k prod_{j<k} (1 - satisfaction q_j)`` (:meth:`SlateWorld.expected_clicks`).
    """
    if reward == "independent":
        return (rng.random(q.shape) < q).astype(np.int8)
    u, v = rng.random(q.shape), rng.random(q.shape)
    click = np.zeros(q.shape, dtype=np.int8)
    looking = np.ones(q.shape[0], dtype=bool)
    for k in range(q.shape[1]):  # a loop over slots (<= list length), vectorised over requests
        c = looking & (u[:, k] < q[:, k])
        click[:, k] = c
        looking &= ~(c & (v[:, k] < satisfaction))
    return click


def make_world(n_items: int = 8, list_length: int = 3, n_segments: int = 4, *, logging: str = "plackett-luce",
               reward: str = "cascade", logging_strength: float = 0.8, target_strength: float = 1.2,
               target_noise: float = 0.5, base: float = -1.5, decay: float = 0.8, satisfaction: float = 0.6,
               world_seed: int = 0) -> SlateWorld:
    if logging not in ("plackett-luce", "independent"):
        raise ValueError("logging must be 'plackett-luce' or 'independent'")
    if reward not in ("cascade", "independent"):
        raise ValueError("reward must be 'cascade' or 'independent'")
    if logging == "plackett-luce" and list_length > n_items:
        raise ValueError("a list without repeats cannot be longer than the catalogue")
    rng = np.random.default_rng(world_seed)
    z = rng.normal(0.0, 1.0, (n_segments, n_items))
    noisy = z + rng.normal(0.0, 0.7, z.shape)
    if logging == "independent":
        k = np.arange(list_length)
        log_scores = logging_strength * noisy[:, :, None] - 0.3 * k[None, None, :] * (noisy[:, :, None] > 0)
    else:
        log_scores = logging_strength * noisy
    tgt = target_strength * (z + rng.normal(0.0, target_noise, z.shape))
    return SlateWorld(z, log_scores, tgt, list_length, logging, reward, base, decay, satisfaction)


def true_value(world: SlateWorld, truth_samples: int = 200_000, seed: int = 12345) -> tuple[float, float, str]:
    """``(value per list, its standard error, method)`` of the Plackett-Luce target."""
    a, ell, s = world.n_items, world.list_length, world.n_segments
    if world.reward == "independent":  # sum over slots of marginal x click probability
        marg = _pl_marginal_table(world.target_scores, ell, batches=True)  # (B, S, A, L)
        k = np.arange(ell)
        q = 1.0 / (1.0 + np.exp(-(world.base + world.z)))[:, :, None] * world.decay ** k[None, None, :]
        per_batch = (marg * q[None]).sum(axis=(2, 3)).mean(axis=1)
        if per_batch.size == 1:
            return float(per_batch[0]), 0.0, "exact"
        se = float(per_batch.std(ddof=1) / np.sqrt(per_batch.size))
        return float(per_batch.mean()), se, "monte carlo marginals"
    if perm(a, ell) <= EXACT_LISTS:
        from itertools import permutations

        lists = np.array(list(permutations(range(a), ell)), dtype=np.int64)
        vals = []
        for seg in range(s):
            segs = np.full(lists.shape[0], seg)
            p = _pl_conditional(np.repeat(world.target_scores[seg][None, :], lists.shape[0], axis=0), lists).prod(1)
            vals.append(float(p @ world.expected_clicks(segs, lists).sum(axis=1)))
        return float(np.mean(vals)), 0.0, "exact"
    rng = np.random.default_rng(seed)
    per = []
    for seg in range(s):
        sc = np.repeat(world.target_scores[seg][None, :], min(truth_samples, 50_000), axis=0)
        tot = []
        for _ in range(int(np.ceil(truth_samples / sc.shape[0]))):
            lists = _sample_pl(rng, sc, ell)
            tot.append(world.expected_clicks(np.full(lists.shape[0], seg), lists).sum(axis=1))
        per.append(np.concatenate(tot))
    per = np.stack(per)
    return float(per.mean()), float(np.sqrt(per.var(axis=1, ddof=1).mean() / per.shape[1] / s)), "monte carlo"


def make_slate_logs(n_requests: int = 2000, n_items: int = 8, list_length: int = 3, n_segments: int = 4, *,
                    seed: int = 0, world_seed: int | None = None, target_keyed: bool = True,
                    expected_outcome: bool = False, world: SlateWorld | None = None,
                    truth: tuple[float, float, str] | None = None, **world_kw) -> SyntheticSlates:
    """Draw ``n_requests`` logged lists (``n_requests * list_length`` rows) from one world.

    Log columns: ``request_id, segment, position`` (0-based), ``item_id, click`` and the
    logging ``propensity`` (given the items above) and ``propensity_marginal``.
    ``target_scores``: the target's Plackett-Luce scores (``--target-kind plackett-luce``,
    temperature 1). ``truth``: ``value_per_list``, ``value_per_impression``, ``truth_se``.
    Pass ``world`` (and its ``truth``) to draw many logs of one world cheaply.
    """
    if world is None:
        world = make_world(n_items, list_length, n_segments, world_seed=seed if world_seed is None else world_seed,
                           **world_kw)
    ell, a = world.list_length, world.n_items
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, world.n_segments, n_requests)
    if world.logging == "independent":
        probs = _softmax(world.logging_scores[seg], axis=1)  # (n, A, L)
        cdf = np.cumsum(probs, axis=1)
        u = rng.random((n_requests, 1, ell))
        items = np.minimum((cdf < u).sum(axis=1), a - 1)
    else:
        items = _sample_pl(rng, world.logging_scores[seg], ell)
    cond, marg = world.logging_probs(seg, items)
    ey = world.expected_clicks(seg, items)
    q = world.q(seg, items)
    click = draw_clicks(rng, q, world.reward, world.satisfaction)
    logs = pd.DataFrame({
        "request_id": np.repeat(np.arange(n_requests), ell), "segment": np.repeat(seg, ell),
        "position": np.tile(np.arange(ell), n_requests), "item_id": items.ravel(), "click": click.ravel(),
        "propensity": cond.ravel(), "propensity_marginal": marg.ravel(),
    })
    if expected_outcome:
        logs["expected_click"] = ey.ravel()
    if target_keyed:
        target = pd.DataFrame({"request_id": np.repeat(np.arange(n_requests), a), "item_id": np.tile(np.arange(a),
                               n_requests), "score": world.target_scores[seg].ravel()})
    else:
        target = pd.DataFrame({"item_id": np.arange(a), "score": world.target_scores.mean(axis=0)})
    if truth is None:
        if target_keyed:
            truth = true_value(world)
        else:
            ctx_free = SlateWorld(world.z, world.logging_scores, np.repeat(world.target_scores.mean(0)[None, :],
                                  world.n_segments, axis=0), ell, world.logging, world.reward, world.base,
                                  world.decay, world.satisfaction)
            truth = true_value(ctx_free)
    v, se, how = truth
    return SyntheticSlates(
        logs=logs, target_scores=target,
        truth={"value_per_list": v, "value_per_impression": v / ell, "truth_se": se, "method": how},
        world=world,
        params=dict(n_requests=n_requests, n_items=a, list_length=ell, n_segments=world.n_segments, seed=seed,
                    logging=world.logging, reward=world.reward, target_keyed=target_keyed),
    )
