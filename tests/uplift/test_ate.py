"""ATE/ATT estimators on arrays: linear-logistic confounded data with known effects."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from causalrec.uplift import aipw, aipw_scores, ipw, naive


def confounded(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    e = 1 / (1 + np.exp(-(0.8 * X[:, 0] - 0.5 * X[:, 1])))
    t = (rng.random(n) < e).astype(int)
    tau = 2.0 + X[:, 0]
    y0 = 1.0 + 1.5 * X[:, 0] + X[:, 1] - 0.5 * X[:, 2] + rng.normal(size=n)
    y = y0 + tau * t
    # population ATE is 2; ATT = 2 + E[X0 | T=1] (computed from the known propensity)
    att_true = 2.0 + np.sum(e * X[:, 0]) / np.sum(e)
    return X, t, y, e, 2.0, att_true


def fitted_nuisances(X, t, y):
    e_hat = LogisticRegression().fit(X, t).predict_proba(X)[:, 1]
    mu1 = LinearRegression().fit(X[t == 1], y[t == 1]).predict(X)
    mu0 = LinearRegression().fit(X[t == 0], y[t == 0]).predict(X)
    return e_hat, mu0, mu1


def covers(est, truth):
    return est.ci_low <= truth <= est.ci_high


def test_naive_is_biased_under_confounding():
    X, t, y, e, ate, att = confounded()
    est = {x.target: x for x in naive(t, y)}
    assert est["ate"].estimate - ate > 0.5  # treated have higher X0, which raises y
    assert not covers(est["ate"], ate)
    # Welch SE matches the textbook formula
    se = np.sqrt(y[t == 1].var(ddof=1) / (t == 1).sum() + y[t == 0].var(ddof=1) / (t == 0).sum())
    assert est["ate"].se == pytest.approx(se)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aipw_and_ipw_recover_ate_and_att(seed):
    X, t, y, e, ate, att = confounded(seed=seed)
    e_hat, mu0, mu1 = fitted_nuisances(X, t, y)
    a = {x.target: x for x in aipw(t, y, e_hat, mu0, mu1)}
    i = {x.target: x for x in ipw(t, y, e_hat)}
    assert covers(a["ate"], ate) and covers(a["att"], att)
    # IPW is noisier; use a 99.9% band (z = 3.3) so three seeds do not fail by chance
    assert abs(i["ate"].estimate - ate) < 3.3 * i["ate"].se
    assert abs(i["att"].estimate - att) < 3.3 * i["att"].se
    assert a["ate"].se < i["ate"].se  # the outcome model reduces variance


def test_aipw_doubly_robust_with_wrong_outcome_model():
    X, t, y, e, ate, _ = confounded(seed=3)
    e_hat, _, _ = fitted_nuisances(X, t, y)
    zeros = np.zeros_like(y)
    a = {x.target: x for x in aipw(t, y, e_hat, zeros, zeros)}
    assert covers(a["ate"], ate)


def test_aipw_doubly_robust_with_wrong_propensity():
    X, t, y, e, ate, _ = confounded(seed=4)
    _, mu0, mu1 = fitted_nuisances(X, t, y)
    flat = np.full_like(y, t.mean())
    a = {x.target: x for x in aipw(t, y, flat, mu0, mu1)}
    assert covers(a["ate"], ate)


def test_aipw_scores_mean_is_the_estimate():
    X, t, y, e, _, _ = confounded(n=500, seed=5)
    e_hat, mu0, mu1 = fitted_nuisances(X, t, y)
    psi = aipw_scores(t, y, e_hat, mu0, mu1)
    assert aipw(t, y, e_hat, mu0, mu1)[0].estimate == pytest.approx(psi.mean())


def test_cluster_robust_se_not_smaller_with_shared_user_effects():
    rng = np.random.default_rng(6)
    users = np.repeat(np.arange(500), 10)
    u = rng.normal(size=500)[users] * 2
    t = rng.integers(0, 2, 500)[users]  # exposure decided per user: rows of a user are not independent
    y = u + 0.5 * t + rng.normal(size=users.size)
    e = np.full(users.size, 0.5)
    plain = ipw(t, y, e)[0]
    clustered = ipw(t, y, e, groups=users)[0]
    assert clustered.se > 1.5 * plain.se
    assert covers(clustered, 0.5)
