"""The cross-fitting engine: named nuisances, fold models, candidate selection, the fold spec."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression

from causalrec.errors import InputError
from causalrec.models import (
    CrossFit,
    FoldSpec,
    SingleModel,
    TreatmentOutcome,
    cluster_hash_folds,
    cross_fit,
    make_folds,
    row_hash_folds,
)


class SeenRows(RegressorMixin, BaseEstimator):
    """Predicts 1 for a row (by its id in column 0) seen in fit, else 0; counts fits."""

    fits = 0

    def fit(self, X, y, sample_weight=None):
        type(self).fits += 1
        self.seen_ = set(np.asarray(X)[:, 0].tolist())
        return self

    def predict(self, X):
        return np.array([float(v in self.seen_) for v in np.asarray(X)[:, 0].tolist()])


class CountingClassifier(ClassifierMixin, BaseEstimator):
    fits = 0

    def fit(self, X, y, sample_weight=None):
        type(self).fits += 1
        self.inner_ = LogisticRegression().fit(X, y)
        self.classes_ = self.inner_.classes_
        return self

    def predict_proba(self, X):
        return self.inner_.predict_proba(X)


def _confounded(rng, n=600):
    X = np.c_[np.arange(n, dtype=float), rng.normal(size=(n, 2))]
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 1]))).astype(int)
    y = 1.0 + 2.0 * X[:, 1] + t + rng.normal(scale=0.1, size=n)
    return X, t, y


def test_named_nuisances_out_of_fold_and_fold_models(rng):
    X, t, y = _confounded(rng)
    SeenRows.fits = 0
    CountingClassifier.fits = 0
    folds = make_folds(len(t), 4, stratify=t, random_state=0)
    cf = cross_fit(TreatmentOutcome(CountingClassifier(), SeenRows()), {"X": X, "t": t, "y": y}, folds)
    assert isinstance(cf, CrossFit) and set(cf.predictions) == {"e", "mu0", "mu1"}
    assert (cf["mu0"] == 0).all() and (cf["mu1"] == 0).all()  # no row predicted by a model that saw it
    assert cf.n_fits == 4 and len(cf.models) == 4
    assert CountingClassifier.fits == 4 and SeenRows.fits == 8  # each nuisance fitted once per fold
    # mu_t is a T-learner: fold k's mu1 model saw exactly the treated rows outside fold k
    for k in range(4):
        seen = cf.models[k]["mu1"]["SeenRows"].seen_
        assert seen == set(X[(folds != k) & (t == 1), 0].tolist())
    assert ((cf["e"] > 0) & (cf["e"] < 1)).all()


def test_predict_folds_uses_each_rows_own_fold_model(rng):
    X, t, y = _confounded(rng, 300)
    folds = make_folds(len(t), 3, random_state=1)
    cf = cross_fit(SingleModel(SeenRows()), {"X": X, "y": y}, folds)
    same = cf.predict_folds({"X": X}, folds)["pred"]
    assert (same == 0).all()
    other = cf.predict_folds({"X": X}, (folds + 1) % 3)["pred"]
    assert (other == 1).all()  # another fold's model did see the row


def test_candidates_chosen_by_cross_fitted_loss(rng):
    X, t, y = _confounded(rng, 800)
    data = {"X": X[:, 1:], "t": t, "y": y}
    cf = cross_fit(TreatmentOutcome({"dummy": DummyClassifier(strategy="prior"), "logit": LogisticRegression()},
                                    [DummyRegressor(), LinearRegression()]), data, FoldSpec(5, seed=0),
                   stratify=t)
    sel = cf.selection_report()
    assert sel["e"]["chosen"] == "logit" and sel["mu0"]["chosen"] == "LinearRegression"
    assert sel["mu1"]["chosen"] == "LinearRegression"
    for name in ("e", "mu0", "mu1"):
        losses = sel[name]["losses"]
        assert len(losses) == 2 and sel[name]["loss"] == min(losses.values())
    np.testing.assert_array_equal(cf["mu1"], cf.candidates["mu1"]["LinearRegression"])
    # the losses are the cross-fitted ones: recompute the treated-row MSE by hand
    r = t == 1
    assert sel["mu1"]["losses"]["DummyRegressor"] == pytest.approx(
        np.mean((y[r] - cf.candidates["mu1"]["DummyRegressor"][r]) ** 2))
    assert sel["e"]["loss_name"] == "log_loss"


def test_duplicate_candidate_names_stay_distinct(rng):
    X, t, y = _confounded(rng, 200)
    cf = cross_fit(SingleModel([DummyRegressor(), DummyRegressor(strategy="median")]),
                   {"X": X, "y": y}, make_folds(200, 2))
    assert set(cf.selection["pred"]["losses"]) == {"DummyRegressor", "DummyRegressor#2"}


def test_single_fold_fits_once_in_sample(rng):
    X, t, y = _confounded(rng, 50)
    cf = cross_fit(SingleModel(SeenRows()), {"X": X, "y": y}, np.zeros(50, int))
    assert not cf.cross_fitted and (cf["pred"] == 1).all()


def test_fold_spec_kinds(rng):
    keys = rng.integers(0, 300, size=5000)
    f = FoldSpec(5, "cluster_hash", seed=3).assign(5000, groups=keys)
    assert all(len(np.unique(f[keys == g])) == 1 for g in np.unique(keys)[:50])
    np.testing.assert_array_equal(f, cluster_hash_folds(keys, 5, 3))
    # the same key gets the same fold in any batch, whatever else the batch holds
    np.testing.assert_array_equal(cluster_hash_folds(keys[100:200], 5, 3), f[100:200])
    counts = np.bincount(cluster_hash_folds(np.arange(100_000), 5, 0), minlength=5)
    assert counts.min() > 19_000
    whole = FoldSpec(4, "row_hash", seed=1).assign(1000)
    parts = np.concatenate([row_hash_folds(s, 250, 4, 1) for s in range(0, 1000, 250)])
    np.testing.assert_array_equal(whole, parts)
    g = rng.integers(0, 40, size=400)
    split = FoldSpec(4, seed=2).assign(400, groups=g)
    assert all(len(np.unique(split[g == v])) == 1 for v in np.unique(g))
    assert FoldSpec(4).to_dict() == {"n_folds": 4, "kind": "split", "seed": 0}
    with pytest.raises(InputError):
        FoldSpec(3, "cluster_hash").assign(10)
    with pytest.raises(InputError):
        FoldSpec(3, "by_magic")


def test_grouped_folds_are_shuffled_by_seed(rng):
    g = np.repeat(np.arange(50), 4)
    a, b = make_folds(200, 5, groups=g, random_state=0), make_folds(200, 5, groups=g, random_state=1)
    assert not np.array_equal(a, b)
    assert np.bincount(a).tolist() == [40] * 5  # equal-size groups: balanced folds


def test_bad_input(rng):
    X, t, y = _confounded(rng, 100)
    with pytest.raises(InputError, match="length"):
        cross_fit(SingleModel(DummyRegressor()), {"X": X, "y": y[:50]}, np.zeros(100, int))
    with pytest.raises(InputError, match="one treatment arm"):
        tt = np.r_[np.ones(50, int), np.zeros(50, int)]
        cross_fit(TreatmentOutcome(LogisticRegression(), DummyRegressor()), {"X": X, "t": tt, "y": y},
                  np.r_[np.zeros(50, int), np.ones(50, int)])
    with pytest.raises(InputError):
        SingleModel([])


class JointLinear(RegressorMixin, BaseEstimator):
    """A 'shared representation' stand-in: fit(X, [t, y]) -> predict [e, mu0, mu1]."""

    def fit(self, X, Y, sample_weight=None):
        t, y = Y[:, 0].astype(int), Y[:, 1]
        self.e_ = LogisticRegression().fit(X, t)
        self.m_ = [LinearRegression().fit(X[t == a], y[t == a]) for a in (0, 1)]
        return self

    def predict(self, X):
        return np.column_stack([self.e_.predict_proba(X)[:, 1], self.m_[0].predict(X), self.m_[1].predict(X)])


def test_joint_candidates_compete_with_separate_models(rng):
    X, t, y = _confounded(rng, 600)
    data = {"X": X[:, 1:], "t": t, "y": y}
    folds = make_folds(600, 3, stratify=t)
    cf = cross_fit(TreatmentOutcome(DummyClassifier(strategy="prior"), DummyRegressor(), joint=JointLinear()),
                   data, folds)
    for name in ("e", "mu0", "mu1"):
        assert set(cf.selection[name]["losses"]) == {"joint:JointLinear", "DummyClassifier" if name == "e"
                                                     else "DummyRegressor"}
        assert cf.chosen(name) == "joint:JointLinear"
    alone = cross_fit(TreatmentOutcome(None, None, joint=JointLinear()), data, folds)
    np.testing.assert_allclose(alone["mu1"], cf["mu1"])
    assert set(alone.predictions) == {"e", "mu0", "mu1"}
    logged = cross_fit(TreatmentOutcome(None, LinearRegression()), data, folds)
    assert set(logged.predictions) == {"mu0", "mu1"}  # known propensities: no e fitted
