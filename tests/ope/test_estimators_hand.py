"""Hand-computed small cases for every estimator (numbers worked out on paper, as fractions)."""

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.ope import (
    DM,
    DR,
    IPS,
    SNDR,
    SNIPS,
    CellMeanOutcome,
    DRos,
    Moments,
    OPEArrays,
    SwitchDR,
    evaluate,
)

# 4 impressions, no positions; target pi(0) = 0.8, pi(1) = 0.2; q(0) = 0.6, q(1) = 0.3 (fixed).
LOGS = pd.DataFrame({"item_id": [0, 1, 0, 1], "outcome": [1.0, 0.0, 0.0, 1.0],
                     "propensity": [0.5, 0.5, 0.25, 0.75]})
TARGET = pd.DataFrame({"item_id": [0, 1], "prob": [0.8, 0.2]})
Q = {0: 0.6, 1: 0.3}
W = np.array([1.6, 0.4, 3.2, 4 / 15])
R = np.array([0.4, -0.3, -0.6, 0.7])  # y - q(logged)
SCHEMA = LogSchema(position=None)


def _q(frame):
    return frame["item_id"].map(Q).to_numpy(dtype=float)


def _res(**kw):
    kw.setdefault("estimators", ("dm", "ips", "snips", "dr", "sndr", "switch_dr", "dros"))
    return evaluate(LOGS, TARGET, schema=SCHEMA, outcome_model=_q, **kw)


def test_point_estimates_by_hand():
    r = _res(switch_tau=1.0, dros_lambda=1.0)
    assert r.get("dm").estimate == pytest.approx(0.54, abs=1e-12)
    assert r.get("ips").estimate == pytest.approx(7 / 15, abs=1e-12)  # (1.6 + 4/15) / 4
    assert r.get("snips").estimate == pytest.approx(14 / 41, abs=1e-12)  # (28/15) / (82/15)
    assert r.get("dr").estimate == pytest.approx(0.54 + (0.64 - 0.12 - 1.92 + 0.7 * 4 / 15) / 4, abs=1e-12)
    assert r.get("sndr").estimate == pytest.approx(0.54 + (0.64 - 0.12 - 1.92 + 0.7 * 4 / 15) / (82 / 15), abs=1e-12)
    # Switch (tau = 1): only rows 1 and 3 (w <= 1) keep their correction
    assert r.get("switch_dr").estimate == pytest.approx(0.54 + (-0.12 + 0.7 * 4 / 15) / 4, abs=1e-12)
    # DRos (lambda = 1): w~ = w / (w^2 + 1)
    ws = W / (W**2 + 1)
    assert r.get("dros").estimate == pytest.approx(0.54 + (ws * R).sum() / 4, abs=1e-12)
    assert r.get("dros").estimate == pytest.approx(0.559946, abs=1e-6)


def test_standard_errors_by_hand():
    r = _res()
    psi_ips = np.array([1.6, 0.0, 0.0, 4 / 15])
    assert r.get("ips").se == pytest.approx(np.std(psi_ips, ddof=1) / 2, rel=1e-12)
    v = 14 / 41
    psi_sn = W * (np.array([1, 0, 0, 1]) - v) / W.mean()
    assert r.get("snips").se == pytest.approx(np.std(psi_sn, ddof=1) / 2, rel=1e-12)
    psi_dr = 0.54 + W * R
    assert r.get("dr").se == pytest.approx(np.std(psi_dr, ddof=1) / 2, rel=1e-12)
    rr = (W * R).sum() / W.sum()
    psi_sndr = 0.54 + W * (R - rr) / W.mean()
    assert r.get("sndr").se == pytest.approx(np.std(psi_sndr, ddof=1) / 2, rel=1e-12)
    assert r.get("dm").se == pytest.approx(0.0, abs=1e-15)  # constant model term
    e = r.get("ips")
    assert e.ci_low == pytest.approx(7 / 15 - 1.959963984540054 * e.se, rel=1e-9)


def test_clipping_by_hand():
    r = _res(estimators=("ips", "snips", "dr"), clip=1.0)
    wc = np.minimum(W, 1.0)
    assert r.get("ips").estimate == pytest.approx((1 + 4 / 15) / 4, abs=1e-12)
    assert r.get("snips").estimate == pytest.approx((1 + 4 / 15) / wc.sum(), abs=1e-12)
    assert r.get("dr").estimate == pytest.approx(0.54 + (wc * R).sum() / 4, abs=1e-12)
    assert r.diagnostics["share_clipped"] == pytest.approx(0.5)
    assert r.diagnostics["ess"] == pytest.approx(wc.sum() ** 2 / (wc**2).sum())


def test_diagnostics_by_hand():
    r = _res(estimators=("ips",))
    d = r.diagnostics
    assert d["ess"] == pytest.approx(W.sum() ** 2 / (W**2).sum())
    assert d["ess_ratio"] == pytest.approx(d["ess"] / 4)
    assert d["weight_max"] == pytest.approx(3.2)
    assert d["propensity_min"] == 0.25 and d["propensity_max"] == 0.75
    assert d["weight_p50"] == pytest.approx(np.quantile(W, 0.5))
    assert d["logged_mean_outcome"] == 0.5
    assert sum(r.weight_histogram["counts"]) == 4


def test_estimator_dataclasses_directly():
    d = OPEArrays(y=np.array([1.0, 0, 0, 1]), w=W, q_logged=np.array([0.6, 0.3, 0.6, 0.3]),
                  q_target=np.full(4, 0.54))
    assert IPS().estimate(d) == pytest.approx(7 / 15)
    assert IPS(clip=1.0).estimate(d) == pytest.approx((1 + 4 / 15) / 4)
    assert SNIPS().estimate(d) == pytest.approx(14 / 41)
    assert DM().estimate(d) == pytest.approx(0.54)
    assert DR().estimate(d) == pytest.approx(0.54 + (W * R).sum() / 4)
    assert SNDR().estimate(d) == pytest.approx(0.54 + (W * R).sum() / W.sum())
    assert SwitchDR(tau=np.inf).estimate(d) == pytest.approx(DR().estimate(d))
    assert SwitchDR(tau=0.0).estimate(d) == pytest.approx(DM().estimate(d))
    assert DRos(lam=1e12).estimate(d) == pytest.approx(DR().estimate(d), abs=1e-9)
    assert DRos(lam=0.0).estimate(d) == pytest.approx(DM().estimate(d))
    for e in (IPS(), SNIPS(), DR(), SNDR(), DRos(lam=1.0)):
        psi = e.influence(d)
        assert psi.mean() == pytest.approx(e.estimate(d))
        est, se = e.moments(d).estimate_se()
        assert est == pytest.approx(e.estimate(d), abs=1e-12)
        assert se == pytest.approx(np.std(psi, ddof=1) / 2, rel=1e-10)
    # moments merge in any split
    m = Moments()
    for sl in (slice(0, 1), slice(1, 3), slice(3, 4)):
        part = OPEArrays(d.y[sl], d.w[sl], d.q_logged[sl], d.q_target[sl])
        m = m.merge(SNDR().moments(part))
    assert m.estimate_se()[1] == pytest.approx(SNDR().moments(d).estimate_se()[1], rel=1e-12)


def test_positions_and_cell_means_by_hand():
    # 2 items x 2 positions, positional target; cell means without folds or shrinkage
    logs = pd.DataFrame({
        "item_id": [0, 0, 1, 1, 0, 1],
        "position": [0, 0, 0, 1, 1, 1],
        "outcome": [1.0, 0.0, 1.0, 0.0, 1.0, 1.0],
        "propensity": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    })
    target = pd.DataFrame({"item_id": [0, 1, 0, 1], "position": [0, 0, 1, 1], "prob": [1.0, 0.0, 0.25, 0.75]})
    model = CellMeanOutcome(prior_strength=0.0, n_folds=1)
    r = evaluate(logs, target, schema=LogSchema(), estimators=("dm", "ips", "dr"), outcome_model=model)
    # weights: pi(item | position) / 0.5
    w = np.array([2, 2, 0, 1.5, 0.5, 1.5])
    y = logs["outcome"].to_numpy()
    assert r.get("ips").estimate == pytest.approx((w * y).sum() / 6)
    # cells: q(0,0) = 0.5, q(1,0) = 1, q(0,1) = 1, q(1,1) = 0.5
    qpi = np.array([0.5, 0.5, 0.5, 0.25 + 0.375, 0.25 + 0.375, 0.25 + 0.375])
    assert r.get("dm").estimate == pytest.approx(qpi.mean())
    qa = np.array([0.5, 0.5, 1.0, 0.5, 1.0, 0.5])
    assert r.get("dr").estimate == pytest.approx((qpi + w * (y - qa)).mean())


def test_cell_means_shrink_and_cross_fit():
    from causalrec.ope.outcome import fold_ids

    rng = np.random.default_rng(0)
    n = 400
    logs = pd.DataFrame({"item_id": rng.integers(0, 3, n), "outcome": rng.random(n), "propensity": 1 / 3})
    target = pd.DataFrame({"item_id": [0, 1, 2], "prob": [0.2, 0.3, 0.5]})
    m = CellMeanOutcome(prior_strength=2.0, n_folds=3)
    r = evaluate(logs, target, schema=LogSchema(position=None), estimators=("dm",), outcome_model=m)
    folds = fold_ids(0, n, 3, 0)
    y, it = logs["outcome"].to_numpy(), logs["item_id"].to_numpy()
    qpi = np.zeros(n)
    for f in range(3):
        tr = folds != f
        g = y[tr].mean()
        q = np.array([(y[tr & (it == a)].sum() + 2 * g) / ((tr & (it == a)).sum() + 2) for a in range(3)])
        qpi[folds == f] = q @ np.array([0.2, 0.3, 0.5])
    assert r.get("dm").estimate == pytest.approx(qpi.mean(), rel=1e-12)
    assert set(np.unique(folds)) == {0, 1, 2}


def test_fast_influence_se_equals_reference():
    from causalrec.inference import influence_se
    from causalrec.ope.estimators import influence_se_fast

    rng = np.random.default_rng(1)
    for psi in (rng.normal(size=1000), 1e6 + 1e-3 * rng.normal(size=1000), np.full(10, 0.3), rng.exponential(size=7)):
        assert influence_se_fast(psi) == pytest.approx(influence_se(psi), rel=1e-9, abs=1e-15)


def test_moments_of_terms_equals_dense_moments():
    from causalrec.ope.estimators import _dense

    rng = np.random.default_rng(2)
    c, a, b = rng.normal(size=50), rng.normal(size=50), rng.exponential(size=50)
    for t in ((None, a, None), (c, a, None), (None, a, b), (c, a, b)):
        m1, m2 = Moments.of_terms(*t), Moments.of(*_dense(*t))
        np.testing.assert_allclose(m1.mean, m2.mean, rtol=1e-12)
        np.testing.assert_allclose(m1.m2, m2.m2, rtol=1e-10, atol=1e-12)
