"""Regularised linear nuisance candidates for tabular adjustment sets.

* :func:`logistic_propensity`: ``e(x) = sigmoid(b0 + x_s' b)`` on standardised ``x_s``,
  fitted by L2-penalised maximum likelihood, ``min_b  sum_i logloss_i + ||b||^2 / (2 C)``,
  with ``C`` chosen on a grid by the log loss of an inner, *shuffled* stratified K-fold
  split (scikit-learn's ``LogisticRegressionCV``; its default unshuffled split follows the
  row order of the table, and on IHDP, whose rows are ordered, it chose ``C = 1e-4`` and a
  near-constant propensity).
* :func:`ridge_outcome`: ``mu(x) = a + x_s' b`` by ridge regression, ``alpha`` chosen by
  efficient leave-one-out squared error (``RidgeCV``).

Why they exist next to the torch MLPs: on small tabular data (hundreds of rows, tens of
covariates) an MLP propensity overfits into confident 0/1 probabilities, and AIPW's weights
explode. On IHDP (747 rows, 26 covariates; ``analyses/ihdp.py`` -> ``reports/ihdp.md``, 50 draws)
the AIPW mean |ATE error| went from 0.296 with the MLP alone to 0.095 with these candidates.
:func:`causalrec.uplift.estimate` therefore cross-fits both on tabular covariates and keeps,
per nuisance, the one with the smaller cross-fitted loss (the engine's candidate selection,
:mod:`causalrec.models.crossfit`; the losses are in ``diagnostics["nuisance_selection"]``):
nothing is preferred a priori, the held-out loss decides.

Both are scikit-learn pipelines (``clone``-able, hyper-parameters only in the constructor
arguments), so the engine and econml treat them like any other model.

Both work in float64 whatever the design's dtype (causalrec's design matrices are float32, for
the torch models). In float32, ``X @ b`` is not a function of the row alone: OpenBLAS's sgemv
computes the last ``m mod 4`` rows of an ``m``-row block with another kernel, so a row's
prediction moved by ~1e-7 with the size and position of the block it was predicted in. The
Spark engine predicts per (Arrow batch, fold) block, in process per fold: the AIPW ATT on
Spark then differed from the in-process one by 1.1e-9 (relative) with 262,144-row batches.
In float64 the same kernel differences are ~1e-16 and the engines agree far inside 1e-9.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin  # a core dependency

#: the L2 grid of :func:`logistic_propensity` (inverse penalty ``C``; the standardised design
#: makes one grid fit every covariate scale)
LOGISTIC_CS = np.logspace(-4, 2, 13)
#: the ridge grid of :func:`ridge_outcome`
RIDGE_ALPHAS = np.logspace(-3, 4, 15)


def _float64_step():
    """A :class:`~causalrec.models.linear.Float64` step (a class, not a ``FunctionTransformer``:
    its repr, written into ``config``, would hold the function's memory address)."""
    return Float64()


class Float64(TransformerMixin, BaseEstimator):
    """Casts ``X`` to a float64 array (the first step of the pipelines below; see the module
    docstring for why). Stateless; ``fit`` only records ``n_features_in_``."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.shape(X)[1]
        return self

    def transform(self, X):
        return np.asarray(X, dtype=np.float64)

    def get_feature_names_out(self, input_features=None):
        if input_features is not None:
            return np.asarray(input_features, dtype=object)
        return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)


def logistic_propensity(seed: int = 0, *, inner_folds: int = 5):
    """Cast to float64, standardise, then ``LogisticRegressionCV`` (L2, ``C`` in :data:`LOGISTIC_CS` by the
    log loss of ``inner_folds`` shuffled stratified folds seeded by ``seed``)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(_float64_step(), StandardScaler(),
                         LogisticRegressionCV(Cs=LOGISTIC_CS, cv=StratifiedKFold(inner_folds, shuffle=True,
                                                                                 random_state=seed),
                                              scoring="neg_log_loss", max_iter=5000))


def ridge_outcome():
    """Cast to float64, standardise, then ``RidgeCV`` (``alpha`` in :data:`RIDGE_ALPHAS` by leave-one-out error)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(_float64_step(), StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
