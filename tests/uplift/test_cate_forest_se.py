"""Causal forest ATE standard error: econml's ate__inference(), not the RMS of pointwise SEs."""

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV

from causalrec.uplift.cate import fit_cate


def test_causal_forest_ate_se_is_the_ate_own_se():
    rng = np.random.default_rng(0)
    n = 1500
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    tau = 0.5 + X[:, 1]
    y = X[:, 0] + tau * t + rng.normal(size=n)
    r = fit_cate(y, t, X[:, 1:2], W=X, method="causal_forest", model_y=RidgeCV(), model_t=LogisticRegression(),
                 cv=2, n_estimators=40)
    est = r.estimator
    assert r.ate_se == float(np.squeeze(est.ate_stderr_))
    assert r.ate == float(np.squeeze(est.ate_))
    rms = float(np.squeeze(est.ate_inference(X[:, 1:2]).stderr_mean))
    assert r.ate_se < 0.8 * rms  # the conservative bound is much wider
    assert r.ate_ci[0] < tau.mean() < r.ate_ci[1]
