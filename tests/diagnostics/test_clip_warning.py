"""One clipping diagnostic (issue 14, section 1): the share is measured on the unclipped
propensities, one threshold, one message -- the in-process uplift run and the Spark engine
print the same warning."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LinearRegression

from causalrec.diagnostics import CLIP_WARN_SHARE, clip_warning, share_clipped
from causalrec.uplift import estimate


def test_share_and_threshold():
    e = np.array([0.001, 0.02, 0.5, 0.97, 0.995])
    assert share_clipped(e, 0.01) == pytest.approx(2 / 5)
    assert share_clipped(np.clip(e, 0.01, 0.99), 0.01) == 0.0  # why it is measured before clipping
    assert share_clipped(e, 0.0) == 0.0
    assert clip_warning(CLIP_WARN_SHARE, 0.01) is None  # strictly above the threshold
    msg = clip_warning(0.4, 0.01)
    assert msg.startswith("40.0% of propensities were clipped to [0.01, 0.99]")


class Steep(ClassifierMixin, BaseEstimator):
    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-4.0 * np.asarray(X)[:, 0]))
        return np.column_stack([1 - p, p])


def test_uplift_run_prints_the_shared_message():
    rng = np.random.default_rng(3)
    x = rng.normal(size=2000)
    t = (rng.random(2000) < 1 / (1 + np.exp(-4.0 * x))).astype(int)
    df = pd.DataFrame({"x": x, "t": t, "y": x + t + rng.normal(size=2000)})
    r = estimate(df, treatment="t", outcome="y", covariates=["x"], methods=["ipw"], n_folds=2, clip=0.05,
                 propensity_model=Steep(), outcome_model=LinearRegression())
    share = r.diagnostics["share_clipped"]
    assert share > CLIP_WARN_SHARE
    assert clip_warning(share, 0.05) in r.warnings
