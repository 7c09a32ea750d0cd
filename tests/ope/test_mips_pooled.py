"""SLOPE's cluster grid, made cheap: above ``WARD_MAX_ITEMS`` one k-means at the largest K and
Ward's merging of its clusters for the smaller K (:func:`causalrec.ope.catalogue.ward_merge_clusters`);
streamed MIPS / SNMIPS candidates summed per (item, position) cell (:class:`causalrec.ope.mips.CellPool`).
Each is checked against a direct computation: scipy's Ward tree, scikit-learn's k-means, and the
per-row path of every candidate."""

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from causalrec.data import LogSchema
from causalrec.errors import InputError
from causalrec.ope import evaluate
from causalrec.ope.catalogue import (
    FINE_SAMPLE_PER_CLUSTER,
    WARD_MAX_ITEMS,
    CataloguePolicy,
    fine_sample,
    item_clusters,
    item_clusters_grid,
    prepare_catalogue,
    ward_merge_clusters,
)
from causalrec.ope.catalogue_synthetic import make_catalogue_logs
from causalrec.ope.mips import MIPS, SNMIPS, CellPool, CellSums

SCHEMA = LogSchema(outcome="click")


def _same_partition(a, b) -> bool:
    """Equal up to the names of the clusters."""
    ct = pd.crosstab(np.asarray(a), np.asarray(b)).to_numpy()
    return (ct > 0).sum() == ct.shape[0] == ct.shape[1]


def test_ward_merge_is_scipys_ward_tree_on_the_centroids():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    lab = np.unique(rng.integers(0, 30, 400), return_inverse=True)[1].reshape(-1)
    cuts = ward_merge_clusters(x, lab, [25, 12, 7, 3, 2, 1, 30, 99])
    assert sorted(cuts) == [2, 3, 7, 12, 25]  # 1 and >= m are not merges
    cent = np.stack([x[lab == j].mean(axis=0) for j in range(lab.max() + 1)])
    tree = linkage(cent[lab], "ward")  # every row moved to its cluster's centroid
    for k, c in cuts.items():
        assert len(np.unique(c)) == k and c.min() == 0 and c.max() == k - 1
        assert _same_partition(c, fcluster(tree, k, criterion="maxclust"))
    for fine, coarse in ((25, 12), (12, 7), (7, 3), (3, 2)):  # nested: each cluster inside one of the coarser cut
        assert (pd.crosstab(cuts[fine], cuts[coarse]).to_numpy() > 0).sum() == fine
    for c in cuts.values():  # unions of the given clusters
        assert (pd.crosstab(lab, c).to_numpy() > 0).sum() == lab.max() + 1


def test_ward_merge_minimises_the_sum_of_squares_rise_at_each_step():
    # three tight pairs far apart: the first merges are within pairs, the cut at 3 is the pairs
    x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.2], [-6.0, 4.0], [-6.3, 4.0]])
    cut = ward_merge_clusters(x, np.arange(6), [3])[3]
    np.testing.assert_array_equal(cut, [0, 0, 1, 1, 2, 2])
    with pytest.raises(InputError, match="no rows"):
        ward_merge_clusters(x, np.array([0, 0, 2, 2, 3, 3]), [2])


def test_kmeans_ward_grid_above_the_ward_limit():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(12, 4))
    n = WARD_MAX_ITEMS + 300
    emb = centres[rng.integers(0, 12, n)] + 0.3 * rng.normal(size=(n, 4))
    emb = np.vstack([emb, emb[:50]])  # duplicated texts: one distinct vector
    grid = item_clusters_grid(emb, [24, 12, 6, 3, 1], seed=5)  # auto: k-means at 24, Ward merges below
    assert list(grid) == [24, 12, 6, 3, 1]
    uniq, inv = np.unique(emb, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    x = uniq.astype(np.float32)
    sample = np.sort(np.random.default_rng(5).choice(len(x), size=FINE_SAMPLE_PER_CLUSTER * 24, replace=False))
    np.testing.assert_array_equal(fine_sample(len(x), 24, 5), sample)
    ref = KMeans(n_clusters=24, n_init=1, random_state=5).fit(x[sample]).predict(x)
    assert len(np.unique(ref)) == 24
    # the finest candidate: scikit-learn's k-means on the sample, every vector at its nearest centre
    assert _same_partition(grid[24], ref[inv])
    np.testing.assert_array_equal(grid[24], np.unique(ref, return_inverse=True)[1].reshape(-1)[inv])
    # a fixed K is plain k-means on all vectors, as before
    full = KMeans(n_clusters=24, n_init=1, random_state=5).fit(x).labels_
    np.testing.assert_array_equal(item_clusters(emb, 24, seed=5), full[inv])
    np.testing.assert_array_equal(item_clusters_grid(emb, [12], seed=5)[12], item_clusters(emb, 12, seed=5,
                                                                                          method="kmeans"))
    merged = ward_merge_clusters(uniq, grid[24][np.unique(inv, return_index=True)[1]], [12, 6, 3])
    for k in (12, 6, 3):
        np.testing.assert_array_equal(grid[k], merged[k][inv])
        assert (pd.crosstab(grid[24], grid[k]).to_numpy() > 0).sum() == 24  # nested in the k-means
    assert (grid[1] == 0).all()
    assert (grid[24][n:] == grid[24][:50]).all()  # duplicates share their cluster
    with pytest.raises(InputError, match="unknown clustering method"):
        item_clusters_grid(emb[:10], [2], method="spectral")


def test_cell_sums_moments_are_the_row_moments():
    from causalrec.ope.clusters import ClusterMoments
    from causalrec.ope.estimators import Moments

    rng = np.random.default_rng(2)
    m = 30
    f = rng.gamma(2.0, 1.0, m)
    f[3] = np.nan  # a cell without rows may have no weight
    cells = rng.choice(np.r_[0:3, 4:m], 5000)
    y = rng.normal(10.0, 1.0, 5000)  # an offset: the centred sums must not cancel
    s = CellSums.of(cells[:1234], y[:1234], m).merge(CellSums.of(cells[1234:], y[1234:], m)).merge(CellSums.empty(m))
    for sn in (False, True):
        mom, cm = s.moments(f, sn)
        w = f[cells]
        ref = Moments.of_terms(None, w * y, w if sn else None)
        assert mom.n == ref.n
        np.testing.assert_allclose(mom.mean, ref.mean, rtol=1e-13)
        np.testing.assert_allclose(mom.m2, ref.m2, rtol=1e-11, atol=1e-11 * np.abs(ref.m2).max())
        refc = ClusterMoments.of_array(np.stack([np.zeros(5000), np.ones(5000), w * y, w if sn else np.ones(5000)]))
        np.testing.assert_allclose(cm.mean, refc.mean, rtol=1e-13)
        np.testing.assert_allclose(cm.m2, refc.m2, rtol=1e-11, atol=1e-11 * np.abs(refc.m2).max())
        assert mom.estimate_se() == pytest.approx(ref.estimate_se(), rel=1e-12)
        assert cm.estimate_se() == pytest.approx(refc.estimate_se(), rel=1e-12)


@pytest.fixture(scope="module")
def sim():
    s = make_catalogue_logs(n_rows=4000, n_items=200, n_topics=8, seed=6)
    rng = np.random.default_rng(7)
    # requests of 1 to 4 impressions (most of one), sorted, so batches split some of them
    sizes = rng.choice([1, 1, 1, 2, 3, 4], len(s.logs))
    s.logs["request_id"] = np.repeat(np.arange(len(sizes)), sizes)[: len(s.logs)]
    s.logs["impression"] = np.arange(len(s.logs))  # one row per cluster: the pooled sums' usual case
    return s


class _Emb:
    def __init__(self, cat: pd.DataFrame):
        rng = np.random.default_rng(3)
        topics = pd.factorize(cat["topic"])[0]
        vec = rng.normal(size=(topics.max() + 1, 6))[topics] + 0.7 * rng.normal(size=(len(cat), 6))
        self.map = dict(zip(cat["title"], vec, strict=True))

    def encode(self, texts):
        return np.array([self.map[t] for t in texts])


@pytest.mark.parametrize("cluster", ["auto", "none", "impression"])
@pytest.mark.parametrize("clip", [None, 3.0])
def test_pooled_candidates_equal_the_per_row_path(sim, tmp_path, monkeypatch, cluster, clip):
    path = tmp_path / "logs.parquet"
    sim.logs.to_parquet(path)
    kw = dict(schema=SCHEMA, estimators=["ips", "mips", "snmips"], items=sim.catalogue, logging_policy=sim.logging,
              embedder=_Emb(sim.catalogue), embedding_clusters=[2, 3, 5, 8, 13, 21], batch_size=737, cluster=cluster,
              clip=clip, progress=False)
    pools = []
    real = CellPool.of_run

    def spy(ests, tables, clus):
        out = real(ests, tables, clus)
        pools.append(out[1])
        return out

    with monkeypatch.context() as m:
        m.setattr(CellPool, "of_run", spy)
        fast = evaluate(path, sim.target, **kw)
    assert len(pools[0]) == 12  # six K for mips and for snmips, pooled
    with monkeypatch.context() as m:  # the per-row path: weights bound row by row, nothing pooled
        m.setattr(CataloguePolicy, "_weight_lookup", lambda self: None)
        slow = evaluate(path, sim.target, **kw)
    assert fast.n_rows == slow.n_rows == len(sim.logs)
    assert fast.diagnostics.get("n_clusters") == slow.diagnostics.get("n_clusters")
    for name in ("mips", "snmips"):
        a, b = fast.diagnostics["selection"][name], slow.diagnostics["selection"][name]
        assert a["chosen"] == b["chosen"] and a["rule"] == b["rule"] == "intervals"
        for ca, cb in zip(a["candidates"], b["candidates"], strict=True):
            assert ca["value"] == cb["value"]
            assert ca["estimate"] == pytest.approx(cb["estimate"], rel=1e-12, abs=0)
            assert ca["se"] == pytest.approx(cb["se"], rel=1e-12, abs=0)
        if cluster != "none":  # the row-level standard error, kept beside the clustered one
            assert fast.get(name).extra["se_iid"] == pytest.approx(slow.get(name).extra["se_iid"], rel=1e-12)
    assert fast.get("ips").estimate == slow.get("ips").estimate  # not pooled: the same per-row sums
    assert fast.get("ips").se == slow.get("ips").se


def test_fixed_k_and_positions_keep_the_per_row_path(tmp_path, monkeypatch):
    rng = np.random.default_rng(8)
    n_items, n_pos, n = 40, 3, 3000
    cat = pd.DataFrame({"item_id": np.arange(n_items), "title": [f"t{i}" for i in range(n_items)],
                        "topic": np.arange(n_items) % 5})
    p0 = rng.random((n_items, n_pos)) + 0.05
    p0 /= p0.sum(axis=0)
    pe = rng.random((n_items, n_pos)) + 0.05
    pe /= pe.sum(axis=0)
    k = rng.integers(0, n_pos, n)
    a = np.array([rng.choice(n_items, p=p0[:, j]) for j in k])
    logs = pd.DataFrame({"request_id": np.arange(n) // 3, "item_id": a, "position": k,
                         "click": rng.integers(0, 2, n), "propensity": p0[a, k]})
    long = lambda p: pd.DataFrame({"item_id": np.repeat(np.arange(n_items), n_pos),  # noqa: E731
                                   "position": np.tile(np.arange(n_pos), n_items), "prob": p.ravel()})
    path = tmp_path / "logs.parquet"
    logs.to_parquet(path)
    schema = LogSchema(outcome="click", position="position")
    kw = dict(schema=schema, items=cat, logging_policy=long(p0), embedder=_Emb(cat), batch_size=500, progress=False)
    called = []
    monkeypatch.setattr(CellPool, "add", lambda self, *a, **k: called.append(1) or real_add(self, *a, **k))
    fixed = evaluate(path, long(pe), estimators=["mips"], embedding_clusters=4, **kw)
    assert not called  # one MIPS: the per-row path, as before
    slope = evaluate(path, long(pe), estimators=["mips"], embedding_clusters=[2, 4, 8], **kw)
    assert called  # positional cells are pooled
    cand = {c["value"]: c for c in slope.diagnostics["selection"]["mips"]["candidates"]}
    assert cand[4]["estimate"] == pytest.approx(fixed.get("mips").estimate, rel=1e-12, abs=0)
    assert cand[4]["se"] == pytest.approx(fixed.get("mips").se, rel=1e-12, abs=0)
    # and prepare_catalogue's per-cell tables are the gathered weights
    cp = prepare_catalogue(logs, long(pe), schema=schema, items=cat, logging_policy=long(p0), embedder=_Emb(cat),
                           embedding_clusters=[2, 4, 8])
    items = cp.vocab.encode(logs["item_id"].to_numpy())
    w = cp.embedding_weights(logs, items, logs["position"].to_numpy(), 0, logs["propensity"].to_numpy())
    cells = cp.weight_cells(items, logs["position"].to_numpy())
    for kk, tab in cp.cell_weights().items():
        np.testing.assert_array_equal(w[kk], tab[cells])


real_add = CellPool.add


def test_pool_needs_two_poolable_estimators():
    tables = {2: np.ones(5), 4: np.ones(5)}
    assert CellPool.of_run([MIPS(clusters=2)], tables, None) == (None, [])
    assert CellPool.of_run([MIPS(clusters=2), SNMIPS(clusters=3)], tables, None) == (None, [])  # K=3 not computed
    pool, idx = CellPool.of_run([MIPS(clusters=2), SNMIPS(clusters=4)], tables, "request_id")
    assert idx == [0, 1] and pool is not None
    assert CellPool.of_run([MIPS(clusters=2), MIPS(clusters=4)], None, None) == (None, [])


def test_cluster_stream_counts_clusters_without_terms_and_finds_single_rows():
    from causalrec.ope.clusters import ClusterStream

    keys = np.array([0, 1, 1, 2, 3, 4, 4, 4, 5, 6, 7, 7, 8, 9])
    np.testing.assert_array_equal(ClusterStream.single_rows(keys[:8]), [0, 0, 0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(ClusterStream.single_rows(keys[8:]), [0, 1, 0, 0, 1, 0])
    assert not ClusterStream.single_rows(keys[:2]).any()
    s = ClusterStream("request_id")
    assert s.add(keys[:5], []) == [] and s.add(keys[5:11], []) == [] and s.add(keys[11:], []) == []
    assert s.flush() == []
    assert s.n_clusters == 10 and s.max_size == 3  # key 7 spans two batches: one cluster of 2
    t = ClusterStream("request_id")  # the same counts as with terms
    a = np.arange(len(keys), dtype=float)
    out = t.add(keys[:5], [(None, a[:5], None)]) + t.add(keys[5:11], [(None, a[5:11], None)])
    out += t.add(keys[11:], [(None, a[11:], None)]) + t.flush()
    assert (t.n_clusters, t.max_size) == (s.n_clusters, s.max_size)
    np.testing.assert_array_equal(np.concatenate(out, axis=1)[1], np.bincount(keys))


def test_only_pooled_estimators_streamed_report_the_clusters(sim, tmp_path):
    path = tmp_path / "logs.parquet"
    sim.logs.to_parquet(path)
    r = evaluate(path, sim.target, schema=SCHEMA, estimators=["mips"], items=sim.catalogue,
                 logging_policy=sim.logging, embedder=_Emb(sim.catalogue), embedding_clusters=[2, 4, 8],
                 batch_size=613, progress=False)
    sizes = sim.logs["request_id"].value_counts()
    assert r.diagnostics["n_clusters"] == len(sizes)
    assert r.diagnostics["rows_per_cluster_max"] == sizes.max()
    sel = r.diagnostics["selection"]["mips"]
    assert sel["chosen"] in (2, 4, 8) and [c["value"] for c in sel["candidates"]] == [8, 4, 2]
    assert r.get("mips").extra["clusters"] == sel["chosen"]
