"""Properties of the estimators, checked on many generated cases (hypothesis)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from causalrec.data import LogSchema
from causalrec.inference import influence_se
from causalrec.ope import DR, IPS, SNIPS, OPEArrays, evaluate
from causalrec.ope.synthetic import policy_table

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCHEMA = LogSchema(outcome="click")


def _world(seed: int, n_items: int, n_pos: int, n: int, peaked: float):
    rng = np.random.default_rng(seed)
    logit = peaked * rng.normal(size=(n_items, n_pos))
    P0 = np.exp(logit) / np.exp(logit).sum(0)
    pos = rng.integers(0, n_pos, n)
    cdf = np.cumsum(P0, axis=0)
    item = np.minimum((rng.random(n)[:, None] * cdf[-1, pos][:, None] > cdf[:, pos].T).sum(1), n_items - 1)
    q = rng.uniform(0.0, 1.0, (n_items, n_pos))
    return rng, P0, pos, item, q


@SETTINGS
@given(seed=st.integers(0, 10_000), n_items=st.integers(1, 6), n_pos=st.integers(1, 3),
       n=st.integers(2, 300), peaked=st.floats(0.0, 3.0))
def test_target_equal_to_logging_gives_on_policy_mean(seed, n_items, n_pos, n, peaked):
    rng, P0, pos, item, q = _world(seed, n_items, n_pos, n, peaked)
    y = rng.random(n) < q[item, pos]
    logs = pd.DataFrame({"item_id": item, "position": pos, "click": y.astype(float), "propensity": P0[item, pos]})
    r = evaluate(logs, policy_table(P0), schema=SCHEMA, estimators=("ips", "snips"))
    assert r.get("ips").estimate == pytest.approx(y.mean(), abs=1e-12)
    assert r.get("snips").estimate == pytest.approx(y.mean(), abs=1e-12)
    assert r.diagnostics["ess"] == pytest.approx(n)


@SETTINGS
@given(seed=st.integers(0, 10_000), n_items=st.integers(2, 6), n_pos=st.integers(1, 3),
       n=st.integers(2, 300), peaked=st.floats(0.0, 2.0))
def test_dr_with_exact_outcome_model_is_exact_without_noise(seed, n_items, n_pos, n, peaked):
    # deterministic outcomes y = q(a, k): DR (and SNDR) recover sum_a pi(a|k) q(a, k) for any weights
    rng, P0, pos, item, q = _world(seed, n_items, n_pos, n, peaked)
    P1 = rng.dirichlet(np.ones(n_items), size=n_pos).T
    logs = pd.DataFrame({"item_id": item, "position": pos, "click": q[item, pos], "propensity": P0[item, pos]})

    def exact(frame):
        return q[frame["item_id"].to_numpy(), frame["position"].to_numpy()]

    r = evaluate(logs, policy_table(P1), schema=SCHEMA, estimators=("dm", "dr", "sndr", "dros"), outcome_model=exact)
    truth_rows = (P1 * q).sum(0)[pos].mean()
    for name in ("dm", "dr", "sndr", "dros"):
        assert r.get(name).estimate == pytest.approx(truth_rows, abs=1e-12)


def test_dr_with_exact_outcome_model_is_unbiased_with_noise():
    # E[DR] = V when q is exact: the average over 400 seeded logs is within 4 Monte Carlo SEs
    rng0, P0, _, _, q = _world(1, 5, 2, 1, 1.5)
    P1 = np.full((5, 2), 0.2)
    P1[0] = 0.6
    P1[1:] = 0.1
    V = (P1 * q).sum(0).mean()
    est = []
    for s in range(400):
        rng = np.random.default_rng(1000 + s)
        pos = rng.integers(0, 2, 200)
        cdf = np.cumsum(P0, axis=0)
        item = np.minimum((rng.random(200)[:, None] * cdf[-1, pos][:, None] > cdf[:, pos].T).sum(1), 4)
        y = (rng.random(200) < q[item, pos]).astype(float)
        d = OPEArrays(y=y, w=P1[item, pos] / P0[item, pos], q_logged=q[item, pos],
                      q_target=(P1 * q).sum(0)[pos])
        est.append(DR().estimate(d))
    est = np.array(est)
    assert abs(est.mean() - V) < 4 * est.std(ddof=1) / np.sqrt(len(est))


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(2, 500), scale=st.floats(1e-3, 1e3))
def test_snips_invariant_to_scaling_weights(seed, n, scale):
    rng = np.random.default_rng(seed)
    w = rng.exponential(1.0, n)
    y = rng.normal(size=n)
    a = OPEArrays(y=y, w=w)
    b = OPEArrays(y=y, w=w * scale)
    e = SNIPS()
    assert e.estimate(b) == pytest.approx(e.estimate(a), rel=1e-9, abs=1e-12)
    assert influence_se(e.influence(b)) == pytest.approx(influence_se(e.influence(a)), rel=1e-9, abs=1e-12)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(2, 500), clip_q=st.floats(0.0, 1.0))
def test_clipping_never_increases_variance(seed, n, clip_q):
    # for clicks (0/1 outcomes) the clipped IPS term min(w, c) y = min(w y, c) is a 1-Lipschitz map of w y,
    # so neither the variance of the weights nor the IPS standard error can grow
    rng = np.random.default_rng(seed)
    w = rng.lognormal(0.0, 1.5, n)
    y = (rng.random(n) < 0.3).astype(float)
    c = float(np.quantile(w, clip_q)) + 1e-12
    d = OPEArrays(y=y, w=w)
    se_raw = influence_se(IPS().influence(d))
    se_clip = influence_se(IPS(clip=c).influence(d))
    assert se_clip <= se_raw + 1e-12
    assert np.var(np.minimum(w, c)) <= np.var(w) + 1e-12
    # and for DR with the same outcome model, clipping only removes weight mass
    assert DR(clip=c).estimate(OPEArrays(y, w, np.zeros(n), np.zeros(n))) <= IPS().estimate(d) + 1e-12
