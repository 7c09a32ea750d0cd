"""Uplift / Qini curves with DR, IPS and plain weighting, and their bootstrap."""

import numpy as np
import pytest

from causalrec.errors import InputError
from causalrec.uplift.curves import uplift_curve


def _logged(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    e = 1 / (1 + np.exp(-1.5 * X[:, 0]))
    t = (rng.random(n) < e).astype(int)
    tau = 0.2 + 0.5 * X[:, 1] + 0.4 * X[:, 0]  # effect correlated with the confounder
    y = 2 * X[:, 0] + tau * t + rng.normal(size=n)
    return X, e, t, tau, y


def _true_qini(score, tau):
    o = np.argsort(-score, kind="stable")
    n = tau.size
    frac = np.linspace(0, 1, 101)
    k = np.maximum(np.ceil(frac * n).astype(int), 1) - 1
    g = np.cumsum(tau[o])[k] / n
    g[0] = 0
    return np.trapezoid(g - frac * g[-1], frac)


@pytest.mark.parametrize("weighting", ["dr", "ips"])
def test_weighted_curve_is_valid_on_logged_data(weighting):
    X, e, t, tau, y = _logged()
    mu0, mu1 = 2 * X[:, 0], 2 * X[:, 0] + tau
    r = uplift_curve(tau, y, t, e_hat=e, mu0=mu0, mu1=mu1, weighting=weighting, n_boot=100)
    truth = _true_qini(tau, tau)
    assert r.qini_ci[0] < truth < r.qini_ci[1]
    assert r.overall == pytest.approx(tau.mean(), abs=0.1)
    assert np.all(r.gain_low <= r.gain + 1e-12) and np.all(r.gain <= r.gain_high + 1e-12)


def test_plain_curve_is_biased_on_logged_data_but_fine_when_randomised():
    X, e, t, tau, y = _logged()
    truth = _true_qini(tau, tau)
    biased = uplift_curve(tau, y, t, weighting="plain", n_boot=0)
    assert abs(biased.qini - truth) > 0.05  # confounding distorts the unweighted curve
    rng = np.random.default_rng(1)
    tr = (rng.random(t.size) < 0.5).astype(int)
    yr = 2 * X[:, 0] + tau * tr + rng.normal(size=t.size)
    r = uplift_curve(tau, yr, tr, n_boot=100)
    assert r.weighting == "plain" and r.qini_ci[0] < truth < r.qini_ci[1]


def test_random_ranking_has_no_qini():
    X, e, t, tau, y = _logged()
    rng = np.random.default_rng(2)
    r = uplift_curve(rng.normal(size=t.size), y, t, e_hat=e, mu0=2 * X[:, 0], mu1=2 * X[:, 0] + tau, n_boot=100)
    assert r.qini_ci[0] < 0 < r.qini_ci[1]


def test_bootstrap_seeded_and_inputs_checked():
    X, e, t, tau, y = _logged(n=2000)
    a = uplift_curve(tau, y, t, e_hat=e, n_boot=20, seed=5)
    b = uplift_curve(tau, y, t, e_hat=e, n_boot=20, seed=5)
    assert a.weighting == "ips" and a.qini_ci == b.qini_ci
    assert list(a.to_frame().columns)[:4] == ["fraction", "uplift", "gain", "random"]
    with pytest.raises(InputError):
        uplift_curve(tau[:-1], y, t)
    with pytest.raises(InputError):
        uplift_curve(tau, y, t, weighting="dr", e_hat=e)
    with pytest.raises(InputError):
        uplift_curve(tau, y, t, weighting="ips")
