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
