"""Bilinear two-tower nuisance heads: scikit-learn contract, the u^T W v term, econml."""

import numpy as np
import pytest
from sklearn.base import clone

from causalrec.errors import InputError
from causalrec.models.text_models import (
    BilinearOutcomeModel,
    BilinearPropensityModel,
    cross_fitted_loss,
)


def bilinear_data(n=3000, d=8, seed=0):
    """Exposure depends on u^T v only (an interaction no additive model sees)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, d)) / np.sqrt(d)
    v = rng.normal(size=(n, d)) / np.sqrt(d)
    s = 3.0 * (u * v).sum(1) * np.sqrt(d)
    t = (rng.random(n) < 1 / (1 + np.exp(-s))).astype(int)
    return np.hstack([u, v]), t, s


FAST = dict(hidden_layer_sizes=(), max_epochs=40, batch_size=128, device="cpu", learning_rate=1e-2)


def test_get_params_clone_and_bilinear_term_learns_interaction():
    X, t, s = bilinear_data()
    m = BilinearPropensityModel(embedding_dim=8, rank=8, **FAST)
    assert clone(m).get_params() == m.get_params()
    assert {"embedding_dim", "rank", "shared_towers"} <= set(m.get_params())
    tr, te = slice(0, 2000), slice(2000, None)
    p = m.fit(X[tr], t[tr]).predict_proba(X[te])[:, 1]
    from causalrec.models import PropensityModel

    lin = PropensityModel(**FAST).fit(X[tr], t[tr]).predict_proba(X[te])[:, 1]
    # a linear logit on [u, v] cannot see u^T v; the bilinear head can
    assert np.corrcoef(p, s[te])[0, 1] > 0.8
    assert abs(np.corrcoef(lin, s[te])[0, 1]) < 0.2
    assert cross_fitted_loss("log", t[te], p) < cross_fitted_loss("log", t[te], lin)


def test_outcome_head_is_regressor_and_unshared_towers_run():
    X, t, s = bilinear_data(n=1500)
    y = s + np.random.default_rng(1).normal(size=len(s)) * 0.1
    m = BilinearOutcomeModel(embedding_dim=8, rank=8, shared_towers=False, **FAST).fit(X, y)
    assert not hasattr(m, "predict_proba")
    assert m.predict(X).shape == (len(y),)
    assert np.corrcoef(m.predict(X), s)[0, 1] > 0.8


def test_bad_embedding_dim():
    X, t, _ = bilinear_data(n=200)
    with pytest.raises(InputError) as exc:
        BilinearPropensityModel(embedding_dim=None, **FAST).fit(X, t)
    assert exc.value.column == "embedding_dim"
    with pytest.raises(InputError):
        BilinearPropensityModel(embedding_dim=9, **FAST).fit(X, t)


def test_econml_accepts_the_heads():
    from econml.dml import LinearDML

    X, t, s = bilinear_data(n=1200)
    y = 0.5 * t + s + np.random.default_rng(2).normal(size=len(t))
    est = LinearDML(model_y=BilinearOutcomeModel(embedding_dim=8, rank=4, **FAST),
                    model_t=BilinearPropensityModel(embedding_dim=8, rank=4, **FAST),
                    discrete_treatment=True, cv=2, random_state=0)
    est.fit(y, t, X=None, W=X)
    assert np.isfinite(est.ate())


def test_cross_fitted_loss():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.2, 0.8, 0.6, 0.4])
    assert cross_fitted_loss("log", y, p) == pytest.approx(-np.mean(np.log([0.8, 0.8, 0.6, 0.6])))
    assert cross_fitted_loss("mse", y, p, mask=np.array([1, 1, 0, 0], bool)) == pytest.approx(0.04)
    with pytest.raises(InputError):
        cross_fitted_loss("hinge", y, p)


def test_shared_representation_through_the_engine():
    from causalrec.models import TreatmentOutcome, cross_fit, make_folds
    from causalrec.models.text_models import SharedTextNuisance

    X, t, s = bilinear_data(n=1200)
    rng = np.random.default_rng(3)
    y = (rng.random(len(t)) < 1 / (1 + np.exp(-(0.8 * s + 0.5 * t)))).astype(float)
    m = SharedTextNuisance(embedding_dim=8, rank=8, hidden_layer_sizes=(), max_epochs=30, device="cpu",
                           learning_rate=1e-2)
    assert clone(m).get_params() == m.get_params()
    folds = make_folds(len(t), 2, stratify=t, random_state=0)
    cf = cross_fit(TreatmentOutcome(None, None, joint={"shared": m}), {"X": X, "t": t, "y": y}, folds)
    e, mu0, mu1 = cf["e"], cf["mu0"], cf["mu1"]
    assert e.shape == mu0.shape == mu1.shape == (len(t),)
    assert ((e > 0) & (e < 1)).all() and ((mu0 >= 0) & (mu1 <= 1)).all()
    assert np.corrcoef(e, s)[0, 1] > 0.6  # the shared towers see the u^T v that drives exposure
    with pytest.raises(InputError):
        SharedTextNuisance(embedding_dim=8).fit(X, t)  # needs Y = [t, y]


@pytest.mark.parametrize("kind", ["propensity", "outcome", "shared"])
def test_fitted_heads_pickle_and_predict_the_same(kind):
    # joblib caches, econml's copies and users' saved models need picklable networks (no closures)
    import pickle

    from causalrec.models.text_models import SharedTextNuisance

    X, t, s = bilinear_data(n=600)
    if kind == "propensity":
        m = BilinearPropensityModel(embedding_dim=8, max_epochs=3, **{k: v for k, v in FAST.items()
                                                                      if k != "max_epochs"}).fit(X, t)
        pred = m.predict_proba
    elif kind == "outcome":
        m = BilinearOutcomeModel(embedding_dim=8, max_epochs=3, device="cpu").fit(X, s)
        pred = m.predict
    else:
        m = SharedTextNuisance(embedding_dim=8, max_epochs=3, device="cpu", loss="mse").fit(X, np.column_stack([t, s]))
        pred = m.predict
    back = pickle.loads(pickle.dumps(m))
    again = back.predict_proba if kind == "propensity" else back.predict
    np.testing.assert_array_equal(again(X), pred(X))
