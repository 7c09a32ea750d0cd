"""Warnings that name rows: heavy-tailed influence values and poor propensity calibration."""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LinearRegression

from causalrec.diagnostics.tails import calibration_gap, influence_tail, row_list
from causalrec.uplift import estimate


def test_influence_tail_finds_the_outlier():
    psi = np.random.default_rng(0).normal(size=1000)
    share, idx = influence_tail(psi)
    assert share < 0.1 and len(idx) == 10
    psi[123] = 400.0
    share, idx = influence_tail(psi)
    assert share > 0.95 and idx[0] == 123


def test_calibration_gap_names_the_worst_bin():
    rng = np.random.default_rng(1)
    e = rng.uniform(0.05, 0.95, size=4000)
    t = (rng.random(4000) < e).astype(int)
    assert calibration_gap(t, e)[0] < 0.03
    e_bad = np.where(e > 0.5, 0.97, e)  # over-confident above 0.5
    ece, rows, (lo, hi, me, mt) = calibration_gap(t, e_bad)
    assert ece > 0.1 and lo == 0.9 and me > mt
    assert set(rows) == set(np.flatnonzero(e_bad >= 0.9))
    assert row_list(np.arange(8)) == "0, 1, 2, 3, 4 and 3 more"


class Overconfident(ClassifierMixin, BaseEstimator):
    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = np.full(len(X), 0.9)
        return np.column_stack([1 - p, p])


def test_uplift_warns_on_poor_calibration():
    rng = np.random.default_rng(2)
    n = 2000
    x = rng.normal(size=n)
    t = (rng.random(n) < 0.5).astype(int)
    df = pd.DataFrame({"x": x, "t": t, "y": x + t + rng.normal(size=n)})
    r = estimate(df, treatment="t", outcome="y", covariates=["x"], methods=["aipw"], n_folds=2,
                 propensity_model=Overconfident(), outcome_model=LinearRegression())
    assert r.diagnostics["propensity_ece"] > 0.3
    assert any(w.startswith("poorly calibrated propensities") and "log rows" in w for w in r.warnings)


def test_row_list_keeps_the_digits_of_values():
    # propensities and weights shown beside the rows keep their digits (an int cast printed 0)
    assert row_list(np.array([0.02, 0.5, 0.981])) == "0.02, 0.5, 0.981"
    assert row_list(np.round(np.array([50.0, 12.34, 3.0]), 1)) == "50, 12.3, 3"
    assert row_list(np.array([3, 17], dtype=np.int64)) == "3, 17"
