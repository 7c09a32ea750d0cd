"""Numbers identical to statsmodels / scipy where they compute the same thing,
and the delta method / CUPED checked against their own theory."""

import numpy as np
import pytest
from scipy import stats

from causalrec.errors import InputError
from causalrec.experiments import (
    cuped_mean,
    fit_theta,
    mde,
    msprt,
    parse_split,
    proportion,
    ratio,
    sample_size,
    srm_test,
    welch,
)
from causalrec.experiments.multiple import adjust
from causalrec.experiments.power import achieved_power


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_matches_statsmodels(seed):
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

    rng = np.random.default_rng(seed)
    y_c = rng.gamma(2.0, 3.0, 700)
    y_t = rng.gamma(2.2, 3.5, 450) + 0.3
    comp = welch(y_c, y_t)
    d, se, lo, hi, p = comp.diff_test(0.95)
    t_sm, p_sm, df_sm = ttest_ind(y_t, y_c, usevar="unequal")
    lo_sm, hi_sm = CompareMeans(DescrStatsW(y_t), DescrStatsW(y_c)).tconfint_diff(alpha=0.05, usevar="unequal")
    assert d == pytest.approx(y_t.mean() - y_c.mean(), abs=1e-12)
    assert d / se == pytest.approx(t_sm, abs=1e-8)
    assert p == pytest.approx(p_sm, abs=1e-8)
    assert comp.df == pytest.approx(df_sm, abs=1e-8)
    assert lo == pytest.approx(lo_sm, abs=1e-8)
    assert hi == pytest.approx(hi_sm, abs=1e-8)
    # and scipy's Welch test
    res = stats.ttest_ind(y_t, y_c, equal_var=False)
    assert p == pytest.approx(res.pvalue, abs=1e-8)


def test_proportions_match_statsmodels():
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    rng = np.random.default_rng(4)
    y_c = (rng.random(3000) < 0.11).astype(float)
    y_t = (rng.random(2800) < 0.125).astype(float)
    d, se, lo, hi, p = proportion(y_c, y_t).diff_test(0.95)
    sm = test_proportions_2indep(y_t.sum(), len(y_t), y_c.sum(), len(y_c), method="wald", compare="diff")
    lo_sm, hi_sm = confint_proportions_2indep(y_t.sum(), len(y_t), y_c.sum(), len(y_c), method="wald",
                                              compare="diff", alpha=0.05)
    assert d / se == pytest.approx(sm.statistic, abs=1e-8)
    assert p == pytest.approx(sm.pvalue, abs=1e-8)
    assert lo == pytest.approx(lo_sm, abs=1e-8)
    assert hi == pytest.approx(hi_sm, abs=1e-8)


def test_multiple_testing_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.001, 0.04, 0.03, 0.2, np.nan, 0.012])
    out = adjust(p, 0.05)
    ok = np.isfinite(p)
    np.testing.assert_allclose(out["holm"][ok], multipletests(p[ok], method="holm")[1], atol=1e-12)
    np.testing.assert_allclose(out["bh"][ok], multipletests(p[ok], method="fdr_bh")[1], atol=1e-12)
    assert np.isnan(out["holm"][4]) and np.isnan(out["bh"][4])


def test_srm_matches_scipy_and_flags_imbalance():
    bal = srm_test({"A": 5012, "B": 4988}, {"A": 0.5, "B": 0.5})
    assert not bal.mismatch and bal.p_value > 0.5
    chi2, p = stats.chisquare([5012, 4988], [5000, 5000])
    assert bal.p_value == pytest.approx(p, abs=1e-12) and bal.chi2 == pytest.approx(chi2)
    bad = srm_test({"A": 5300, "B": 4700}, {"A": 0.5, "B": 0.5})
    assert bad.mismatch and bad.p_value < 1e-6
    # a 90/10 design with 90/10 counts is fine
    assert not srm_test({"A": 9000, "B": 1000}, {"A": 0.9, "B": 0.1}).mismatch


def test_parse_split():
    v = ["control", "treatment"]
    assert parse_split("50/50", v) == {"control": 0.5, "treatment": 0.5}
    assert parse_split("treatment=10/control=90", v) == pytest.approx({"control": 0.9, "treatment": 0.1})
    assert parse_split("1:3", v) == {"control": 0.25, "treatment": 0.75}
    assert parse_split(None, ["a", "b", "c"])["b"] == pytest.approx(1 / 3)
    for bad in ("50/30/20", "fifty/fifty", "50/-50", "other=50/control=50", "control=50/25", ""):
        with pytest.raises(InputError):
            parse_split(bad, v)


def test_cuped_se_ratio_is_sqrt_one_minus_rho2():
    rng = np.random.default_rng(2024)
    n = 200_000
    for rho in (0.3, 0.6, 0.85):
        x = rng.normal(size=n)
        y = 5.0 + rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
        arm = rng.random(n) < 0.5
        base = welch(y[~arm], y[arm])
        adj_comp, adj = cuped_mean(y[~arm], y[arm], x[~arm], x[arm])
        ratio_se = adj_comp.se / base.se
        assert ratio_se == pytest.approx(np.sqrt(1 - rho**2), rel=0.05)
        assert adj.rho == pytest.approx(rho, abs=0.01)


def test_fit_theta_is_ols_slope():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 2))
    y = 1 + X @ np.array([2.0, -1.0]) + rng.normal(size=500)
    adj = fit_theta(y, X)
    beta = np.linalg.lstsq(np.column_stack([np.ones(500), X]), y, rcond=None)[0][1:]
    np.testing.assert_allclose(adj.theta, beta, atol=1e-10)


def _boot_sums(num, den, n_boot, rng):
    """Bootstrap replicates of (sum num, sum den) via multinomial row counts (vectorised)."""
    n = len(num)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    return counts @ num, counts @ den


def test_delta_method_ratio_and_lift_se_match_bootstrap():
    rng = np.random.default_rng(11)

    def arm(n, ctr):
        den = rng.poisson(4, n) + 1
        p = np.clip(ctr * rng.lognormal(0, 0.5, n), 0, 1)  # user-level heterogeneity
        return rng.binomial(den, p).astype(float), den.astype(float)

    num_c, den_c = arm(3000, 0.1)
    num_t, den_t = arm(3000, 0.11)
    comp = ratio(num_c, den_c, num_t, den_t)
    boot_rng = np.random.default_rng(0)
    sn_c, sd_c = _boot_sums(num_c, den_c, 1000, boot_rng)
    sn_t, sd_t = _boot_sums(num_t, den_t, 1000, boot_rng)
    se_boot = np.std(sn_t / sd_t - sn_c / sd_c, ddof=1)
    lift_boot = np.std((sn_t / sd_t) / (sn_c / sd_c) - 1, ddof=1)
    # bootstrap SE of an SE has ~2.2% relative noise at 1000 replicates
    assert comp.se == pytest.approx(se_boot, rel=0.08)
    assert comp.lift_test()[1] == pytest.approx(lift_boot, rel=0.08)
    # a naive per-impression SE ignores the within-user correlation and is too small
    imp_c = np.repeat(num_c / den_c, den_c.astype(int))
    naive = np.sqrt(imp_c.var() / den_c.sum() * 2)
    assert naive < comp.se


def test_power_mde_roundtrip():
    sigma, n = 12.0, 5000
    m = mde(sigma, n, n, alpha=0.05, power=0.8)
    theory = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * sigma * np.sqrt(2 / n)
    # the textbook formula ignores rejections in the wrong tail; statsmodels counts them,
    # so its exact MDE is a hair smaller
    assert m == pytest.approx(theory, rel=1e-4) and m < theory
    # solve_power is a root finder (tolerance ~1e-5 on power)
    assert achieved_power(sigma, m, n, n) == pytest.approx(0.8, abs=1e-4)
    assert sample_size(sigma, m) == pytest.approx(n, abs=1)


def test_msprt_formula_and_validity_direction():
    diff, var, tau = np.array([0.5]), np.array([0.04]), 0.3
    p, lo, hi = msprt(diff, var, tau, alpha=0.05)
    lam = np.sqrt(var / (var + tau**2)) * np.exp(tau**2 * diff**2 / (2 * var * (var + tau**2)))
    assert p[0] == pytest.approx(min(1.0, 1 / lam[0]))
    # the always-valid interval is wider than the fixed-horizon one, and p is larger
    assert hi[0] - lo[0] > 2 * 1.96 * 0.2
    assert p[0] > 2 * stats.norm.sf(0.5 / 0.2)
    # running: p never increases, the interval never widens
    p2, lo2, hi2 = msprt([0.1, 0.5, 0.2], [0.09, 0.04, 0.02], tau)
    assert np.all(np.diff(p2) <= 0) and np.all(np.diff(lo2) >= 0) and np.all(np.diff(hi2) <= 0)


def test_msprt_controls_peeking_where_fixed_p_values_do_not():
    rng = np.random.default_rng(77)
    n_seq, looks, per_look = 2000, 30, 50
    # A/A: cumulative per-arm sums of N(0, 1) units, checked after every look
    x_t = rng.normal(size=(n_seq, looks, per_look)).sum(axis=2).cumsum(axis=1)
    x_c = rng.normal(size=(n_seq, looks, per_look)).sum(axis=2).cumsum(axis=1)
    n = per_look * np.arange(1, looks + 1)
    diff = (x_t - x_c) / n
    var = np.broadcast_to(2.0 / n, diff.shape)
    naive_p = 2 * stats.norm.sf(np.abs(diff) / np.sqrt(var))
    peeking_fpr = np.mean((naive_p < 0.05).any(axis=1))
    always_valid = np.array([msprt(diff[i], var[i], tau=0.1)[0][-1] for i in range(n_seq)])
    msprt_fpr = np.mean(always_valid < 0.05)
    assert peeking_fpr > 0.15  # stopping at the first p < 0.05 over 30 looks
    assert msprt_fpr <= 0.05 + 0.015
