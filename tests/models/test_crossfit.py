"""cross_fit_predict / make_folds: out-of-fold, grouped, stratified, fit_mask, predict_X."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LogisticRegression

from causalrec.errors import InputError
from causalrec.models import PropensityModel, cross_fit_predict, make_folds


class Memorizer(RegressorMixin, BaseEstimator):
    """Returns the training label of a row it has seen, else -1 (detects leakage)."""

    def fit(self, X, y, sample_weight=None):
        self.table_ = dict(zip(np.asarray(X)[:, 0].tolist(), np.asarray(y).tolist(), strict=True))
        self.weights_seen_ = sample_weight
        return self

    def predict(self, X):
        return np.array([self.table_.get(v, -1.0) for v in np.asarray(X)[:, 0].tolist()])


def test_predictions_are_out_of_fold(rng):
    n = 200
    X = np.arange(n, dtype=float)[:, None]
    y = rng.normal(size=n)
    pred, folds = cross_fit_predict(Memorizer(), X, y, n_folds=4, return_folds=True)
    assert (pred == -1).all()
    assert sorted(np.unique(folds)) == [0, 1, 2, 3]


def test_groups_never_split(rng):
    n = 500
    groups = rng.integers(0, 60, size=n)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 0.3).astype(int)
    for y, model in [(X[:, 0], DummyRegressor()), (t, LogisticRegression())]:
        _, folds = cross_fit_predict(model, X, y, n_folds=5, groups=groups, return_folds=True,
                                     method="predict" if y is not t else "predict_proba")
        for g in np.unique(groups):
            assert len(np.unique(folds[groups == g])) == 1


def test_stratified_for_classifiers(rng):
    t = np.r_[np.ones(50, int), np.zeros(450, int)]
    folds = make_folds(500, 5, stratify=t, random_state=1)
    assert all((t[folds == k]).sum() == 10 for k in range(5))


def test_predict_proba_shape_and_reuse_of_folds(rng):
    n = 400
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    folds = make_folds(n, 3, random_state=0)
    p = cross_fit_predict(PropensityModel(hidden_layer_sizes=(16,), max_epochs=20, device="cpu"),
                          X, t, folds=folds, method="predict_proba")
    assert p.shape == (n, 2) and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.corrcoef(p[:, 1], X[:, 0])[0, 1] > 0.5


def test_fit_mask_and_predict_x(rng):
    n = 300
    X = rng.normal(size=(n, 2))
    t = (np.arange(n) % 2).astype(bool)
    y = np.where(t, 5.0, -5.0)
    mu1 = cross_fit_predict(DummyRegressor(), X, y, fit_mask=t)
    np.testing.assert_allclose(mu1, 5.0)
    # predict_X: a Memorizer keyed on column 0 predicts the training label at other rows' values
    Xk = np.arange(n, dtype=float)[:, None]
    shifted = cross_fit_predict(Memorizer(), Xk, y, predict_X=np.zeros((n, 1)), n_folds=3)
    assert set(np.unique(shifted)) <= {5.0, -5.0, -1.0}


def test_sample_weight_forwarded(rng):
    n = 100
    X = np.arange(n, dtype=float)[:, None]
    calls = []

    class Spy(Memorizer):
        def fit(self, X, y, sample_weight=None):
            calls.append(sample_weight)
            return super().fit(X, y, sample_weight)

    cross_fit_predict(Spy(), X, np.zeros(n), sample_weight=np.arange(n, dtype=float), n_folds=2)
    assert len(calls) == 2 and all(c is not None and len(c) == 50 for c in calls)


def test_bad_arguments(rng):
    X = rng.normal(size=(10, 2))
    with pytest.raises(InputError):
        cross_fit_predict(DummyRegressor(), X, np.zeros(10), method="transform")
    with pytest.raises(InputError):
        make_folds(10, 1)
    with pytest.raises(InputError, match="groups"):
        make_folds(10, 5, groups=np.r_[np.zeros(5), np.ones(5)])
    with pytest.raises(InputError):
        cross_fit_predict(DummyRegressor(), X, np.zeros(9))


def test_predict_proba_aligns_classes_missing_from_a_fold(rng):
    n = 120
    X = rng.normal(size=(n, 2))
    y = rng.integers(0, 3, size=n)
    y[7] = 3  # a class with one row: absent from the training folds of its own fold
    p = cross_fit_predict(LogisticRegression(), X, y, n_folds=4, method="predict_proba")
    assert p.shape == (n, 4) and np.isfinite(p).all()
    assert p[7, 3] == 0.0
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
