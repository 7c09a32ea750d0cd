"""CATE through econml with explicit nuisances, and per-group AIPW effects."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, RidgeCV

from causalrec.errors import InputError
from causalrec.uplift.cate import fit_cate, make_cate_estimator
from causalrec.uplift.segments import embedding_segments, group_effects


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    e = 1 / (1 + np.exp(-X[:, 0]))
    t = (rng.random(n) < e).astype(int)
    tau = 0.5 + 1.0 * X[:, 1]
    y = X[:, 0] + 0.5 * X[:, 2] + tau * t + rng.normal(size=n)
    return X, e, t, tau, y


@pytest.mark.parametrize("method", ["linear_dml", "dr_learner"])
def test_linear_cate_recovers_effect(method):
    X, e, t, tau, y = _data()
    r = fit_cate(y, t, X[:, 1:2], W=X, method=method, model_y=RidgeCV(), model_t=LogisticRegression(), cv=3)
    assert r.tau.shape == (3000,) and r.tau_low.shape == r.tau.shape
    assert np.all(r.tau_low <= r.tau) and np.all(r.tau <= r.tau_high)
    assert np.corrcoef(r.tau, tau)[0, 1] > 0.98
    assert r.ate_ci[0] < tau.mean() < r.ate_ci[1]
    assert set(r.to_dict()) >= {"ate", "ate_ci", "cate_quantiles"}


def test_causal_forest_runs():
    X, e, t, tau, y = _data(n=1500)
    r = fit_cate(y, t, X[:, 1:2], W=X, method="causal_forest", model_y=RidgeCV(), model_t=LogisticRegression(),
                 cv=2, n_estimators=40, X_predict=X[:100, 1:2])
    assert r.tau.shape == (100,) and np.corrcoef(r.tau, tau[:100])[0, 1] > 0.8


def test_cate_rejects_bad_inputs():
    X, e, t, tau, y = _data(n=200)
    with pytest.raises(InputError):
        make_cate_estimator("x_learner", model_y=RidgeCV(), model_t=LogisticRegression())
    with pytest.raises(InputError, match="predict_proba"):
        make_cate_estimator("linear_dml", model_y=LogisticRegression(), model_t=LogisticRegression())
    with pytest.raises(InputError):
        fit_cate(y, t * 2, X[:, :1], model_y=RidgeCV(), model_t=LogisticRegression())


def test_group_effects_known_truth():
    rng = np.random.default_rng(3)
    n = 30000
    X = rng.normal(size=n)
    e = 1 / (1 + np.exp(-X))
    t = (rng.random(n) < e).astype(int)
    g = rng.integers(0, 5, n)
    effect = np.array([0.0, 0.0, 0.5, 1.0, -0.5])[g]
    y = X + effect * t + rng.normal(size=n)
    mu0, mu1 = X, X + effect + 0.3  # outcome model wrong by 0.3 in arm 1: AIPW corrects it
    r = group_effects(y, t, e, mu0, mu1, g, by="item_id")
    tab = r.table.set_index("item_id")
    for k, truth in enumerate([0.0, 0.0, 0.5, 1.0, -0.5]):
        assert tab.loc[k, "ci_low"] < truth < tab.loc[k, "ci_high"]
    assert (tab["p_holm"] >= tab["p_value"] - 1e-15).all() and (tab["p_bh"] >= tab["p_value"] - 1e-15).all()
    assert tab.loc[3, "p_holm"] < 0.05
    assert "Holm" in r.note and "Benjamini-Hochberg" in r.note


def test_group_effects_drops_small_and_one_arm_groups():
    rng = np.random.default_rng(0)
    n = 400
    t = rng.integers(0, 2, n)
    g = np.where(np.arange(n) < 10, "tiny", "big").astype(object)
    g[(t == 1) & (np.arange(n) >= 10)] = "big"
    g[np.arange(n) >= 390] = "treated_only"
    t[np.arange(n) >= 390] = 1
    y = rng.normal(size=n)
    r = group_effects(y, t, np.full(n, 0.5), np.zeros(n), np.zeros(n), g, min_size=5)
    assert list(r.table["group"]) == ["big", "tiny"] or set(r.table["group"]) <= {"big", "tiny"}
    assert "treated_only" not in set(r.table["group"])
    assert r.n_groups_dropped >= 1
    with pytest.raises(InputError):
        group_effects(y, t, np.full(n, 0.5), np.zeros(n), np.zeros(n), g[:-1])


def test_embedding_segments_seeded():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5, size=(3, 8))
    emb = np.repeat(centres, 50, axis=0) + rng.normal(size=(150, 8))
    a = embedding_segments(emb, 3, random_state=1)
    b = embedding_segments(emb, 3, random_state=1)
    assert (a == b).all() and len(set(a)) == 3
    # clusters recover the generating centres
    assert pd.crosstab(np.repeat(np.arange(3), 50), a).max(axis=1).min() == 50
