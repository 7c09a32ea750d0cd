"""Per-group effects and the uplift-curve bootstrap, cluster-robust by user (issue 14)."""

import numpy as np
import pytest

from causalrec.uplift.curves import uplift_curve
from causalrec.uplift.segments import group_effects


def user_data(n_users=300, per_user=8, seed=0):
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_users), per_user)
    t = (rng.random(n_users) < 0.5).astype(int)[u]  # exposure decided per user: rows of a user move together
    y = rng.normal(scale=2.0, size=n_users)[u] + (1.0 + rng.normal(size=n_users)[u]) * t + rng.normal(size=u.size)
    e = np.full(u.size, 0.5)
    mu = np.zeros(u.size)
    g = np.where(u % 2 == 0, "a", "b")
    return u, t, y, e, mu, g


def test_group_se_is_cluster_robust():
    u, t, y, e, mu, g = user_data()
    plain = group_effects(y, t, e, mu, mu, g).table.set_index("group")
    robust = group_effects(y, t, e, mu, mu, g, clusters=u).table.set_index("group")
    np.testing.assert_allclose(robust["estimate"], plain["estimate"])
    assert (robust["se"] > 1.5 * plain["se"]).all()  # 8 correlated rows per user
    # hand-computed Liang-Zeger for group "a"
    from causalrec.uplift.ate import aipw_scores

    psi = aipw_scores(t, y, e, mu, mu)
    m = g == "a"
    dev = psi[m] - psi[m].mean()
    sums = np.bincount(u[m], weights=dev)[np.unique(u[m])]
    c = len(sums)
    assert robust.loc["a", "se"] == pytest.approx(np.sqrt(c / (c - 1) * (sums ** 2).sum()) / m.sum())


def test_one_row_per_user_matches_row_se():
    rng = np.random.default_rng(2)
    n = 800
    t = (rng.random(n) < 0.5).astype(int)
    y = t + rng.normal(size=n)
    e, mu = np.full(n, 0.5), np.zeros(n)
    g = np.where(rng.random(n) < 0.5, "a", "b")
    plain = group_effects(y, t, e, mu, mu, g).table.set_index("group")
    robust = group_effects(y, t, e, mu, mu, g, clusters=np.arange(n)).table.set_index("group")
    # G/(G-1) vs the n-1 denominator: identical
    np.testing.assert_allclose(robust["se"], plain["se"], rtol=1e-9)


def test_curve_bootstrap_resamples_users():
    u, t, y, e, mu, g = user_data()
    score = np.random.default_rng(3).normal(size=u.size)
    rows = uplift_curve(score, y, t, e_hat=e, mu0=mu, mu1=mu, n_boot=200, seed=0)
    users = uplift_curve(score, y, t, e_hat=e, mu0=mu, mu1=mu, n_boot=200, seed=0, clusters=u)
    assert rows.auuc == users.auuc
    width = lambda c: c.auuc_ci[1] - c.auuc_ci[0]  # noqa: E731
    assert width(users) > 1.4 * width(rows)
