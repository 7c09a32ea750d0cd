"""Nuisance "models" that return predictions computed elsewhere, so econml's final stages
can run on them.

Some nuisances are not a scikit-learn model over a feature matrix: the adapted encoder
(:mod:`causalrec.models.adapted`) fine-tunes a transformer per fold and yields
out-of-fold ``e_hat, mu0, mu1`` directly. To get econml's DML final stage and its
inference on those, pass a column of row numbers as the controls ``W`` and these
wrappers as ``model_t`` / ``model_y``: ``fit`` stores nothing, ``predict`` looks up the
stored out-of-fold prediction of each row. econml hands nuisance models ``[X, W]``, so the
row number is read from the *last* column.

Because the stored predictions are already out of fold, ignoring econml's own folds keeps
the cross-fitting honest: no row is predicted by a model that saw it.

econml's DR learners hand their outcome model ``[X, W, T]`` (the treatment one-hot last):
:class:`PrecomputedArmRegressor` reads the row number from the column before the arm and
returns ``mu0`` or ``mu1`` of that row by the arm column.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from causalrec.errors import InputError


def _rows(X, n: int, col: int = -1) -> np.ndarray:
    idx = np.asarray(X)[:, col]
    rows = idx.astype(np.int64)
    if not np.array_equal(rows, idx) or rows.min(initial=0) < 0 or rows.max(initial=-1) >= n:
        raise InputError("the last feature column must hold row numbers 0..n-1 of the stored predictions",
                         column="W", fix="pass W=np.arange(n)[:, None] to econml")
    return rows


class PrecomputedRegressor(RegressorMixin, BaseEstimator):
    """``predict(X)`` returns ``predictions[X[:, -1]]``: stored out-of-fold outcome means."""

    def __init__(self, predictions=None):
        self.predictions = predictions

    def fit(self, X, y, sample_weight=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        p = np.asarray(self.predictions, dtype=float)
        return p[_rows(X, p.shape[0])]


class PrecomputedClassifier(ClassifierMixin, BaseEstimator):
    """``predict_proba(X)[:, 1]`` returns ``probabilities[X[:, -1]]``: stored out-of-fold
    propensities of a binary treatment."""

    def __init__(self, probabilities=None):
        self.probabilities = probabilities

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X):
        p = np.asarray(self.probabilities, dtype=float)[_rows(X, len(self.probabilities))]
        return np.column_stack([1.0 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class PrecomputedArmRegressor(RegressorMixin, BaseEstimator):
    """Stored out-of-fold arm means for econml's DR learners: ``predict([.., row, T])`` is
    ``mu1[row]`` where ``T == 1`` and ``mu0[row]`` where ``T == 0`` (binary treatment)."""

    def __init__(self, mu0=None, mu1=None):
        self.mu0 = mu0
        self.mu1 = mu1

    def fit(self, X, y, sample_weight=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        mu0, mu1 = np.asarray(self.mu0, dtype=float), np.asarray(self.mu1, dtype=float)
        X = np.asarray(X)
        arm = X[:, -1]
        if not np.isin(arm, (0, 1)).all():
            raise InputError("the last feature column must be the 0/1 treatment (econml's DR layout [X, W, T])",
                             column="T", fix="use PrecomputedRegressor for DML-type learners")
        rows = _rows(X, mu0.shape[0], col=-2)
        return np.where(arm == 1, mu1[rows], mu0[rows])
