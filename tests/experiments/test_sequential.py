"""Confidence sequences and looks: the formula, and models at a look see only the data of that look."""

import numpy as np
import pytest
from scipy import stats

from causalrec.errors import InputError
from causalrec.experiments import CUPAC, analyze, confidence_sequence, simulate_experiment
from causalrec.experiments.sequential import cs_rho2


def test_confidence_sequence_formula_and_duality():
    est, var, n = np.array([0.3, 0.25, 0.2]), np.array([0.04, 0.02, 0.01]), np.array([1000, 2000, 4000])
    cs = confidence_sequence(est, var, n, alpha=0.05, tuning=2000)
    r2 = (-2 * np.log(0.05) + np.log(-2 * np.log(0.05) + 1)) / 2000
    assert cs_rho2(0.05, 2000) == pytest.approx(r2)
    half = np.sqrt(var * n) * np.sqrt(2 * (n * r2 + 1) / (n**2 * r2) * np.log(np.sqrt(n * r2 + 1) / 0.05))
    np.testing.assert_allclose(cs["high"] - est, half, rtol=1e-12)
    # the interval excludes 0 exactly when the always-valid p-value is below alpha
    grid = np.linspace(0.0, 0.6, 601)
    c = confidence_sequence(grid, np.full_like(grid, 0.01), np.full_like(grid, 4000), 0.05, 2000)
    assert np.array_equal(c["low"] > 0, c["p"] < 0.05)
    # wider than the fixed-horizon interval; running versions are monotone
    assert np.all(half > stats.norm.ppf(0.975) * np.sqrt(var))
    assert np.all(np.diff(cs["low_running"]) >= 0) and np.all(np.diff(cs["p_running"]) <= 0)


def test_tightest_near_the_tuning_parameter():
    n = np.array([500.0, 2000.0, 8000.0, 32000.0])
    width = {tau: confidence_sequence(np.zeros(4), 1.0 / n, n, 0.05, tau)["high"] * np.sqrt(n) for tau in n}
    # relative to the fixed-horizon width, each tuning value is best at its own sample size
    for i, tau in enumerate(n):
        assert np.argmin([width[t][i] for t in n]) == i, tau


@pytest.fixture(scope="module")
def users():
    return simulate_experiment(3000, lift=[0.0, 0.05], seed=12)


def test_looks_see_only_their_data(users):
    res = analyze(users, variant="variant", metrics=["revenue"], covariates=["pre_revenue"], cap=0.99,
                  timestamp="day", looks=[3.5, 7, 14], planning=False)
    path = res.sequential
    assert list(path["look"]) == [1, 2, 3]
    for k, cut in enumerate([3.5, 7.0]):
        early = analyze(users[users["day"] <= cut], variant="variant", metrics=["revenue"],
                        covariates=["pre_revenue"], cap=0.99, planning=False)
        e = early.get("cuped", "diff")
        assert path["diff"][k] == pytest.approx(e.estimate, abs=1e-12)
        assert path["se"][k] == pytest.approx(e.se, abs=1e-12)
        assert path["n"][k] == (users["day"] <= cut).sum()
    # the last look is the fixed-horizon analysis
    assert path["diff"].iloc[-1] == pytest.approx(res.get("cuped", "diff").estimate, abs=1e-12)


def test_cupac_is_refitted_at_each_look(users):
    from sklearn.linear_model import Ridge

    cupac = CUPAC(features=["pre_revenue", "pre_sessions"], model=Ridge(alpha=1.0), n_folds=3)
    res = analyze(users, variant="variant", metrics=["revenue"], cupac=cupac, timestamp="day", looks=[5, 14],
                  planning=False)
    early = analyze(users[users["day"] <= 5], variant="variant", metrics=["revenue"], cupac=cupac, planning=False)
    assert res.sequential["diff"][0] == pytest.approx(early.get("cupac", "diff").estimate, abs=1e-10)
    assert res.sequential["estimator"][0] == "cupac"


def test_sessions_are_re_aggregated_at_each_look():
    sess = simulate_experiment(800, seed=5, impressions=True)
    res = analyze(sess, variant="variant", metrics=["clicks"], unit="user_id", timestamp="day", looks=[7, 14],
                  planning=False)
    early = analyze(sess[sess["day"] <= 7], variant="variant", metrics=["clicks"], unit="user_id", planning=False)
    assert res.sequential["diff"][0] == pytest.approx(early.get("delta", "diff").estimate, abs=1e-12)
    assert res.sequential["n"][0] == sess.loc[sess["day"] <= 7, "user_id"].nunique()


def test_group_sequential_stops_early_on_a_large_effect():
    big = simulate_experiment(4000, lift=[0.0, 0.4], seed=2)
    res = analyze(big, variant="variant", metrics=["revenue"], timestamp="day", looks=10, planning=False)
    g = res.get("gst", "diff")
    assert g.extra["rejected"] and g.extra["stopped_at_look"] < 10 and g.p_value < 0.05
    assert g.ci_low > 0 and g.extra["boundary_z"] > stats.norm.ppf(0.975)
    cs = res.get("cs", "diff")
    assert cs.p_value < 0.05 and cs.ci_low > 0
    # with a planned size twice the data, the test is still running and says so
    res2 = analyze(big.iloc[:1000], variant="variant", metrics=["revenue"], timestamp="day", looks=5,
                   max_n=2000, planning=False)
    assert not res2.get("gst", "diff").extra["complete"]


def test_a_a_null_is_not_rejected_by_cs(users):
    aa = simulate_experiment(3000, lift=[0.0, 0.0], seed=8)
    res = analyze(aa, variant="variant", metrics=["revenue"], timestamp="day", looks=20, planning=False)
    assert res.get("cs", "diff").p_value >= res.sequential["p_cs"].min() - 1e-15
    assert res.get("cs", "diff").ci_high - res.get("cs", "diff").ci_low > 2 * 1.96 * res.get("welch", "diff").se


def test_bad_looks(users):
    with pytest.raises(InputError, match="out of order") as exc:
        analyze(users, variant="variant", metrics=["revenue"], timestamp="day", looks=[7, 3, 14])
    assert exc.value.column == "--looks"
    with pytest.raises(InputError, match="needs a timestamp"):
        analyze(users, variant="variant", metrics=["revenue"], looks=5)
    late = users.copy()
    late.loc[late["variant"] == "treatment", "day"] += 5  # the treatment arm starts 5 days late
    with pytest.raises(InputError, match="no rows by look 1") as exc:
        analyze(late, variant="variant", metrics=["revenue"], timestamp="day", looks=[2, 10, 19])
    assert exc.value.column == "variant"
    with pytest.raises(InputError, match="max-n"):
        analyze(users, variant="variant", metrics=["revenue"], timestamp="day", looks=3, max_n=100)
    with pytest.raises(InputError):
        analyze(users, variant="variant", metrics=["revenue"], timestamp="history", looks=3)


def test_datetime_timestamps(users):
    u = users.assign(ts=(np.datetime64("2024-05-01") + (users["day"] * 86400).astype("int64").astype("timedelta64[s]"))
                     .astype(str))
    res = analyze(u, variant="variant", metrics=["revenue"], timestamp="ts", looks="2024-05-05,2024-05-15",
                  planning=False)
    assert len(res.sequential) == 2 and str(res.sequential["cutoff"][0]).startswith("2024-05-05")
    assert res.sequential["n"][0] == (users["day"] < 4).sum()
