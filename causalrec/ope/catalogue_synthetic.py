"""Synthetic large-catalogue logs with text titles and an exactly known target value.

World (``world_seed``): ``n_items`` items, each of one of ``n_topics`` topics (round robin,
so every topic has items). An item's title is written from its topic's vocabulary
(``"<adjective> <topic noun> <topic noun> for <audience>"``, adjectives and audiences shared
by all topics), so a sentence encoder places titles of one topic together and k-means of
the vectors recovers the topics approximately (not exactly: that is the point of
choosing ``K`` from the data).

Click probability ``q(a) = sigmoid(b0 + u_topic(a) + v_a)``, ``u ~ N(0, topic_sd^2)``,
``v ~ N(0, item_sd^2)``: the reward goes mostly, not only, through the topic.

Logging policy ``pi_0(a) = softmax(logging_strength * g_a)`` with item-level scores ``g``;
target ``pi_e(a) = softmax(target_strength * (u_topic(a) / topic_sd + s_a))`` (it prefers good
topics, with its own item-level scores ``s``). Both are context-free tables; the value is
``V = sum_a pi_e(a) q(a)`` exactly. The log (``seed``): ``n_rows`` rows, one impression per
request, ``a ~ pi_0``, ``y ~ Bernoulli(q(a))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

TOPICS = {
    "running": "running shoes sneakers trainers marathon jogging treadmill racing spikes",
    "coffee": "coffee espresso beans grinder latte roast barista cappuccino",
    "jazz": "jazz saxophone trumpet bebop swing quartet improvisation vinyl",
    "gardening": "garden seeds compost shovel planter tomatoes pruning watering",
    "camping": "tent sleeping-bag campfire lantern hiking backpack trail compass",
    "laptops": "laptop notebook processor keyboard ssd ultrabook charger screen",
    "baking": "baking flour oven sourdough cake pastry whisk muffin",
    "yoga": "yoga mat meditation stretching pilates breathing flexibility blocks",
    "fishing": "fishing rod reel bait lure tackle angler trout",
    "photography": "camera lens tripod photography shutter zoom portrait flash",
    "skincare": "moisturizer serum sunscreen cleanser lotion skincare facial cream",
    "cycling": "bicycle cycling helmet pedals saddle gears mountain-bike handlebar",
    "tea": "tea green-tea oolong teapot matcha herbal chamomile infuser",
    "gaming": "video-game console controller joystick multiplayer esports gamepad arcade",
    "astronomy": "telescope astronomy planets stars galaxy stargazing moon nebula",
    "knitting": "knitting yarn wool needles crochet sweater scarf pattern",
    "dogs": "dog puppy leash collar kibble chew-toy kennel grooming",
    "wine": "wine merlot vineyard sommelier corkscrew chardonnay decanter cabernet",
    "chess": "chess chessboard grandmaster opening checkmate pawns bishop strategy",
    "surfing": "surfboard surfing waves wetsuit beach paddle longboard ocean",
    "piano": "piano keyboard sheet-music sonata pianist chords grand-piano etudes",
    "football": "football soccer ball goalkeeper cleats stadium jersey penalty",
    "bees": "beekeeping honey hive beeswax pollen honeycomb apiary queen-bee",
    "watches": "wristwatch chronograph watch strap dial quartz automatic-watch bezel",
}
ADJECTIVES = "classic premium new essential compact deluxe everyday pro vintage handy".split()
AUDIENCES = "beginners experts kids families travelers professionals everyone students".split()


@dataclass
class CatalogueLogs:
    logs: pd.DataFrame
    catalogue: pd.DataFrame
    target: pd.DataFrame
    logging: pd.DataFrame
    truth: float
    q: np.ndarray
    topic: np.ndarray
    params: dict = field(default_factory=dict)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def make_titles(topic: np.ndarray, names: list[str], rng: np.random.Generator) -> np.ndarray:
    """One title per item from its topic's vocabulary (vectorised draws, then joined)."""
    words = [TOPICS[n].split() for n in names]
    n = topic.shape[0]
    adj = rng.integers(0, len(ADJECTIVES), n)
    aud = rng.integers(0, len(AUDIENCES), n)
    w1 = rng.integers(0, 8, n)
    w2 = (w1 + 1 + rng.integers(0, 7, n)) % 8
    return np.array([f"{ADJECTIVES[a]} {words[t][i].replace('-', ' ')} {words[t][j].replace('-', ' ')} for "
                     f"{AUDIENCES[b]}" for t, a, b, i, j in zip(topic, adj, aud, w1, w2, strict=True)], dtype=object)


def make_catalogue_logs(n_rows: int = 5_000, n_items: int = 2_000, n_topics: int = 20, *, topic_sd: float = 1.0,
                        item_sd: float = 0.3, base: float = -2.0, logging_strength: float = 1.0,
                        target_strength: float = 1.5, seed: int = 0, world_seed: int | None = None) -> CatalogueLogs:
    """Draw a log; ``world_seed`` (default ``seed``) fixes items, titles, rewards and policies."""
    if not 1 <= n_topics <= len(TOPICS):
        raise ValueError(f"n_topics must be in 1..{len(TOPICS)}")
    wrng = np.random.default_rng(seed if world_seed is None else world_seed)
    names = list(TOPICS)[:n_topics]
    topic = wrng.permutation(np.arange(n_items) % n_topics)
    titles = make_titles(topic, names, wrng)
    u = wrng.normal(0.0, topic_sd, n_topics)
    v = wrng.normal(0.0, item_sd, n_items)
    q = 1.0 / (1.0 + np.exp(-(base + u[topic] + v)))
    pi0 = _softmax(logging_strength * wrng.normal(0.0, 1.0, n_items))
    pie = _softmax(target_strength * (u[topic] / max(topic_sd, 1e-12) + wrng.normal(0.0, 1.0, n_items)))
    rng = np.random.default_rng([seed, 7919])
    a = rng.choice(n_items, size=n_rows, p=pi0)
    y = (rng.random(n_rows) < q[a]).astype(np.int64)
    ids = np.arange(n_items)
    logs = pd.DataFrame({"request_id": np.arange(n_rows), "item_id": a, "click": y, "propensity": pi0[a]})
    catalogue = pd.DataFrame({"item_id": ids, "title": titles, "topic": np.array(names, dtype=object)[topic]})
    return CatalogueLogs(
        logs=logs, catalogue=catalogue, target=pd.DataFrame({"item_id": ids, "prob": pie}),
        logging=pd.DataFrame({"item_id": ids, "prob": pi0}), truth=float(pie @ q), q=q, topic=topic,
        params=dict(n_rows=n_rows, n_items=n_items, n_topics=n_topics, topic_sd=topic_sd, item_sd=item_sd,
                    base=base, logging_strength=logging_strength, target_strength=target_strength, seed=seed,
                    world_seed=world_seed))


__all__ = ["make_catalogue_logs", "CatalogueLogs", "TOPICS"]
