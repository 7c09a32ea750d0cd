"""MIPS and SNMIPS equal Open Bandit Pipeline's (obp 0.5.7, source from the sdist via tests/ope/obp_peer.py).

obp's ``MarginalizedInverseProbabilityWeighting`` / ``SelfNormalized...`` are given the true
embedding distribution ``p_e_a`` (one-hot: each action belongs to one cluster), per-row logging and
evaluation distributions ``(n, n_actions, 1)`` and the cluster of the logged action; causalrec gets
the same distributions as row-keyed long tables and an embedder whose vectors are the clusters.
The data are drawn here (obp's embedding simulator draws *stochastic* embeddings per round, which
an item catalogue does not have). Slow: fetching the sdist may need the network.
"""

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.ope import evaluate
from tests.ope import obp_peer


@pytest.mark.slow
def test_mips_equals_obp():
    src, why = obp_peer.obp_source()
    if src is None:
        pytest.skip(why)
    obp_peer.load(src)  # package and torch stubs
    try:
        import importlib

        emb_mod = importlib.import_module("obp.ope.estimators_embed")
    except Exception as exc:  # obp's own imports fail under this numpy/scipy: say so
        pytest.skip(f"obp.ope.estimators_embed does not import here ({type(exc).__name__}: {str(exc)[:120]})")
    rng = np.random.default_rng(11)
    n, n_actions, k = 500, 30, 6
    cluster = rng.integers(0, k, n_actions)
    cluster[:k] = np.arange(k)
    pi_b = rng.dirichlet(np.ones(n_actions), n) * 0.7 + 0.3 / n_actions
    pi_e = rng.dirichlet(0.3 * np.ones(n_actions), n)
    a = (pi_b.cumsum(1) > rng.random((n, 1))).argmax(1)
    y = (rng.random(n) < 0.2 + 0.1 * cluster[a] / k).astype(float)
    p_e_a = np.eye(k)[cluster][:, :, None]  # (n_actions, n_cat, 1)
    kw = dict(reward=y, action=a, action_embed=cluster[a][:, None], pi_b=pi_b[:, :, None],
              action_dist=pi_e[:, :, None], p_e_a=p_e_a, position=np.zeros(n, dtype=int))
    ref_mips = emb_mod.MarginalizedInverseProbabilityWeighting(n_actions=n_actions).estimate_policy_value(**kw)
    ref_sn = emb_mod.SelfNormalizedMarginalizedInverseProbabilityWeighting(n_actions=n_actions) \
        .estimate_policy_value(**kw)

    def long(m):
        return pd.DataFrame({"row": np.repeat(np.arange(n), n_actions), "item_id": np.tile(np.arange(n_actions), n),
                             "prob": m.ravel()})

    class ClusterEmbedder:
        def encode(self, texts):
            return np.eye(k)[[cluster[int(t.split()[1])] for t in texts]]

    logs = pd.DataFrame({"item_id": a, "click": y, "propensity": pi_b[np.arange(n), a]})
    cat = pd.DataFrame({"item_id": np.arange(n_actions), "title": [f"item {i}" for i in range(n_actions)]})
    r = evaluate(logs, long(pi_e), schema=LogSchema(outcome="click"), estimators=["mips", "snmips"], items=cat,
                 logging_policy=long(pi_b), embedder=ClusterEmbedder(), embedding_clusters=k)
    assert r.get("mips").estimate == pytest.approx(float(ref_mips), abs=1e-10)
    assert r.get("snmips").estimate == pytest.approx(float(ref_sn), abs=1e-10)
