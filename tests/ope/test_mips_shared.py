"""SLOPE over the cluster grid with shared work (one clustering of the distinct vectors, one gather of
every candidate's weight, no arrays for zero/unit terms) gives exactly what evaluating each K on its
own through the per-row path gives: the same candidates, the same chosen K, the same estimate."""

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.ope import evaluate
from causalrec.ope.catalogue import (
    CataloguePolicy,
    item_clusters,
    item_clusters_grid,
    prepare_catalogue,
)
from causalrec.ope.catalogue_synthetic import make_catalogue_logs
from causalrec.ope.clusters import ClusterStream
from causalrec.ope.selection import slope_index

SCHEMA = LogSchema(outcome="click")


class TopicEmbedder:
    """A noisy vector around the item's topic centre (deterministic per title)."""

    def __init__(self, catalogue: pd.DataFrame, dim: int = 8, seed: int = 3):
        rng = np.random.default_rng(seed)
        topics = pd.factorize(catalogue["topic"])[0]
        centres = rng.normal(0.0, 1.0, (topics.max() + 1, dim))
        vec = centres[topics] + rng.normal(0.0, 0.6, (len(catalogue), dim))
        self.map = dict(zip(catalogue["title"], vec, strict=False))
        self.dim = dim

    def encode(self, texts):
        return np.array([self.map[t] for t in texts])


@pytest.fixture(scope="module")
def sim():
    s = make_catalogue_logs(n_rows=6000, n_items=300, n_topics=12, seed=4)
    s.logs["request_id"] = np.arange(len(s.logs)) // 2  # two impressions per request, sorted
    return s


def _per_row(monkeypatch):
    """The per-row path: every candidate's weight bound row by row from its two cluster tables."""
    monkeypatch.setattr(CataloguePolicy, "_weight_lookup", lambda self: None)


@pytest.mark.parametrize("batch_size", [None, 1700])
def test_shared_slope_search_equals_the_per_k_path(sim, tmp_path, monkeypatch, batch_size):
    path = tmp_path / "logs.parquet"
    sim.logs.to_parquet(path)
    emb = TopicEmbedder(sim.catalogue)
    kw = dict(schema=SCHEMA, estimators=["mips"], items=sim.catalogue, logging_policy=sim.logging, embedder=emb,
              batch_size=batch_size, progress=False)
    shared = evaluate(path, sim.target, **kw)
    sel = shared.diagnostics["selection"]["mips"]
    grid = [c["value"] for c in sel["candidates"]]
    assert len(grid) > 5
    with monkeypatch.context() as m:
        _per_row(m)
        per_k = [evaluate(path, sim.target, embedding_clusters=k, **kw).get("mips") for k in grid]
    for c, r in zip(sel["candidates"], per_k, strict=True):
        assert c["estimate"] == pytest.approx(r.estimate, rel=1e-12, abs=0)
        assert c["se"] == pytest.approx(r.se, rel=1e-12, abs=0)
    got = shared.get("mips")
    if batch_size is not None:  # streamed: the interval rule, which the per-K results determine
        assert sel["rule"] == "intervals"
        j = slope_index([r.estimate for r in per_k], [r.se for r in per_k])
        assert sel["chosen"] == grid[j]
        assert got.estimate == pytest.approx(per_k[j].estimate, rel=1e-12, abs=0)
        assert got.se == pytest.approx(per_k[j].se, rel=1e-12, abs=0)
    else:  # in memory: the paired rule; the chosen candidate is one of the per-K results
        assert sel["rule"] == "paired differences"
        j = grid.index(sel["chosen"])
        assert got.estimate == pytest.approx(per_k[j].estimate, rel=1e-12, abs=0)
    with monkeypatch.context() as m:  # and the whole SLOPE run through the per-row path agrees
        _per_row(m)
        slow = evaluate(path, sim.target, **kw)
    assert slow.diagnostics["selection"]["mips"]["chosen"] == sel["chosen"]
    assert slow.get("mips").estimate == pytest.approx(got.estimate, rel=1e-12, abs=0)
    assert slow.get("mips").se == pytest.approx(got.se, rel=1e-12, abs=0)


def test_gathered_weights_are_the_per_row_weights_with_positions():
    rng = np.random.default_rng(0)
    n_items, n_pos = 40, 3
    cat = pd.DataFrame({"item_id": np.arange(n_items), "title": [f"t{i}" for i in range(n_items)],
                        "topic": np.arange(n_items) % 5})
    emb = TopicEmbedder(cat, dim=4)

    def table(pos_dep: bool):
        p = rng.random((n_items, n_pos if pos_dep else 1)) + 0.01
        p /= p.sum(axis=0)
        if not pos_dep:
            return pd.DataFrame({"item_id": np.arange(n_items), "prob": p[:, 0]}), p.repeat(n_pos, axis=1)
        return pd.DataFrame({"item_id": np.repeat(np.arange(n_items), n_pos), "position": np.tile(np.arange(n_pos),
                             n_items), "prob": p.ravel()}), p

    for t_pos, l_pos in ((True, False), (False, True), (True, True)):
        target, _ = table(t_pos)
        logging, p0 = table(l_pos)
        n = 500
        a, k = rng.integers(0, n_items, n), rng.integers(0, n_pos, n)
        logs = pd.DataFrame({"item_id": a, "position": k, "click": rng.integers(0, 2, n), "propensity": p0[a, k]})
        cp = prepare_catalogue(logs, target, schema=SCHEMA, items=cat, logging_policy=logging, embedder=emb,
                               embedding_clusters=[2, 4, 8, 16])
        assert cp._w_lookup is not None
        items, pos = cp.vocab.encode(logs["item_id"].to_numpy()), logs["position"].to_numpy()
        fast = cp.embedding_weights(logs, items, pos, 0, logs["propensity"].to_numpy())
        cp._w_lookup = None
        slow = cp.embedding_weights(logs, items, pos, 0, logs["propensity"].to_numpy())
        assert list(fast) == list(slow)
        for kk in fast:
            np.testing.assert_array_equal(fast[kk], slow[kk])


def test_clusters_of_the_grid_are_the_one_at_a_time_clusters():
    from sklearn.cluster import KMeans

    from causalrec.ope.catalogue import CLUSTER_GRID

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(25, 6))
    emb = np.repeat(centres[rng.integers(0, 25, 700)] + 0.4 * rng.normal(size=(700, 6)), 2, axis=0)  # duplicates
    uniq, inv = np.unique(emb, axis=0, return_inverse=True)
    grid = item_clusters_grid(emb, CLUSTER_GRID, seed=2, method="kmeans")  # shared k-means++ seeds
    assert list(grid) == list(CLUSTER_GRID)
    for k, lab in grid.items():  # scikit-learn's own k-means++ and Lloyd, one K at a time
        ref = KMeans(n_clusters=k, n_init=1, random_state=2).fit(uniq.astype(np.float32)).labels_[inv.reshape(-1)]
        np.testing.assert_array_equal(lab, ref)
        np.testing.assert_array_equal(lab, item_clusters(emb, k, seed=2, method="kmeans"))
    for k, lab in item_clusters_grid(emb, [16, 8, 3], seed=2, method="ward").items():
        np.testing.assert_array_equal(lab, item_clusters(emb, k, seed=2, method="ward"))


def test_cluster_stream_none_terms_are_zeros_and_ones():
    rng = np.random.default_rng(2)
    keys = np.sort(rng.integers(0, 50, 400))
    a, c, b = rng.random(400), rng.random(400), rng.random(400)
    s1, s2 = ClusterStream("request_id"), ClusterStream("request_id")
    out1 = s1.add(keys[:250], [(None, a[:250], None), (c[:250], a[:250], b[:250])]) + s1.flush()
    out2 = (s2.add(keys[:250], [(np.zeros(250), a[:250], np.ones(250)), (c[:250], a[:250], b[:250])])
            + s2.flush())
    for x, y in zip(out1, out2, strict=True):
        np.testing.assert_array_equal(x, y)


def test_shared_cluster_moments_equal_one_estimator_at_a_time():
    from causalrec.ope.clusters import ClusterMoments, cluster_moments_of_many

    rng = np.random.default_rng(3)
    g = 1000
    n = rng.integers(1, 5, g).astype(float)
    totals = [np.stack([np.zeros(g), n, rng.random(g) * n, n]),  # MIPS/IPS: C = 0, B = N
              np.stack([rng.random(g), n, rng.random(g), rng.random(g) * n]),  # control variate, self-normalised
              np.stack([np.zeros(g), n, rng.random(g), rng.random(g)])]
    for got, t in zip(cluster_moments_of_many(totals), totals, strict=True):
        ref = ClusterMoments.of_array(t)
        assert got.n == ref.n
        np.testing.assert_array_equal(got.mean, ref.mean)
        np.testing.assert_allclose(got.m2, ref.m2, rtol=1e-12, atol=1e-12 * np.abs(ref.m2).max())
        assert got.estimate_se()[0] == ref.estimate_se()[0]
        assert got.estimate_se()[1] == pytest.approx(ref.estimate_se()[1], rel=1e-12)
    other = np.stack([np.zeros(g), n + 1, rng.random(g), n + 1])  # different clusters: computed one by one
    for got, t in zip(cluster_moments_of_many([totals[0], other]), [totals[0], other], strict=True):
        np.testing.assert_array_equal(got.m2, ClusterMoments.of_array(t).m2)


def test_cluster_stream_one_row_per_cluster_is_reduceat():
    rng = np.random.default_rng(4)
    a, c = rng.random(300), rng.random(300)
    s = ClusterStream("request_id")
    out = s.add(np.arange(100), [(c[:100], a[:100], None)]) + s.add(np.arange(100, 300), [(c[100:], a[100:], None)])
    out += s.flush()
    got = np.concatenate(out, axis=1)
    np.testing.assert_array_equal(got, np.stack([c, np.ones(300), a, np.ones(300)]))
