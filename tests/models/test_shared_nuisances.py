"""One run of ``uplift.estimate`` fits each nuisance once: AIPW, DML and CATE share them."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from causalrec.models import PrecomputedArmRegressor, PrecomputedClassifier, PrecomputedRegressor
from causalrec.uplift import estimate

FOLDS = 4


class CountingLogit(LogisticRegression):
    fits = 0

    def fit(self, X, y, sample_weight=None):
        type(self).fits += 1
        return super().fit(X, y, sample_weight=sample_weight)


class CountingLinear(LinearRegression):
    fits = 0

    def fit(self, X, y, sample_weight=None):
        type(self).fits += 1
        return super().fit(X, y, sample_weight=sample_weight)


def _frame(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-(0.8 * X[:, 0] - 0.5 * X[:, 1])))).astype(int)
    y = 1.0 + 1.5 * X[:, 0] + X[:, 1] + 2.0 * t + rng.normal(size=n)
    return pd.DataFrame({"user_id": np.arange(n) // 3, "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2],
                         "exposed": t, "revenue": y})


@pytest.fixture
def counted():
    CountingLogit.fits = 0
    CountingLinear.fits = 0
    return dict(propensity_model=CountingLogit(max_iter=1000), outcome_model=CountingLinear())


def test_aipw_and_dml_share_one_set_of_nuisance_fits(counted):
    df = _frame(2000)
    r = estimate(df, treatment="exposed", outcome="revenue", covariates=["x1", "x2", "x3"],
                 methods=("ipw", "aipw", "dml"), n_folds=FOLDS, dml_effect_modifiers=0, **counted)
    # e once per fold, mu0 and mu1 once per fold each; DML added no fit of its own
    assert CountingLogit.fits == FOLDS and CountingLinear.fits == 2 * FOLDS
    nu = r.nuisance
    cf = nu["crossfit"]
    np.testing.assert_array_equal(nu["mu1"], cf["mu1"])
    np.testing.assert_allclose(nu["m_hat"], nu["e_hat"] * nu["mu1"] + (1 - nu["e_hat"]) * nu["mu0"])
    ests = {(e.estimator, e.target): e.estimate for e in r.estimates}
    assert abs(ests[("aipw", "ate")] - 2.0) < 0.15 and abs(ests[("dml", "ate")] - 2.0) < 0.15
    sel = r.to_dict()["diagnostics"]["nuisance_models"]
    assert sel["e"]["chosen"] == "CountingLogit" and np.isfinite(sel["mu1"]["loss"])


@pytest.mark.parametrize("method", ["linear_dml", "dr_learner"])
def test_cate_reuses_the_runs_nuisances(counted, method):
    df = _frame(2000, seed=1)
    r = estimate(df, treatment="exposed", outcome="revenue", covariates=["x1", "x2", "x3"],
                 methods=("aipw",), n_folds=FOLDS, cate=method, curves=False, **counted)
    assert CountingLogit.fits == FOLDS and CountingLinear.fits == 2 * FOLDS
    cate = r.analysis.cate
    assert abs(cate.ate - 2.0) < 0.3 and cate.tau.shape[0] > 0


def test_candidates_reported_in_the_json():
    df = _frame(2000, seed=2)
    r = estimate(df, treatment="exposed", outcome="revenue", covariates=["x1", "x2", "x3"], methods=("aipw",),
                 n_folds=3, propensity_model=LogisticRegression(max_iter=1000),
                 outcome_model={"ridge_strong": Ridge(alpha=1e5), "ols": LinearRegression()})
    sel = r.to_dict()["diagnostics"]["nuisance_models"]
    for arm in ("mu0", "mu1"):
        assert sel[arm]["chosen"] == "ols"
        assert set(sel[arm]["losses"]) == {"ridge_strong", "ols"}
        assert sel[arm]["losses"]["ols"] < sel[arm]["losses"]["ridge_strong"]


def test_precomputed_models_look_rows_up():
    e, m = np.array([0.2, 0.7, 0.5]), np.array([1.0, 2.0, 3.0])
    X = np.c_[[9.0, 9.0], [2.0, 0.0]]
    assert PrecomputedRegressor(m).fit(X, None).predict(X).tolist() == [3.0, 1.0]
    assert PrecomputedClassifier(e).fit(X, None).predict_proba(X)[:, 1].tolist() == [0.5, 0.2]
    arm = PrecomputedArmRegressor(np.array([0.0, 10.0, 20.0]), np.array([1.0, 11.0, 21.0]))
    XT = np.c_[[9.0, 9.0, 9.0], [2.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    assert arm.fit(XT, None).predict(XT).tolist() == [21.0, 0.0, 10.0]
