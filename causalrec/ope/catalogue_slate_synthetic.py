"""Synthetic ranked-list logs over a large text catalogue, with an exactly known target value.

It joins the two simulators: the items, topics and titles of
:mod:`causalrec.ope.catalogue_synthetic` (``make_titles``) and the lists, click models and
Plackett-Luce pieces of :mod:`causalrec.ope.slate_synthetic` (``SlateWorld``,
``_sample_pl``, ``_pl_conditional``, ``draw_clicks``).

World (``world_seed``): ``n_items`` items, each of one of ``n_topics`` topics (round robin),
with a title written from its topic's vocabulary; ``n_segments`` user segments. The appeal of
item ``a`` to segment ``s`` is

    ``z[s, a] = u[t(a)] + w[s, t(a)] + v[a]``,  ``u ~ N(0, topic_sd^2)``,
    ``w ~ N(0, segment_sd^2)``, ``v ~ N(0, item_sd^2)``,

so the reward depends on the item mostly, not only, through its title's topic ``t(a)``
(``v`` is the item-level residual the text does not show). Slot ``k`` (0-based) has base click
probability ``q(s, a, k) = sigmoid(base + z[s, a]) * decay^k``; clicks are position-based
(``reward="independent"``, ``E y_k = q_k``) or a cascade (``reward="cascade"``: a click
satisfies with probability ``satisfaction`` and the user stops, so
``E y_k = q_k prod_{j<k} (1 - satisfaction q_j)``).

Target: the per-segment scores ``t[s, a] = u[t(a)] + w[s, t(a)] + target_noise * e[s, a]``
(it leans to the segment's good topics; with the default ``target_noise = 2`` its own item-level
preferences weigh more), written per request as
``request_id, item_id, score`` and ranked deterministically (``--target-kind topk``): request
``r`` of segment ``s_r`` is shown ``l_s`` = the ``L`` highest-scored items in decreasing
score (scores are continuous, so no ties). Its value is therefore EXACT, in closed form:

    ``V = (1 / S) sum_s sum_k E(y_k | s, l_s)``  (per list; ``V / L`` per impression),

``O(S * L)`` work (``value_given_requests`` is the same average over the logged requests'
segments instead of the uniform segment law). A Plackett-Luce target would need a Monte Carlo
truth: its value sums over all ``A! / (A - L)!`` ordered lists (``3.2e16`` for ``A = 2000,
L = 5``), and under the cascade the reward at slot ``k`` depends on the items above, so it
does not reduce to per-slot marginals (and even those marginals are a Monte Carlo estimate
beyond small catalogues); only sampled lists, with their own standard error, are feasible
(as :func:`causalrec.ope.slate_synthetic.true_value` does).

Logging policy: Plackett-Luce over the whole catalogue with per-request scores
``logging_strength * (t[s_r, a] + request_noise * n[r, a])`` (``n ~ N(0, 1)`` fresh per request),
drawn without replacement by Gumbel-top-``L``. The logged ``propensity`` is the exact PL
conditional of the logged item given the items above,
``exp(g_{r, a_k}) / (sum_a exp(g_{r, a}) - sum_{j<k} exp(g_{r, a_j}))``. The ``requests x items``
score matrix is built about ``CHUNK_CELLS`` cells at a time (a chunking fixed by ``n_items``, so a
log depends only on its seeds and sizes).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from causalrec.data.atomic import atomic_write_text, atomic_write_with
from causalrec.errors import InputError
from causalrec.ope.catalogue_synthetic import TOPICS, make_titles
from causalrec.ope.slate_synthetic import SlateWorld, _pl_conditional, _sample_pl, draw_clicks

CHUNK_CELLS = 4_000_000  # request x item scores held at once (32 MB in float64)


@dataclass
class CatalogueSlates:
    logs: pd.DataFrame  # request_id, segment, position, item_id, click, propensity
    catalogue: pd.DataFrame  # item_id, title, topic
    target: pd.DataFrame  # request_id, item_id, score (rank with --target-kind topk)
    truth: dict
    world: SlateWorld  # z, target scores per segment and the click model
    target_lists: np.ndarray  # (S, L) the target's list per segment
    topic: np.ndarray
    params: dict = field(default_factory=dict)
    logging_scores: np.ndarray | None = None  # (n_requests, A) PL logging scores, with keep_logging_scores

    def write(self, directory: str | os.PathLike, formats: tuple[str, ...] = ("parquet",)) -> dict[str, Path]:
        """Write ``logs.<fmt>`` (each of ``formats``), ``catalogue.csv``, ``target.<fmt>`` (the first
        format: the score table has ``requests x items`` rows) and ``truth.json``, each atomically;
        returns the paths by name."""
        from causalrec.results import jsonable

        bad = set(formats) - {"parquet", "csv"}
        if bad or not formats:
            raise InputError(f"unknown log format(s) {sorted(bad) or formats}", column="formats",
                             fix="use 'parquet', 'csv' or both")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)

        def put(df: pd.DataFrame, path: Path) -> Path:
            if path.suffix == ".parquet":
                return atomic_write_with(path, lambda p: df.to_parquet(p, index=False))
            return atomic_write_with(path, lambda p: df.to_csv(p, index=False))

        out = {f"logs_{fmt}": put(self.logs, d / f"logs.{fmt}") for fmt in formats}
        out["logs"] = out[f"logs_{formats[0]}"]
        out["catalogue"] = put(self.catalogue, d / "catalogue.csv")
        out["target"] = put(self.target, d / f"target.{formats[0]}")
        info = {**self.truth, "params": self.params, "target_lists": self.target_lists,
                "files": {k: p.name for k, p in out.items()}}
        out["truth"] = atomic_write_text(d / "truth.json", json.dumps(jsonable(info), indent=2) + "\n")
        return out


def _target_lists(scores: np.ndarray, n_slots: int) -> np.ndarray:
    """``(S, L)`` the ``L`` highest-scored items of each row, in decreasing score."""
    top = np.argpartition(-scores, n_slots - 1, axis=1)[:, :n_slots] if n_slots < scores.shape[1] else \
        np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)


def make_catalogue_slate_logs(n_requests: int = 5_000, n_items: int = 2_000, list_length: int = 5,
                              n_topics: int = 20, n_segments: int = 8, *, topic_sd: float = 1.0,
                              segment_sd: float = 0.5, item_sd: float = 0.3, base: float = -1.5,
                              decay: float = 0.8, satisfaction: float = 0.6, reward: str = "cascade",
                              logging_strength: float = 4.0, request_noise: float = 0.2,
                              target_noise: float = 2.0, seed: int = 0, world_seed: int | None = None,
                              expected_outcome: bool = False, keep_logging_scores: bool = False) -> CatalogueSlates:
    """Draw ``n_requests`` logged lists (``n_requests * list_length`` rows) over a text catalogue.

    ``world_seed`` (default ``seed``) fixes items, titles, appeal and the target; ``seed`` the
    requests, logged lists and clicks. ``truth``: ``value_per_list``, ``value_per_impression``
    (exact population values of the topk target), ``value_given_requests`` (per list, averaged
    over the logged requests' segments), ``truth_se`` (0) and ``method`` (``"exact"``).
    ``keep_logging_scores`` keeps the ``requests x items`` logging scores (for checks on small cases).
    """
    if not 1 <= n_topics <= len(TOPICS):
        raise ValueError(f"n_topics must be in 1..{len(TOPICS)}")
    if not 1 <= list_length <= n_items:
        raise ValueError("list_length must be in 1..n_items (a list has no repeats)")
    if reward not in ("cascade", "independent"):
        raise ValueError("reward must be 'cascade' or 'independent'")
    if n_requests < 1 or n_segments < 1:
        raise ValueError("n_requests and n_segments must be >= 1")
    wrng = np.random.default_rng(seed if world_seed is None else world_seed)
    names = list(TOPICS)[:n_topics]
    topic = wrng.permutation(np.arange(n_items) % n_topics)
    titles = make_titles(topic, names, wrng)
    u = wrng.normal(0.0, topic_sd, n_topics)
    w = wrng.normal(0.0, segment_sd, (n_segments, n_topics))
    v = wrng.normal(0.0, item_sd, n_items)
    by_topic = u[None, topic] + w[:, topic]  # (S, A): what the title's topic says
    z = by_topic + v[None, :]
    tgt = by_topic + target_noise * wrng.normal(0.0, 1.0, by_topic.shape)
    # logging_scores: the segment-level part of the logging scores (the per-request noise is drawn below)
    world = SlateWorld(z, logging_strength * tgt, tgt, list_length, "plackett-luce", reward, base, decay,
                       satisfaction)
    lists = _target_lists(tgt, list_length)
    per_segment = world.expected_clicks(np.arange(n_segments), lists).sum(axis=1)  # (S,) exact, closed form

    rng = np.random.default_rng([seed, 104729])
    seg = rng.integers(0, n_segments, n_requests)
    items = np.empty((n_requests, list_length), dtype=np.int64)
    prop = np.empty((n_requests, list_length))
    kept = np.empty((n_requests, n_items)) if keep_logging_scores else None
    step = max(1, CHUNK_CELLS // n_items)
    for lo in range(0, n_requests, step):  # chunks of requests, vectorised within
        hi = min(lo + step, n_requests)
        g = logging_strength * (tgt[seg[lo:hi]] + request_noise * rng.normal(0.0, 1.0, (hi - lo, n_items)))
        items[lo:hi] = _sample_pl(rng, g, list_length)
        prop[lo:hi] = _pl_conditional(g, items[lo:hi])
        if kept is not None:
            kept[lo:hi] = g
    q = world.q(seg, items)
    click = draw_clicks(rng, q, reward, satisfaction)
    logs = pd.DataFrame({
        "request_id": np.repeat(np.arange(n_requests), list_length), "segment": np.repeat(seg, list_length),
        "position": np.tile(np.arange(list_length), n_requests), "item_id": items.ravel(),
        "click": click.ravel(), "propensity": prop.ravel(),
    })
    if expected_outcome:
        logs["expected_click"] = world.expected_clicks(seg, items).ravel()
    target = pd.DataFrame({"request_id": np.repeat(np.arange(n_requests), n_items),
                           "item_id": np.tile(np.arange(n_items), n_requests), "score": tgt[seg].ravel()})
    catalogue = pd.DataFrame({"item_id": np.arange(n_items), "title": titles,
                              "topic": np.array(names, dtype=object)[topic]})
    value = float(per_segment.mean())
    truth = {"value_per_list": value, "value_per_impression": value / list_length,
             "value_given_requests": float(per_segment[seg].mean()), "truth_se": 0.0, "method": "exact",
             "target_kind": "topk"}
    return CatalogueSlates(
        logs=logs, catalogue=catalogue, target=target, truth=truth, world=world, target_lists=lists, topic=topic,
        logging_scores=kept,
        params=dict(n_requests=n_requests, n_items=n_items, list_length=list_length, n_topics=n_topics,
                    n_segments=n_segments, topic_sd=topic_sd, segment_sd=segment_sd, item_sd=item_sd, base=base,
                    decay=decay, satisfaction=satisfaction, reward=reward, logging_strength=logging_strength,
                    request_noise=request_noise, target_noise=target_noise, seed=seed, world_seed=world_seed))


__all__ = ["make_catalogue_slate_logs", "CatalogueSlates"]
