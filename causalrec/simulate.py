"""Text-recommendation logs with known causal truth.

Written by hand because no library simulates what causalrec is about: exposure
confounded by a user-item affinity that an analyst can see only through text.

Generative model (all of it vectorised; ``K`` topics, ``P`` slots per request)
------------------------------------------------------------------------------
Catalogue (drawn from ``catalog_seed``, so many logs can share one catalogue and
its texts):

* item ``i`` has a main topic ``g_i``; its title is a noise word followed by
  ``3`` topic words, each from topic ``g_i`` with probability ``1 - title_noise``
  and from a random topic otherwise. Its topic profile ``phi_i`` (a point of the
  simplex) is the share of its title words per topic, so ``phi_i`` is a function
  of the title text.
* user ``u`` has latent interests ``theta_u ~ Dirichlet(user_concentration)``
  and a history of ``h_u`` liked items whose topics are drawn from ``theta_u``;
  ``user_text`` is their titles joined by ``" | "`` and
  ``psi_u = mean(phi_j, j in history)`` is a function of that text.

Logs (drawn from ``seed``): requests of ``P`` candidate items for one user
(pool users, or with probability ``new_user_share`` a brand-new user; candidates
from the catalogue, or with probability ``new_item_share`` a brand-new item, so
IDs repeat little and carry almost no information).

* affinity ``a_ui = <(1 - hidden_confounding) psi_u + hidden_confounding theta_u, phi_i>``
  in ``[0, 1]``, standardised ``z = (a - 0.25) / 0.25``. With
  ``hidden_confounding = 0`` (default) the confounder is a function of the two
  texts: adjusting for the text identifies the effect (strictly, text plus the
  observed ``is_random`` flag: on the randomised slice both exposure and slots
  follow other rules, and the effect depends on the slot).
* exposure (treatment) ``T ~ Bernoulli(e)``,
  ``e = overlap + (1 - 2 overlap) * sigmoid(exposure_intercept + confounding * 1.5 * z)``;
  on the randomised slice (share ``random_share`` of requests) ``e = random_exposure``.
  ``overlap`` bounds the propensity in ``[overlap, 1 - overlap]``.
* position: the slot an item takes when exposed. Logged requests rank candidates
  by ``z`` plus Gumbel noise (plus ``logging_item_boost * b_w``, a promotion
  of the title's noise word ``w`` unrelated to relevance, also in the exposure
  logit; off by default); randomised requests shuffle them. Examination
  ``exam(p) = (1 + p) ** -position_bias``.
* relevance ``r = sigmoid(relevance_intercept + 1.5 z + q_i)`` with item quality
  ``q_i ~ N(0, quality_sd)``.
* potential outcomes (a purchase): ``y0 ~ Bernoulli(p0)`` with
  ``p0 = sigmoid(outcome_intercept + outcome_affinity * z + q_i - 0.3 log(price_i))``
  (organic purchases: users buy what they like anyway, the source of confounding);
  exposure adds a click path: ``E ~ Bern(exam)``, ``R ~ Bern(r)``, ``C ~ Bern(conversion)``,
  ``y1 = y0 or (E and R and C)``, so ``p1 = p0 + (1 - p0) exam r conversion`` and the
  effect ``tau = p1 - p0`` is heterogeneous in affinity and position.
  ``click = T E R`` and ``outcome = T y1 + (1 - T) y0``.

Text oracle: ``true_text_affinity = <psi_u, phi_i>``, the exact function of the two
texts that carries the confounding (equal to ``true_affinity`` when
``hidden_confounding = 0``; with ``hidden_confounding > 0`` only that share of the
confounder lives outside the text). :func:`text_oracle_features` recomputes
``phi`` (item title) and ``psi`` (user history) *from the text alone* with the
known topic vocabularies, i.e. the best hand-built text features: adjusting for
them bounds what any text representation can remove.

Truth: ``ate = mean(tau)`` over the logged rows (the effect expected for these
users, items and slots), ``ate_sample = mean(y1 - y0)`` (the realised one),
``att = mean(tau | T = 1)``; per-item and per-segment means of ``tau``; the
examination curve; relevance per (user, item); every knob.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.atomic import atomic_write_text, atomic_write_with
from causalrec.errors import InputError

# Topic vocabularies: plain English words so that a general-purpose sentence
# encoder places titles of one topic near each other.
TOPICS: dict[str, tuple[str, ...]] = {
    "outdoors": ("hiking", "tent", "trail", "camping", "backpack", "mountain", "lantern",
                 "compass", "sleeping bag", "climbing", "canoe", "campfire"),
    "kitchen": ("skillet", "recipe", "baking", "knife", "spatula", "oven", "espresso",
                "cookware", "blender", "pasta", "saucepan", "spices"),
    "electronics": ("laptop", "charger", "headphones", "keyboard", "monitor", "router",
                    "smartphone", "usb cable", "tablet", "processor", "webcam", "speaker"),
    "music": ("guitar", "piano", "violin", "drum kit", "vinyl record", "microphone",
              "ukulele", "sheet music", "amplifier", "saxophone", "metronome", "synthesizer"),
    "garden": ("seeds", "shovel", "flower pot", "compost", "watering can", "tulip bulbs",
               "pruning shears", "fertilizer", "greenhouse", "hose", "lawn mower", "soil"),
    "fitness": ("dumbbells", "yoga mat", "running shoes", "treadmill", "kettlebell",
                "protein powder", "resistance band", "jump rope", "gym bag", "workout",
                "stopwatch", "exercise bike"),
    "fashion": ("dress", "sneakers", "handbag", "jacket", "scarf", "sunglasses", "jeans",
                "necklace", "wool coat", "leather belt", "silk blouse", "earrings"),
    "books": ("novel", "mystery", "poetry", "biography", "paperback", "fantasy saga",
              "history book", "cookbook", "thriller", "bookmark", "short stories", "memoir"),
    "pets": ("dog leash", "cat toy", "aquarium", "bird cage", "pet bed", "kibble",
             "litter box", "chew bone", "dog collar", "hamster wheel", "fish food", "scratching post"),
    "travel": ("suitcase", "passport holder", "travel pillow", "luggage tag", "guidebook",
               "carry-on", "map", "adapter plug", "duffel", "packing cubes", "neck wallet", "itinerary"),
}
NOISE_WORDS: tuple[str, ...] = (
    "classic", "deluxe", "premium", "essential", "compact", "limited edition", "new",
    "original", "everyday", "pro", "lightweight", "vintage", "modern", "basic", "signature",
    "ultra", "value pack", "standard", "portable", "refurbished",
)
WORDS_PER_TITLE = 3
WORDS_PER_DESCRIPTION = 6


@dataclass
class SimulatedLogs:
    """Output of :func:`simulate_logs`.

    ``logs``: one row per (request, candidate item); ``items`` and ``users``:
    the catalogues (every item / user that appears); ``truth``: the causal
    truth and the knobs (JSON-safe except the DataFrames under
    ``item_uplift``, ``segment_uplift`` and ``relevance``).
    """

    logs: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    truth: dict[str, Any] = field(default_factory=dict)

    #: columns an analyst must not use (they hold the truth)
    TRUTH_COLUMNS = ("y0", "y1", "p_y0", "p_y1", "true_uplift", "true_relevance",
                     "true_affinity", "true_text_affinity", "true_examination")

    def observed(self) -> pd.DataFrame:
        """The log without the truth columns: what an analyst would get."""
        return self.logs.drop(columns=[c for c in self.TRUTH_COLUMNS if c in self.logs.columns])

    def truth_json(self) -> dict[str, Any]:
        """``truth`` with tables as lists of records (the contents of truth.json)."""
        out: dict[str, Any] = {}
        for k, v in self.truth.items():
            if isinstance(v, pd.DataFrame):
                if k == "relevance":
                    out[k] = {"file": "relevance.csv", "rows": len(v)}
                else:
                    out[k] = v.to_dict(orient="records")
            else:
                out[k] = v
        return out

    def write(self, directory: str | os.PathLike, formats: tuple[str, ...] = ("parquet",)) -> Path:
        """Write logs (``logs.parquet`` and/or ``logs.csv``), ``items.csv``,
        ``users.csv``, ``relevance.csv`` and ``truth.json``, each atomically."""
        from causalrec.results import jsonable

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        bad = set(formats) - {"parquet", "csv"}
        if bad or not formats:
            raise InputError(f"unknown log format(s) {sorted(bad) or formats}", column="formats",
                             fix="use 'parquet', 'csv' or both")
        if "parquet" in formats:
            atomic_write_with(d / "logs.parquet", lambda p: self.logs.to_parquet(p, index=False))
        if "csv" in formats:
            atomic_write_with(d / "logs.csv", lambda p: self.logs.to_csv(p, index=False))
        atomic_write_with(d / "items.csv", lambda p: self.items.to_csv(p, index=False))
        atomic_write_with(d / "users.csv", lambda p: self.users.to_csv(p, index=False))
        rel = self.truth.get("relevance")
        if isinstance(rel, pd.DataFrame):
            atomic_write_with(d / "relevance.csv", lambda p: rel.to_csv(p, index=False))
        atomic_write_text(d / "truth.json", json.dumps(jsonable(self.truth_json()), indent=2) + "\n")
        return d


def _phrase_pattern(n_topics: int):
    import re

    names = list(TOPICS)[:n_topics]
    phrases = sorted({w for t in names for w in TOPICS[t]}, key=len, reverse=True)
    topic_of = {w: k for k, t in enumerate(names) for w in TOPICS[t]}
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in phrases) + r")\b"), topic_of


def title_topic_shares(titles, n_topics: int = 8) -> np.ndarray:
    """``phi``: share of each title's topic words per topic, ``(n, n_topics)``, from the text.

    Topic words are matched as whole phrases of the known vocabularies (longest
    first); noise words match none. Each unique title is parsed once.
    """
    pat, topic_of = _phrase_pattern(n_topics)
    s = pd.Series(np.asarray(titles, dtype=object)).astype(str)
    codes, uniq = pd.factorize(s)
    found = pd.Series(uniq).str.findall(pat).explode().dropna()
    out = np.zeros((len(uniq), n_topics))
    if len(found):
        np.add.at(out, (found.index.to_numpy(), found.map(topic_of).to_numpy(dtype=np.int64)), 1.0)
    out /= np.maximum(out.sum(axis=1, keepdims=True), 1.0)
    return out[codes]


def text_oracle_features(user_text, item_text, *, n_topics: int = 8, sep: str = " | ") -> dict[str, np.ndarray]:
    """The simulator's confounder recomputed from the texts with the known vocabulary.

    Returns ``phi`` (item topic shares), ``psi`` (mean of the history titles'
    shares) and ``affinity = <psi, phi>`` per row. On simulated logs
    ``affinity`` equals the ``true_text_affinity`` truth column (to rounding).
    """
    from causalrec.features.history import split_history

    phi = title_topic_shares(item_text, n_topics)
    hist = split_history(user_text, sep, column="user_text")
    shares = title_topic_shares(hist.texts, n_topics)
    psi = np.zeros((hist.n_rows, n_topics))
    np.add.at(psi, hist.row, shares[hist.item])
    psi /= np.maximum(hist.lengths, 1)[:, None]
    return {"phi": phi, "psi": psi, "affinity": (psi * phi).sum(axis=1)}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick_by_probs(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows sum to 1), by inverse CDF."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((u > cdf).sum(axis=1), probs.shape[1] - 1)


def _pick_item_of_topic(rng: np.random.Generator, topics: np.ndarray, item_topic: np.ndarray) -> np.ndarray:
    """A uniformly random catalogue item of each requested topic (any item if the topic is empty)."""
    if topics.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(item_topic, kind="stable")
    sorted_topics = item_topic[order]
    k = int(max(item_topic.max(), topics.max())) + 1
    start = np.searchsorted(sorted_topics, np.arange(k), side="left")
    stop = np.searchsorted(sorted_topics, np.arange(k), side="right")
    size = (stop - start)[topics]
    u = rng.random(topics.shape[0])
    idx = start[topics] + np.floor(u * np.maximum(size, 1)).astype(np.int64)
    anyitem = rng.integers(0, item_topic.shape[0], topics.shape[0])
    return np.where(size > 0, order[np.minimum(idx, item_topic.shape[0] - 1)], anyitem)


def _join_words(words: list[np.ndarray]) -> np.ndarray:
    out = words[0].astype(object)
    for w in words[1:]:
        out = out + " " + w.astype(object)
    return out


def _make_items(rng: np.random.Generator, n: int, n_topics: int, title_noise: float,
                quality_sd: float, prefix: str, start: int = 0) -> dict[str, np.ndarray]:
    names = list(TOPICS)[:n_topics]
    vocab = np.array([TOPICS[t] for t in names], dtype=object)  # (K, V)
    noise = np.array(NOISE_WORDS, dtype=object)
    topic_pop = rng.dirichlet(np.full(n_topics, 5.0))
    main = rng.choice(n_topics, size=n, p=topic_pop)

    def words(m: int) -> tuple[np.ndarray, np.ndarray]:
        off = rng.random((n, m)) < title_noise
        tp = np.where(off, rng.integers(0, n_topics, (n, m)), main[:, None])
        w = vocab[tp, rng.integers(0, vocab.shape[1], (n, m))]
        return tp, w

    title_topics, title_words = words(WORDS_PER_TITLE)
    _, desc_words = words(WORDS_PER_DESCRIPTION)
    phi = np.zeros((n, n_topics))
    np.add.at(phi, (np.repeat(np.arange(n), WORDS_PER_TITLE), title_topics.ravel()), 1.0)
    phi /= WORDS_PER_TITLE
    noise_index = rng.integers(0, len(noise), n)
    title = _join_words([noise[noise_index]] + [title_words[:, j] for j in range(WORDS_PER_TITLE)])
    desc = _join_words([desc_words[:, j] for j in range(WORDS_PER_DESCRIPTION)])
    desc = "a " + noise[rng.integers(0, len(noise), n)] + " pick: " + desc
    ids = np.array([f"{prefix}{i:05d}" for i in range(start, start + n)], dtype=object)
    return {
        "item_id": ids, "title": title, "description": desc, "noise_index": noise_index,
        "topic": np.array(names, dtype=object)[main], "topic_index": main, "phi": phi,
        "quality": rng.normal(0.0, quality_sd, n),
        "price": np.round(np.exp(rng.normal(3.0, 0.6, n)), 2),
    }


def _make_users(rng: np.random.Generator, n: int, n_topics: int, items: dict[str, np.ndarray],
                history_length: tuple[int, int], concentration: float, prefix: str) -> dict[str, np.ndarray]:
    lo, hi = history_length
    theta = rng.dirichlet(np.full(n_topics, concentration), size=n)
    h = rng.integers(lo, hi + 1, n)
    hist_topics = np.stack([_pick_by_probs(rng, theta) for _ in range(hi)], axis=1)  # (n, hi), hi is small
    if n == 0:
        hist_topics = np.zeros((0, hi), dtype=np.int64)
    hist_items = _pick_item_of_topic(rng, hist_topics.ravel(), items["topic_index"]).reshape(n, hi)
    mask = np.arange(hi)[None, :] < h[:, None]
    psi = (items["phi"][hist_items] * mask[:, :, None]).sum(axis=1) / h[:, None]
    titles = items["title"][hist_items]
    text = titles[:, 0].astype(object)
    for j in range(1, hi):
        text = np.where(mask[:, j], text + " | " + titles[:, j], text)
    names = np.array(list(TOPICS)[:n_topics], dtype=object)
    ids = np.array([f"{prefix}{i:05d}" for i in range(n)], dtype=object)
    return {"user_id": ids, "history": text, "theta": theta, "psi": psi, "history_len": h,
            "segment": names[psi.argmax(axis=1)]}


def _concat(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _check(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> None:
    bad = (value <= lo if lo_open else value < lo) or (value >= hi if hi_open else value > hi)
    if bad or not np.isfinite(value):
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise InputError(f"{name} must lie in {lb}{lo}, {hi}{rb}, got {value!r}", column=name,
                         fix=f"pass a value of {name} in {lb}{lo}, {hi}{rb}")


def simulate_logs(
    n_rows: int = 20000,
    seed: int = 0,
    *,
    n_users: int = 3000,
    n_items: int = 600,
    n_topics: int = 8,
    n_positions: int = 5,
    confounding: float = 1.0,
    overlap: float = 0.05,
    hidden_confounding: float = 0.0,
    new_user_share: float = 0.1,
    new_item_share: float = 0.05,
    random_share: float = 0.1,
    random_exposure: float = 0.5,
    position_bias: float = 1.0,
    targeted_share: float = 0.5,
    history_length: tuple[int, int] = (2, 6),
    user_concentration: float = 0.3,
    title_noise: float = 0.15,
    quality_sd: float = 0.3,
    exposure_intercept: float = -0.5,
    outcome_intercept: float = -1.0,
    outcome_affinity: float = 1.0,
    relevance_intercept: float = -0.5,
    conversion: float = 0.6,
    logging_item_boost: float = 0.0,
    catalog_seed: int | None = None,
) -> SimulatedLogs:
    """Simulate text-recommendation logs with known potential outcomes.

    See the module docstring for the model. ``confounding`` scales how much the
    logging recommender's exposure follows the affinity (0: exposure unrelated
    to it, naive difference unbiased); ``overlap`` bounds the propensity in
    ``[overlap, 1 - overlap]``; ``hidden_confounding`` in [0, 1] mixes latent
    interests not visible in the text into the affinity (0: the text carries the
    whole confounder). ``catalog_seed`` (default: ``seed``) draws the catalogue
    and user pool, so runs with different ``seed`` and one ``catalog_seed``
    share texts (and embedding caches). ``logging_item_boost`` (default 0: off)
    makes the logging recommender promote items for a reason unrelated to
    relevance: each title's leading noise word (``"premium"``, ``"classic"``...)
    gets a boost ``b_w ~ N(0, 1)`` (drawn from its own stream, so the default
    leaves every other draw unchanged), and on logged requests
    ``logging_item_boost * b_w`` is added to both the exposure logit and the
    ranking score. The logged propensity includes it; relevance does not, so
    boosted items collect more clicks (exposed more, at better slots) without
    being more relevant -- what naive click training learns and corrected
    training must not.
    """
    n_rows = int(n_rows)
    if n_rows < 1:
        raise InputError(f"n_rows must be >= 1, got {n_rows}", column="n_rows", fix="ask for at least one row")
    if not 1 <= n_topics <= len(TOPICS):
        raise InputError(f"n_topics must be in 1..{len(TOPICS)}, got {n_topics}", column="n_topics",
                         fix=f"the simulator has {len(TOPICS)} topic vocabularies")
    for name, lo in (("n_users", 1), ("n_items", 1), ("n_positions", 1)):
        if int(locals()[name]) < lo:
            raise InputError(f"{name} must be >= {lo}", column=name, fix=f"pass a positive {name}")
    _check("overlap", overlap, 0.0, 0.5, hi_open=True)
    _check("confounding", confounding, 0.0, np.inf, hi_open=True)
    for name in ("hidden_confounding", "new_user_share", "new_item_share", "random_share",
                 "targeted_share", "title_noise", "conversion"):
        _check(name, float(locals()[name]), 0.0, 1.0)
    _check("random_exposure", random_exposure, 0.0, 1.0, lo_open=True, hi_open=True)
    _check("position_bias", position_bias, 0.0, np.inf, hi_open=True)
    _check("logging_item_boost", logging_item_boost, 0.0, np.inf, hi_open=True)
    if history_length[0] < 1 or history_length[1] < history_length[0]:
        raise InputError(f"history_length must be (lo, hi) with 1 <= lo <= hi, got {history_length}",
                         column="history_length", fix="e.g. history_length=(2, 6)")

    knobs = {k: v for k, v in locals().items() if k not in ("name", "lo")}
    knobs["history_length"] = list(history_length)
    cat_rng = np.random.default_rng(seed if catalog_seed is None else catalog_seed)
    rng = np.random.default_rng([int(seed), 1])

    items = _make_items(cat_rng, n_items, n_topics, title_noise, quality_sd, "i")
    users = _make_users(cat_rng, n_users, n_topics, items, history_length, user_concentration, "u")

    P = int(n_positions)
    n_req = -(-n_rows // P)
    n_all = n_req * P

    # users per request: pool users, or brand-new users (unique IDs, drawn from ``seed``)
    is_new_user_req = rng.random(n_req) < new_user_share
    n_new_users = int(is_new_user_req.sum())
    new_users = _make_users(rng, n_new_users, n_topics, items, history_length, user_concentration, f"u{seed}n")
    all_users = _concat(users, new_users)
    req_user = np.where(is_new_user_req, n_users + np.cumsum(is_new_user_req) - 1,
                        rng.integers(0, n_users, n_req))
    row_user = np.repeat(req_user, P)

    # candidates: half targeted at the user's (visible) topics, the rest random, some brand-new items
    targeted = rng.random(n_all) < targeted_share
    topic_draw = _pick_by_probs(rng, all_users["psi"][row_user])
    cand = np.where(targeted, _pick_item_of_topic(rng, topic_draw, items["topic_index"]),
                    rng.integers(0, n_items, n_all))
    is_new_item = rng.random(n_all) < new_item_share
    n_new_items = int(is_new_item.sum())
    new_items = _make_items(rng, n_new_items, n_topics, title_noise, quality_sd, f"i{seed}n")
    all_items = _concat({k: v for k, v in items.items()}, new_items)
    row_item = np.where(is_new_item, n_items + np.cumsum(is_new_item) - 1, cand)

    phi = all_items["phi"][row_item]
    profile = ((1.0 - hidden_confounding) * all_users["psi"][row_user]
               + hidden_confounding * all_users["theta"][row_user])
    affinity = (profile * phi).sum(axis=1)
    text_affinity = (all_users["psi"][row_user] * phi).sum(axis=1)
    z = (affinity - 0.25) / 0.25
    q = all_items["quality"][row_item]

    is_random_req = rng.random(n_req) < random_share
    is_random = np.repeat(is_random_req, P)
    boost = np.zeros(n_all)
    if logging_item_boost > 0:
        # a separate stream: switching the knob on changes no other draw of the simulation
        word_boost = np.random.default_rng([int(seed), 2]).normal(0.0, 1.0, len(NOISE_WORDS))
        boost = logging_item_boost * word_boost[all_items["noise_index"][row_item]]
    e_log = overlap + (1.0 - 2.0 * overlap) * _sigmoid(exposure_intercept + confounding * 1.5 * z + boost)
    propensity = np.where(is_random, random_exposure, e_log)
    treatment = (rng.random(n_all) < propensity).astype(np.int8)

    # slots: logged requests rank by affinity + Gumbel noise, randomised ones shuffle
    score = np.where(is_random, 0.0, z + boost) + rng.gumbel(size=n_all)
    order = np.argsort(-score.reshape(n_req, P), axis=1)
    position = np.argsort(order, axis=1).ravel().astype(np.int64)
    exam = (1.0 + position) ** (-position_bias)
    exam_curve = (1.0 + np.arange(P)) ** (-position_bias)

    relevance = _sigmoid(relevance_intercept + 1.5 * z + q)
    price = all_items["price"][row_item]
    p0 = _sigmoid(outcome_intercept + outcome_affinity * z + q - 0.3 * np.log(price))
    p1 = p0 + (1.0 - p0) * exam * relevance * conversion
    y0 = (rng.random(n_all) < p0).astype(np.int8)
    examined = rng.random(n_all) < exam
    relevant = rng.random(n_all) < relevance
    converted = rng.random(n_all) < conversion
    y1 = (y0.astype(bool) | (examined & relevant & converted)).astype(np.int8)
    click = (treatment.astype(bool) & examined & relevant).astype(np.int8)
    outcome = np.where(treatment == 1, y1, y0).astype(np.int8)
    tau = p1 - p0

    request_ids = np.repeat(np.array([f"r{seed}_{k:06d}" for k in range(n_req)], dtype=object), P)
    logs = pd.DataFrame({
        "request_id": request_ids,
        "user_id": all_users["user_id"][row_user],
        "item_id": all_items["item_id"][row_item],
        "position": position,
        "treatment": treatment,
        "outcome": outcome,
        "click": click,
        "propensity": propensity,
        "is_random": is_random.astype(np.int8),
        "user_text": all_users["history"][row_user],
        "item_text": all_items["title"][row_item],
        "user_segment": all_users["segment"][row_user],
        "user_history_len": all_users["history_len"][row_user].astype(np.int64),
        "item_price": price,
        "user_is_new": np.repeat(is_new_user_req, P).astype(np.int8),
        "item_is_new": is_new_item.astype(np.int8),
        "y0": y0, "y1": y1, "p_y0": p0, "p_y1": p1, "true_uplift": tau,
        "true_relevance": relevance, "true_affinity": affinity,
        "true_text_affinity": text_affinity, "true_examination": exam,
    }).iloc[:n_rows].reset_index(drop=True)
    for c in ("request_id", "user_id", "item_id", "user_text", "item_text", "user_segment"):
        logs[c] = logs[c].astype(str)

    used_items = pd.unique(logs["item_id"])
    item_idx = pd.Index(all_items["item_id"]).get_indexer(used_items)
    items_df = pd.DataFrame({
        "item_id": all_items["item_id"][item_idx].astype(str),
        "title": all_items["title"][item_idx].astype(str),
        "description": all_items["description"][item_idx].astype(str),
        "topic": all_items["topic"][item_idx].astype(str),
        "price": all_items["price"][item_idx],
    }).sort_values("item_id", kind="stable").reset_index(drop=True)
    used_users = pd.unique(logs["user_id"])
    user_idx = pd.Index(all_users["user_id"]).get_indexer(used_users)
    users_df = pd.DataFrame({
        "user_id": all_users["user_id"][user_idx].astype(str),
        "history": all_users["history"][user_idx].astype(str),
        "segment": all_users["segment"][user_idx].astype(str),
        "history_len": all_users["history_len"][user_idx].astype(np.int64),
    }).sort_values("user_id", kind="stable").reset_index(drop=True)

    t = logs["treatment"].to_numpy() == 1
    tau_rows = logs["true_uplift"].to_numpy()
    item_uplift = (logs.groupby("item_id", sort=True)
                   .agg(uplift=("true_uplift", "mean"), n=("true_uplift", "size")).reset_index())
    segment_uplift = (logs.groupby("user_segment", sort=True)
                      .agg(uplift=("true_uplift", "mean"), n=("true_uplift", "size")).reset_index())
    relevance_df = (logs[["user_id", "item_id", "true_relevance"]]
                    .drop_duplicates(["user_id", "item_id"]).rename(columns={"true_relevance": "relevance"})
                    .reset_index(drop=True))
    y = logs["outcome"].to_numpy(dtype=float)
    rnd = logs["is_random"].to_numpy() == 1
    truth: dict[str, Any] = {
        "ate": float(tau_rows.mean()),
        "ate_sample": float((logs["y1"] - logs["y0"]).mean()),
        "att": float(tau_rows[t].mean()) if t.any() else float("nan"),
        "att_sample": float((logs["y1"] - logs["y0"]).to_numpy()[t].mean()) if t.any() else float("nan"),
        "ate_random_slice": float(tau_rows[rnd].mean()) if rnd.any() else float("nan"),
        "naive_difference": float(y[t].mean() - y[~t].mean()) if t.any() and (~t).any() else float("nan"),
        "treated_share": float(t.mean()),
        "propensity_min": float(logs["propensity"].min()),
        "propensity_max": float(logs["propensity"].max()),
        "examination": [float(v) for v in exam_curve],
        "estimand_note": "ate = mean over logged rows of p_y1 - p_y0 (expected effect of exposing "
                         "these items to these users at these slots); ate_sample = mean(y1 - y0)",
        "outcome": "purchase (binary); click = exposed and examined and relevant",
        "treatment": "exposed (recommended) by the logging recommender",
        "n_rows": int(len(logs)),
        "n_users": int(len(users_df)),
        "n_items": int(len(items_df)),
        "knobs": knobs,
        "item_uplift": item_uplift,
        "segment_uplift": segment_uplift,
        "relevance": relevance_df,
    }
    return SimulatedLogs(logs=logs, items=items_df, users=users_df, truth=truth)
