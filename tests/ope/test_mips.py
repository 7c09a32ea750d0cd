"""MIPS / SNMIPS / OffCEM: hand-computed values, IPS as the one-item-per-cluster case, streaming equality,
unbiasedness when the reward goes only through the cluster, the regression weights, request-keyed tables."""

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.ope import evaluate

SCHEMA = LogSchema(outcome="click")


class GroupEmbedder:
    """One-hot vectors of a group per text: clusters are exactly the groups."""

    def __init__(self, groups: dict):
        self.groups = groups

    def encode(self, texts):
        g = np.array([self.groups[t] for t in texts])
        return np.eye(int(g.max()) + 1)[g]


def _world(n_items=6, groups=(0, 0, 0, 1, 1, 2)):
    cat = pd.DataFrame({"item_id": np.arange(n_items), "title": [f"item {i}" for i in range(n_items)]})
    emb = GroupEmbedder({f"item {i}": g for i, g in enumerate(groups)})
    pi0 = np.array([0.3, 0.2, 0.1, 0.2, 0.1, 0.1])
    pie = np.array([0.05, 0.05, 0.1, 0.3, 0.3, 0.2])
    return cat, emb, pi0, pie, np.array(groups)


def _log(pi0, n, rng, q):
    a = rng.choice(len(pi0), size=n, p=pi0)
    return pd.DataFrame({"item_id": a, "click": (rng.random(n) < q[a]).astype(float), "propensity": pi0[a]})


def _tables(pi0, pie):
    ids = np.arange(len(pi0))
    return pd.DataFrame({"item_id": ids, "prob": pie}), pd.DataFrame({"item_id": ids, "prob": pi0})


def test_hand_computed_mips_snmips_offcem():
    cat, emb, pi0, pie, g = _world()
    logs = pd.DataFrame({"item_id": [0, 3, 5, 1, 4], "click": [1.0, 0.0, 1.0, 0.0, 1.0], "propensity": pi0[[0, 3, 5, 1, 4]]})
    target, logging = _tables(pi0, pie)
    pe = np.bincount(g, weights=pie)
    p0 = np.bincount(g, weights=pi0)
    w = pe[g[logs.item_id]] / p0[g[logs.item_id]]
    y = logs.click.to_numpy()
    q = 0.1 + 0.05 * np.arange(6)
    r = evaluate(logs, target, schema=SCHEMA, estimators=["mips", "snmips", "offcem"], items=cat, logging_policy=logging,
                 embedder=emb, embedding_clusters=3, outcome_model=lambda df: q[df["item_id"].to_numpy()])
    assert r.get("mips").estimate == pytest.approx(np.mean(w * y), abs=1e-12)
    assert r.get("snmips").estimate == pytest.approx(np.sum(w * y) / np.sum(w), abs=1e-12)
    off = pie @ q + np.mean(w * (y - q[logs.item_id]))
    assert r.get("offcem").estimate == pytest.approx(off, abs=1e-12)
    assert r.get("mips").extra["clusters"] == 3
    assert r.diagnostics["catalogue"]["cluster_choice"] == "fixed"


def test_one_item_per_cluster_is_ips():
    cat, _, pi0, pie, _ = _world()
    emb = GroupEmbedder({f"item {i}": i for i in range(6)})
    rng = np.random.default_rng(1)
    logs = _log(pi0, 400, rng, np.full(6, 0.3))
    target, logging = _tables(pi0, pie)
    r = evaluate(logs, target, schema=SCHEMA, estimators=["ips", "snips", "mips", "snmips"], items=cat,
                 logging_policy=logging, embedder=emb, embedding_clusters=6)
    assert r.get("mips").estimate == pytest.approx(r.get("ips").estimate, abs=1e-12)
    assert r.get("snmips").estimate == pytest.approx(r.get("snips").estimate, abs=1e-12)
    assert r.get("mips").se == pytest.approx(r.get("ips").se, rel=1e-10)


def test_unbiased_when_the_reward_goes_only_through_the_cluster():
    cat, emb, pi0, pie, g = _world()
    q = np.array([0.1, 0.5, 0.8])[g]
    q = np.where(g == 0, 0.2, q)  # same reward within a cluster
    truth = pie @ q
    target, logging = _tables(pi0, pie)
    logs = _log(pi0, 40_000, np.random.default_rng(3), q)
    r = evaluate(logs, target, schema=SCHEMA, estimators=["ips", "mips", "snmips"], items=cat, logging_policy=logging,
                 embedder=emb, embedding_clusters=3)
    for name in ("mips", "snmips"):
        e = r.get(name)
        assert abs(e.estimate - truth) < 4 * e.se
    assert r.get("mips").se < r.get("ips").se  # the point of it


def test_streaming_equals_in_memory(tmp_path):
    cat, emb, pi0, pie, g = _world()
    rng = np.random.default_rng(5)
    logs = _log(pi0, 3000, rng, np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))
    logs.insert(0, "request_id", np.arange(3000) // 3)  # three impressions per request, sorted
    path = tmp_path / "logs.parquet"
    logs.to_parquet(path)
    target, logging = _tables(pi0, pie)
    kw = dict(schema=SCHEMA, estimators=["mips", "snmips", "offcem"], items=cat, logging_policy=logging,
              embedder=emb, embedding_clusters=3)
    a = evaluate(path, target, **kw)
    b = evaluate(path, target, batch_size=700, **kw)
    assert b.config["mode"].startswith("streaming")
    for e in ("mips", "snmips", "offcem"):
        assert b.get(e).estimate == pytest.approx(a.get(e).estimate, abs=1e-12)
        assert b.get(e).se == pytest.approx(a.get(e).se, rel=1e-9)
    assert a.diagnostics["cluster_column"] == "request_id"


def test_regression_weights_without_a_logging_table():
    cat, emb, pi0, pie, g = _world()
    target, logging = _tables(pi0, pie)
    logs = _log(pi0, 30_000, np.random.default_rng(7), np.full(6, 0.3))
    exact = evaluate(logs, target, schema=SCHEMA, estimators=["mips"], items=cat, logging_policy=logging,
                     embedder=emb, embedding_clusters=3)
    reg = evaluate(logs, target, schema=SCHEMA, estimators=["mips"], items=cat, embedder=emb, embedding_clusters=3)
    assert "estimated" in reg.diagnostics["catalogue"]["cluster_weights"]
    assert any("regress" in w for w in reg.warnings)
    assert reg.get("mips").estimate == pytest.approx(exact.get("mips").estimate, abs=3 * exact.get("mips").se)
    # by construction the in-sample regression weights average to the mean item weight per cluster
    w_item = (pie / pi0)[logs.item_id]
    per = pd.Series(w_item).groupby(g[logs.item_id]).transform("mean").to_numpy()
    assert reg.get("mips").estimate == pytest.approx(np.mean(per * logs.click), abs=1e-12)


def test_request_keyed_tables():
    cat, emb, pi0, pie, g = _world()
    rng = np.random.default_rng(2)
    n_req = 50
    pe_req = rng.dirichlet(np.ones(6), n_req)
    p0_req = 0.5 * rng.dirichlet(np.ones(6), n_req) + 0.5 / 6
    a = np.array([rng.choice(6, p=p) for p in p0_req])
    logs = pd.DataFrame({"request_id": np.arange(n_req), "item_id": a, "click": rng.random(n_req).round(),
                         "propensity": p0_req[np.arange(n_req), a]})
    long = lambda m: pd.DataFrame({"request_id": np.repeat(np.arange(n_req), 6), "item_id": np.tile(np.arange(6), n_req),  # noqa: E731
                                   "prob": m.ravel()})
    r = evaluate(logs, long(pe_req), schema=SCHEMA, estimators=["mips"], items=cat, logging_policy=long(p0_req),
                 embedder=emb, embedding_clusters=3)
    ce = np.stack([np.bincount(g, weights=row, minlength=3) for row in pe_req])
    c0 = np.stack([np.bincount(g, weights=row, minlength=3) for row in p0_req])
    w = ce[np.arange(n_req), g[a]] / c0[np.arange(n_req), g[a]]
    assert r.get("mips").estimate == pytest.approx(np.mean(w * logs.click), abs=1e-12)
    assert not any("keyed by" in m for m in r.warnings)
    # without the logging table the regression weights average over requests: said so
    reg = evaluate(logs, long(pe_req), schema=SCHEMA, estimators=["mips"], items=cat, embedder=emb,
                   embedding_clusters=3)
    assert any("keyed by request_id" in m and "E[w | x, e]" in m for m in reg.warnings), reg.warnings
    ctx_free = evaluate(logs, pd.DataFrame({"item_id": np.arange(6), "prob": pie}), schema=SCHEMA,
                        estimators=["mips"], items=cat, embedder=emb, embedding_clusters=3)
    assert any("regress" in m for m in ctx_free.warnings) and not any("keyed by" in m for m in ctx_free.warnings)


def test_cluster_shrunk_cell_means_by_hand():
    """CellMeanOutcome.clustered: cells shrunk towards the cluster mean with empirical-Bayes pseudo-counts."""
    from causalrec.ope.outcome import CellMeanOutcome
    from causalrec.ope.policy import ItemVocab

    items = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0], dtype=float)
    lab = np.array([0, 0, 1, 1, 1])  # item 4 is never logged
    m = CellMeanOutcome(n_folds=1)
    m.begin(ItemVocab(np.arange(5)), SCHEMA)
    m.partial_fit(None, items, np.zeros(12, dtype=np.int64), y, np.zeros(12, dtype=np.int64))
    m.finalize()
    c = m.clustered(lab)
    s, n = np.bincount(items, weights=y, minlength=5), np.bincount(items, minlength=5).astype(float)
    nz = n > 0
    sigma2 = (np.sum(y ** 2) - np.sum(s[nz] ** 2 / n[nz])) / (12 - nz.sum())
    g = y.mean()
    sc, nc = np.bincount(lab, weights=s), np.bincount(lab, weights=n)
    tau_c = (np.sum(nc * (sc / nc - g) ** 2) - 2 * sigma2) / nc.sum()
    m_c = sigma2 / tau_c
    cm = (sc + m_c * g) / (nc + m_c)
    d = s[nz] / n[nz] - cm[lab][nz]
    tau_a = (np.sum(n[nz] * d ** 2) - nz.sum() * sigma2) / n[nz].sum()
    assert tau_c > 0 and tau_a > 0  # both levels shrink (neither pseudo-count is infinite) in this example
    m_a = sigma2 / tau_a
    want = (s + m_a * cm[lab]) / (n + m_a)
    assert c.eb_["prior_cluster"] == pytest.approx(m_c) and c.eb_["prior_item"] == pytest.approx(m_a)
    assert c.q_[0, :, 0] == pytest.approx(want, abs=1e-12)
    assert c.q_[0, 4, 0] == pytest.approx(cm[1], abs=1e-12)  # a never-logged item gets its cluster's mean
    assert m.q_[0, 4, 0] == pytest.approx(g, abs=1e-12)  # the item-level model gives it the global mean


def test_offcem_unbiased_on_a_large_catalogue_where_item_means_are_not():
    """Most items are logged a few times or never; the target favours one cluster. OffCEM's cluster + item
    residual model keeps it unbiased; the same formula on item means shrunk to the global mean (the
    item-level model DR uses, pseudo-count 1) is biased towards the log's average."""
    n_items, n_groups = 400, 4
    groups = np.arange(n_items) % n_groups
    cat = pd.DataFrame({"item_id": np.arange(n_items), "title": [f"item {i}" for i in range(n_items)]})
    emb = GroupEmbedder({f"item {i}": g for i, g in enumerate(groups)})
    rng = np.random.default_rng(11)
    q = np.array([0.1, 0.2, 0.3, 0.7])[groups] + rng.uniform(-0.05, 0.05, n_items)
    pi0 = np.full(n_items, 1.0 / n_items)
    pie = np.where(groups == 3, 4.0, 1.0) * rng.uniform(0.5, 1.5, n_items)
    pie /= pie.sum()
    truth = pie @ q
    w_cluster = (np.bincount(groups, weights=pie) / np.bincount(groups, weights=pi0))[groups]
    target, logging = _tables(pi0, pie)
    new, old = [], []
    for s in range(12):
        logs = _log(pi0, 600, np.random.default_rng(100 + s), q)
        r = evaluate(logs, target, schema=SCHEMA, estimators=["offcem"], items=cat, logging_policy=logging,
                     embedder=emb, embedding_clusters=n_groups, seed=s)
        new.append(r.get("offcem").estimate - truth)
        a, y = logs.item_id.to_numpy(), logs.click.to_numpy()
        q_item = (np.bincount(a, weights=y, minlength=n_items) + y.mean()) / (np.bincount(a, minlength=n_items) + 1)
        old.append(pie @ q_item + np.mean(w_cluster[a] * (y - q_item[a])) - truth)
    new, old = np.array(new), np.array(old)
    assert abs(new.mean()) < 2.5 * new.std(ddof=1) / np.sqrt(len(new)) + 0.005
    assert abs(new.mean()) < abs(old.mean()) / 3
