"""A ranker fine-tuned from the text encoder on corrected labels, and its unbiased evaluation.

Nothing here imports torch at import time (the names load on first use)::

    TwoTowerRanker.from_encoder(model=None, max_length=48, trainable_layers=1)
    train_ranker(user_texts, item_texts, labels, weights=None, groups=None, config=TrainConfig(...))
        # objectives pointwise | pairwise | listwise | lambdarank | click_model; zero-shot start,
        # L2-SP toward it, epoch chosen on held-out lists by unbiased DCG (epoch 0 = zero-shot)
    compare_rankers([(name, ranker), ...], data, relevance=...)   # several models side by side
    TwoTowerRanker.load(dir) / ranker.save(dir)          # safetensors + JSON, no pickle
    per_request_metrics(scores, relevance, groups, ks)   # NDCG@k / recall@k per request
    policy_value(logs, scores, item_ids, schema=...)     # IPS/SNIPS/DR value of the top-k policy
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TwoTowerRanker": "causalrec.ranking.model",
    "TrainConfig": "causalrec.ranking.train",
    "TrainHistory": "causalrec.ranking.train",
    "train_ranker": "causalrec.ranking.train",
    "RankingResult": "causalrec.ranking.evaluate",
    "per_request_metrics": "causalrec.ranking.evaluate",
    "ranking_estimates": "causalrec.ranking.evaluate",
    "ranker_policy_table": "causalrec.ranking.evaluate",
    "policy_value": "causalrec.ranking.evaluate",
    "evaluate_ranker": "causalrec.ranking.run",
    "fit_ranker_on_frame": "causalrec.ranking.run",
    "compare_rankers": "causalrec.ranking.run",
    "dcg_per_list": "causalrec.ranking.train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'causalrec.ranking' has no attribute {name!r}")


def __dir__():
    return __all__
