"""One ESS definition and warning threshold, one balance function (issue 14, section 1)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from causalrec.diagnostics import (
    ESS_WARN_SHARE,
    design_balance,
    effective_sample_size,
    ess_from_sums,
    ess_warning,
)
from causalrec.uplift import estimate


def test_ess_from_sums_is_kish():
    w = np.array([1.0, 2.0, 3.0, 0.0])
    assert effective_sample_size(w) == pytest.approx(36.0 / 14.0)
    assert ess_from_sums(w.sum(), (w * w).sum()) == pytest.approx(36.0 / 14.0)
    assert ess_from_sums(0.0, 0.0) == 0.0


def test_ess_warning_fires_below_the_one_threshold_only():
    n = 1000
    assert ess_warning(ESS_WARN_SHARE * n * 0.99, n, "x") is not None
    assert ess_warning(ESS_WARN_SHARE * n, n, "x") is None
    assert "consider --clip" in ess_warning(1.0, n, "consider --clip")


def test_ope_debias_uplift_share_the_threshold():
    from causalrec.debias.weights import exposure_weights
    from causalrec.ope.weights import WeightStats

    # one weight of 1000 among 99 of 1: Kish ESS = 1099^2 / (1e6 + 99) ~ 1.2 of 100 rows (1.2%), below 10%
    w = np.r_[np.ones(99), 1000.0]
    ws = WeightStats()
    ws.update(w, 1.0 / w)
    assert any("effective sample size" in m for m in ws.warnings())
    ew = exposure_weights(1.0 / w, "ips")
    assert ew.ess == pytest.approx(effective_sample_size(w))
    # an ESS share of 5% (between the old 1% and 10% thresholds) warns in OPE too now
    w = np.r_[np.ones(190), np.full(10, 60.0)]
    ws = WeightStats()
    ws.update(w, 1.0 / w)
    share = effective_sample_size(w) / w.size
    assert 0.01 < share < ESS_WARN_SHARE
    assert any("effective sample size" in m for m in ws.warnings())


def test_uplift_diagnostics_and_analysis_use_the_one_balance():
    rng = np.random.default_rng(0)
    n = 3000
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-(0.8 * X[:, 0] - 0.5 * X[:, 1])))).astype(int)
    y = X[:, 0] + X[:, 1] + t + rng.normal(size=n)
    df = pd.DataFrame({"user_id": np.arange(n) // 3, "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2],
                       "exposed": t, "revenue": y})
    r = estimate(df, treatment="exposed", outcome="revenue", covariates=["x1", "x2", "x3"],
                 methods=("aipw",), n_folds=3, propensity_model=LogisticRegression(max_iter=1000),
                 outcome_model=LinearRegression(), per_item=False, curves=False, cate=None)
    nu = r.nuisance
    bal = design_balance(nu["t"], nu["e_hat"], nu["X"], nu["feature_names"])
    assert r.diagnostics["smd_max_before"] == pytest.approx(bal.max_abs_before)
    assert r.diagnostics["smd_max_after"] == pytest.approx(bal.max_abs_after)
    assert len(bal.table) == 3  # the three covariates themselves (narrow design: no PCA)
    from causalrec.uplift.analysis import analyze

    a = analyze(r, per_item=False, cate=None, curves=False)
    assert a.balance is nu["balance"]  # the report shows the balance the run's warning read
