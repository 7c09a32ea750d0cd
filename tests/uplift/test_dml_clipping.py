"""DML standard errors from the final stage's scores, and propensity clipping that is measured
and can be switched off (issue 14, statistical defects)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LinearRegression

from causalrec.models import PrecomputedClassifier, PrecomputedRegressor
from causalrec.uplift import estimate
from causalrec.uplift.ate import dml


def clustered_data(n_users=400, per_user=5, seed=0):
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_users), per_user)
    x = rng.normal(size=n_users)[u] + 0.3 * rng.normal(size=u.size)
    e = 1 / (1 + np.exp(-0.7 * x))
    t = (rng.random(u.size) < e).astype(int)
    user_effect = rng.normal(scale=1.5, size=n_users)[u]  # outcome noise shared within a user
    user_tau = 1.0 + rng.normal(scale=1.0, size=n_users)[u]  # and effects that vary by user
    y = x + user_tau * t + user_effect + rng.normal(size=u.size)
    m = x + e * 1.0
    return u, x, e, t, y, m


def _dml(u, e, t, y, m, groups, mods=None, ci_target="sample"):
    W = np.arange(len(t), dtype=float)[:, None]
    est, fitted = dml(W, t, y, model_y=PrecomputedRegressor(m), model_t=PrecomputedClassifier(e),
                      effect_modifiers=mods, n_folds=2, groups=groups, ci_target=ci_target)
    return est, fitted


def test_dml_se_without_clusters_matches_econml_hc0():
    u, x, e, t, y, m = clustered_data()
    W = np.arange(len(t), dtype=float)[:, None]
    from econml.dml import LinearDML

    ref = LinearDML(model_y=PrecomputedRegressor(m), model_t=PrecomputedClassifier(e), discrete_treatment=True,
                    cv=2, random_state=0).fit(y, t, W=W, inference="statsmodels")
    ours, _ = _dml(u, e, t, y, m, groups=None)
    assert ours[0].estimate == pytest.approx(float(np.squeeze(ref.ate())), rel=1e-9)
    # constant effect: theta(x_i) does not vary, so the SE is the final stage's (HC0 vs ddof=1: ~0.1%)
    assert ours[0].se == pytest.approx(float(np.squeeze(ref.ate_inference().stderr_mean)), rel=0.01)


def test_dml_se_is_cluster_robust_by_user():
    u, x, e, t, y, m = clustered_data()
    plain, _ = _dml(u, e, t, y, m, groups=None, mods=x[:, None])
    clustered, _ = _dml(u, e, t, y, m, groups=u, mods=x[:, None])
    assert clustered[0].estimate == pytest.approx(plain[0].estimate)
    # five correlated rows per user: the row-independent SE is far too narrow
    assert clustered[0].se > 1.1 * plain[0].se
    # the clustered SE agrees with the spread of the estimate over a user-level bootstrap
    rng = np.random.default_rng(1)
    reps = []
    for _ in range(60):
        users = rng.integers(0, u.max() + 1, size=u.max() + 1)
        rows = np.concatenate([np.flatnonzero(u == k) for k in users])
        est, _ = _dml(u[rows], e[rows], t[rows], y[rows], m[rows], groups=None, mods=x[rows][:, None])
        reps.append(est[0].estimate)
    assert clustered[0].se == pytest.approx(np.std(reps, ddof=1), rel=0.35)


def test_dml_ate_includes_the_spread_of_theta():
    u, x, e, t, y, m = clustered_data()
    est, fitted = _dml(u, e, t, y, m, groups=None, mods=x[:, None], ci_target="population")
    sample, _ = _dml(u, e, t, y, m, groups=None, mods=x[:, None])
    assert sample[0].se < est[0].se  # the sample (conditional) target holds the x_i fixed
    # econml's stderr_mean treats the x_i as fixed; the population target adds Var(theta(x_i)) / n
    theta = np.asarray(fitted.effect(x[:, None])).ravel()
    assert est[0].estimate == pytest.approx(theta.mean())
    assert est[0].se ** 2 >= theta.var() / len(theta)


class FixedPropensity(ClassifierMixin, BaseEstimator):
    """Predicts P(T=1) = sigmoid(3 x0): known probabilities, many below 0.05."""

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-3.0 * np.asarray(X)[:, 0]))
        return np.column_stack([1 - p, p])


def clip_frame(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-3.0 * x))
    t = (rng.random(n) < p).astype(int)
    y = x + t + rng.normal(size=n)
    return pd.DataFrame({"x": x, "t": t, "y": y}), p


def test_share_clipped_is_measured_on_unclipped_probabilities():
    df, p = clip_frame()
    from causalrec.features import design_matrix

    xs = design_matrix(covariates=df[["x"]])[:, 0]  # the standardised x the model sees
    p_model = 1 / (1 + np.exp(-3.0 * xs))
    r = estimate(df, treatment="t", outcome="y", covariates=["x"], methods=["ipw"], n_folds=2, clip=0.05,
                 propensity_model=FixedPropensity(), outcome_model=LinearRegression())
    expected = float(np.mean((p_model < 0.05) | (p_model > 0.95)))
    assert expected > 0.1
    assert r.diagnostics["share_clipped"] == pytest.approx(expected)
    assert any("clipped" in w for w in r.warnings)
    assert r.nuisance["e_hat"].min() == pytest.approx(0.05)


def test_clip_zero_disables_clipping_with_the_default_model():
    df, _ = clip_frame(800)
    kw = dict(treatment="t", outcome="y", covariates=["x"], methods=["ipw"], n_folds=2, device="cpu")
    r0 = estimate(df, clip=0.0, **kw)
    r1 = estimate(df, clip=0.01, **kw)
    e0, e1 = r0.nuisance["e_hat"], r1.nuisance["e_hat"]
    assert r0.diagnostics["share_clipped"] == 0.0
    # the default propensity model does not floor its own output: clip=0 leaves it alone
    assert e0.min() < 0.01 or e0.max() > 0.99
    assert r1.diagnostics["share_clipped"] == pytest.approx(float(np.mean((e0 < 0.01) | (e0 > 0.99))))
    np.testing.assert_allclose(e1, np.clip(e0, 0.01, 0.99))
