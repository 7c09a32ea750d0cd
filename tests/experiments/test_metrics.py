"""Quantile metrics, capping, Lin's adjustment, post-stratification, ratio CUPED, Fieller, clustering."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from causalrec.errors import InputError
from causalrec.experiments import analyze, compare_quantile, lin_mean, simulate_experiment
from causalrec.experiments.estimators import Comparison
from causalrec.experiments.quantile import arm_quantile, parse_quantile
from causalrec.inference import cluster_se


@pytest.fixture(scope="module")
def users():
    return simulate_experiment(4000, lift=[0.0, 0.06], seed=31)


# -- quantiles -------------------------------------------------------------------

@pytest.mark.parametrize("spec, out", [("revenue:0.9", ("revenue", 0.9)), ("revenue:p99", ("revenue", 0.99)),
                                       ("latency:median", ("latency", 0.5)), ("a:b:0.25", ("a:b", 0.25))])
def test_parse_quantile(spec, out):
    assert parse_quantile(spec) == pytest.approx(out) if isinstance(out[1], float) else parse_quantile(spec) == out


@pytest.mark.parametrize("spec", ["revenue:0", "revenue:1", "revenue:1.5", "revenue:-0.1", "revenue:abc", "revenue",
                                  "revenue:p100"])
def test_quantile_outside_0_1_is_an_input_error(spec):
    with pytest.raises(InputError) as exc:
        parse_quantile(spec)
    assert exc.value.column == "--quantile"


def test_quantile_is_the_inverse_cdf_and_its_se_the_asymptotic_one():
    rng = np.random.default_rng(1)
    y = rng.normal(size=20_000)
    for p in (0.5, 0.9):
        a = arm_quantile(y, p)
        assert a["q"] == np.quantile(y, p, method="inverted_cdf")
        asym = np.sqrt(p * (1 - p) / len(y)) / stats.norm.pdf(stats.norm.ppf(p))
        assert a["se"] == pytest.approx(asym, rel=0.1)


def test_clustered_quantile_widens_with_within_unit_correlation():
    rng = np.random.default_rng(2)
    units = rng.normal(size=3000)
    y = np.repeat(units, 4) + 0.01 * rng.normal(size=12_000)  # four near-copies per unit
    g = np.repeat(np.arange(3000), 4)
    iid, clus = arm_quantile(y, 0.5), arm_quantile(y, 0.5, groups=g)
    assert clus["se_f"] == pytest.approx(cluster_se((y <= clus["q"]).astype(float), g))
    assert clus["se"] / iid["se"] == pytest.approx(2.0, rel=0.15)  # sqrt(cluster size)
    assert clus["n_units"] == 3000


def test_quantile_metric_in_analyze(users):
    res = analyze(users, variant="variant", quantiles=["revenue:median", "revenue:p90"], segment="platform",
                  planning=False)
    e = res.get("quantile", "diff", metric="revenue:p50")
    c, t = (users["variant"] == "control").to_numpy(), (users["variant"] == "treatment").to_numpy()
    y = users["revenue"].to_numpy()
    comp, _ = compare_quantile(y[c], y[t], 0.5)
    assert e.estimate == pytest.approx(np.quantile(y[t], 0.5, method="inverted_cdf")
                                       - np.quantile(y[c], 0.5, method="inverted_cdf"))
    assert e.se == pytest.approx(comp.se) and "p_holm" in e.extra and not e.extra["clustered"]
    assert set(res.segments["metric"]) == {"revenue:p50", "revenue:p90"}
    sess = simulate_experiment(800, seed=3, impressions=True)
    clus = analyze(sess, variant="variant", quantiles=["revenue:0.5"], unit="user_id", planning=False)
    naive = analyze(sess, variant="variant", quantiles=["revenue:0.5"], planning=False)
    assert clus.get("quantile", "diff").extra["clustered"]
    assert clus.get("quantile", "diff").se > 1.5 * naive.get("quantile", "diff").se


# -- capping ---------------------------------------------------------------------

def test_capping_at_a_pooled_quantile(users):
    res = analyze(users, variant="variant", metrics=["revenue", "converted"], cap=0.99, planning=False)
    thr = float(np.quantile(users["revenue"], 0.99))
    assert res.config["cap_thresholds"]["revenue"]["high"] == pytest.approx(thr)
    assert "converted" not in res.config["cap_thresholds"]  # 0/1 metrics are not capped
    capped = users.assign(revenue=users["revenue"].clip(upper=thr))
    ref = analyze(capped, variant="variant", metrics=["revenue"], planning=False).get("welch", "diff")
    e = res.get("welch", "diff", metric="revenue")
    assert (e.estimate, e.se) == pytest.approx((ref.estimate, ref.se), abs=1e-12) and e.extra["capped"]
    assert e.se < analyze(users, variant="variant", metrics=["revenue"], planning=False).get("welch", "diff").se
    both = analyze(users, variant="variant", metrics=["revenue"], cap="0.01:0.99", planning=False)
    assert both.config["cap_thresholds"]["revenue"]["low"] == pytest.approx(np.quantile(users["revenue"], 0.01))
    for bad in ("1.2", "0.99:0.5", "x"):
        with pytest.raises(InputError, match="cap"):
            analyze(users, variant="variant", metrics=["revenue"], cap=bad)


# -- Lin and post-stratification ---------------------------------------------------

def test_lin_equals_interacted_ols():
    import statsmodels.api as sm

    rng = np.random.default_rng(4)
    n = 6000
    x = rng.gamma(2, 2, size=(n, 2))
    arm = rng.random(n) < 0.4
    y = x @ [1.0, 0.3] + arm * (0.5 + 0.4 * (x[:, 0] - 4)) + rng.normal(0, 2, n)  # slopes differ by arm
    comp, _ = lin_mean(y[~arm], y[arm], x[~arm], x[arm])
    xc = x - x.mean(axis=0)
    D = np.column_stack([np.ones(n), arm, xc, arm[:, None] * xc])
    fit = sm.OLS(y, D).fit(cov_type="HC2")
    assert comp.diff == pytest.approx(fit.params[1], abs=1e-10)
    # HC2 conditions on X; causalrec adds the sampling of Xbar, (b_t - b_c)' S_X (b_t - b_c) / n
    b = [np.linalg.lstsq(np.column_stack([np.ones(m.sum()), x[m]]), y[m], rcond=None)[0][1:] for m in (~arm, arm)]
    shared = (b[1] - b[0]) @ np.cov(x.T) @ (b[1] - b[0]) / n
    assert np.sqrt(comp.var - shared) == pytest.approx(fit.bse[1], rel=0.01)
    assert comp.se > fit.bse[1] and comp.cov_ct > 0


def test_lin_and_poststrat_in_analyze(users):
    res = analyze(users, variant="variant", metrics=["revenue"], covariates=["pre_revenue"], lin=True,
                  stratify="platform", planning=False)
    assert res.config["primary_estimator"] == "lin" and res.get("lin", "diff").extra["primary"]
    ps = res.get("poststrat", "diff")
    # post-stratified arm means by hand
    n_s = users.groupby("platform").size()
    w = n_s / n_s.sum()
    m = users.groupby(["variant", "platform"])["revenue"].mean().unstack()
    assert ps.extra["value_treatment"] - ps.extra["value_control"] == pytest.approx(
        float((w * (m.loc["treatment"] - m.loc["control"])).sum()), abs=1e-10)
    v = users.groupby(["variant", "platform"])["revenue"].agg(["var", "size"])
    within = sum(float((w**2 * v.loc[a]["var"] / v.loc[a]["size"]).sum()) for a in ("control", "treatment"))
    tau_s = m.loc["treatment"] - m.loc["control"]
    tau = float((w * tau_s).sum())
    shared = float((w * (tau_s - tau) ** 2).sum()) / n_s.sum()
    assert ps.se == pytest.approx(np.sqrt(within + shared), rel=1e-10)
    with pytest.raises(InputError, match="stratum"):
        analyze(users.assign(tiny=np.where(np.arange(len(users)) < 3, "a", "b")), variant="variant",
                metrics=["revenue"], stratify="tiny")
    with pytest.raises(InputError, match="primary"):
        analyze(users, variant="variant", metrics=["revenue"], primary="lin")


def test_ratio_cuped_with_pre_period_ratio():
    rng = np.random.default_rng(6)
    n = 6000
    taste = rng.lognormal(0, 0.8, n)
    pre_s = rng.poisson(30, n) + 1
    post_s = rng.poisson(30, n) + 1
    df = pd.DataFrame({"variant": np.where(rng.random(n) < 0.5, "control", "treatment"),
                       "sessions": post_s, "pre_sessions": pre_s,
                       "clicks": rng.binomial(post_s, np.clip(0.1 * taste, 0, 1)),
                       "pre_clicks": rng.binomial(pre_s, np.clip(0.1 * taste, 0, 1))})
    res = analyze(df, variant="variant", ratios=["clicks/sessions"], cuped=True, planning=False)
    assert res.config["cuped_auto_covariates"] == {"clicks/sessions": "pre_clicks/pre_sessions"}
    vr = res.variance_reduction.iloc[0]
    assert vr["covariates"] == "pre_clicks/pre_sessions" and vr["var_reduction"] > 0.1
    assert vr["se_ratio"] == pytest.approx(vr["expected_se_ratio"], rel=0.05)


# -- relative lift intervals -------------------------------------------------------

def test_fieller_interval():
    c = Comparison("x", 10.0, 11.0, 0.25, 0.36, 100, 100)
    lo, hi = c.fieller(0.95)
    z2 = stats.norm.ppf(0.975) ** 2
    for r in (lo + 1, hi + 1):  # the bounds solve (m_t - r m_c)^2 = z^2 (v_t + r^2 v_c)
        assert (11 - r * 10) ** 2 == pytest.approx(z2 * (0.36 + r**2 * 0.25), rel=1e-10)
    dl, dh = c.lift_test(0.95, "delta")[2:4]
    assert lo < 0.1 < hi and (hi - 0.1) > (0.1 - lo)  # asymmetric, longer to the right
    assert abs((hi - lo) - (dh - dl)) < 0.01  # close to the delta interval when V_c / m_c^2 is small
    assert np.isnan(Comparison("x", 0.5, 1.0, 0.25, 0.1, 10, 10).fieller()[0])  # unbounded: m_c^2 < z^2 V_c


def test_lift_ci_option(users):
    res = analyze(users, variant="variant", metrics=["revenue"], lift_ci="fieller", planning=False)
    e = res.get("welch", "lift")
    assert e.extra["ci_method"] == "fieller" and (e.ci_low, e.ci_high) == (e.extra["ci_low_fieller"],
                                                                           e.extra["ci_high_fieller"])
    with pytest.raises(InputError, match="lift interval"):
        analyze(users, variant="variant", metrics=["revenue"], lift_ci="bootstrap")


# -- never silently per row -------------------------------------------------------

def test_repeated_user_ids_without_unit_warn():
    sess = simulate_experiment(300, seed=7, impressions=True)
    res = analyze(sess, variant="variant", metrics=["clicks"], planning=False)
    assert any("--unit user_id" in w for w in res.warnings)
    assert not any("--unit" in w for w in analyze(sess, variant="variant", metrics=["clicks"], unit="user_id",
                                                   planning=False).warnings)
