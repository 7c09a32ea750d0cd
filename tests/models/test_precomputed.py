"""econml's DML final stage on nuisances computed elsewhere (PrecomputedRegressor/Classifier)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from causalrec.errors import InputError
from causalrec.models import PrecomputedClassifier, PrecomputedRegressor


def test_final_stage_equals_residual_on_residual():
    econml_dml = pytest.importorskip("econml.dml")
    rng = np.random.default_rng(0)
    n = 2_000
    x = rng.normal(size=n)
    e = 1 / (1 + np.exp(-x))
    t = (rng.random(n) < e).astype(int)
    y = 0.5 * t + x + rng.normal(size=n)
    # stand-ins for out-of-fold nuisances from some other learner
    e_oof = np.clip(e + rng.normal(scale=0.02, size=n), 0.05, 0.95)
    m_oof = 0.5 * e_oof + x + rng.normal(scale=0.05, size=n)
    est = econml_dml.LinearDML(model_y=PrecomputedRegressor(m_oof), model_t=PrecomputedClassifier(e_oof),
                               discrete_treatment=True, cv=3, random_state=0)
    est.fit(y, t, X=None, W=np.arange(n)[:, None], inference="statsmodels")
    rt, ry = t - e_oof, y - m_oof
    theta = float(rt @ ry / (rt @ rt))
    assert float(np.squeeze(est.ate())) == pytest.approx(theta, rel=1e-8)
    assert abs(theta - 0.5) < 0.15


def test_clone_and_row_lookup():
    reg = clone(PrecomputedRegressor(np.array([1.0, 2.0, 3.0])))
    assert reg.fit(np.c_[[0, 0], [2, 0]], [0, 0]).predict(np.c_[[9, 9], [2, 0]]).tolist() == [3.0, 1.0]
    clf = PrecomputedClassifier(np.array([0.2, 0.7])).fit(np.c_[[0, 1]], [0, 1])
    assert clf.predict_proba(np.c_[[1, 0]]).tolist() == [[pytest.approx(0.3), 0.7], [0.8, 0.2]]
    assert clf.predict(np.c_[[1, 0]]).tolist() == [1, 0]
    with pytest.raises(InputError, match="row numbers"):
        reg.predict(np.c_[[0.5]])
    with pytest.raises(InputError, match="row numbers"):
        reg.predict(np.c_[[3]])
