"""``analyze`` end to end on small synthetic experiments."""

import json

import numpy as np
import pandas as pd
import pytest

from causalrec.errors import InputError
from causalrec.experiments import CUPAC, analyze, simulate_experiment, welch


@pytest.fixture(scope="module")
def users():
    return simulate_experiment(3000, lift=[0.0, 0.05], click_lift=[0.0, 0.05], seed=3)


def test_analyze_numbers_are_the_estimators(users):
    r = analyze(users, variant="variant", metrics=["revenue"], planning=False)
    e = r.get("welch", "diff", metric="revenue")
    y = users["revenue"].to_numpy()
    c = (users["variant"] == "control").to_numpy()
    d, se, lo, hi, p = welch(y[c], y[~c]).diff_test()
    assert (e.estimate, e.se, e.ci_low, e.ci_high, e.p_value) == pytest.approx((d, se, lo, hi, p), abs=1e-12)
    lift = r.get("welch", "lift", metric="revenue")
    assert lift.estimate == pytest.approx(y[~c].mean() / y[c].mean() - 1)
    assert r.control == "control" and r.variants == ["control", "treatment"]


def test_json_shape(users):
    r = analyze(users, variant="variant", metrics=["revenue", "converted"], ratios=["clicks/sessions"],
                covariates=["pre_revenue"], segment="platform")
    d = json.loads(r.to_json())
    assert d["command"] == "ab" and d["n_rows"] == len(users)
    assert set(d["srm"]) >= {"p_value", "mismatch", "observed", "expected_split"}
    est = {(e["metric"], e["estimator"], e["target"]) for e in d["estimates"]}
    assert ("revenue", "welch", "diff") in est and ("converted", "proportion", "lift") in est
    assert ("clicks/sessions", "delta", "diff") in est and ("clicks/sessions", "cuped", "diff") in est
    for e in d["estimates"]:
        assert {"se", "ci_low", "ci_high", "p_value", "variant", "control"} <= set(e)
    prim = [e for e in d["estimates"] if e["primary"] and e["target"] == "diff"]
    assert len(prim) == 3 and all(e["estimator"] == "cuped" and "p_holm" in e and "p_bh" in e for e in prim)
    assert len(d["variance_reduction"]) == 3 and d["segments"] and d["power"]
    assert list(r.primary()["metric"]) == ["revenue", "converted", "clicks/sessions"]
    assert "SRM check passed" in r.summary().splitlines()[0]
    assert "<table" in r._repr_html_()


def test_srm_flagged_and_reported_first():
    sim = simulate_experiment(6000, seed=5)
    keep = ~((sim["variant"] == "treatment").to_numpy() & (np.arange(len(sim)) % 8 == 0))
    r = analyze(sim[keep], variant="variant", metrics=["revenue"], planning=False)
    assert r.srm.mismatch and r.srm.p_value < 1e-4
    assert r.summary().startswith("!!! SAMPLE RATIO MISMATCH")
    assert "SAMPLE RATIO MISMATCH" in r.warnings[0]
    ok = analyze(sim, variant="variant", metrics=["revenue"], planning=False)
    assert not ok.srm.mismatch
    # the designed split is what is tested: 90/10 data against a 90/10 design passes
    r90 = simulate_experiment(5000, split=[0.9, 0.1], seed=1)
    assert not analyze(r90, variant="variant", metrics=["revenue"], expected_split="90/10", planning=False).srm.mismatch
    assert analyze(r90, variant="variant", metrics=["revenue"], planning=False).srm.mismatch


def test_unit_aggregation_uses_unit_sums():
    s = simulate_experiment(800, seed=2, impressions=True)
    r = analyze(s, variant="variant", metrics=["clicks"], unit="user_id", planning=False)
    e = r.get("delta", "diff", metric="clicks")
    g = s.groupby("user_id").agg(v=("variant", "first"), c=("clicks", "sum"), n=("clicks", "size"))
    t = g["v"] == "treatment"
    ctr_t = g.loc[t, "c"].sum() / g.loc[t, "n"].sum()
    ctr_c = g.loc[~t, "c"].sum() / g.loc[~t, "n"].sum()
    assert e.estimate == pytest.approx(ctr_t - ctr_c)
    assert r.n_units == s["user_id"].nunique() and r.n_rows == len(s)
    # the naive per-impression analysis pretends there are more independent units
    naive = analyze(s, variant="variant", metrics=["clicks"], planning=False).get("proportion", "diff")
    assert naive.estimate == pytest.approx(e.estimate)
    assert r.arms["n_units"].sum() == s["user_id"].nunique()
    # per-unit totals instead of the per-row rate
    tot = analyze(s, variant="variant", metrics=["clicks"], unit="user_id", aggregate="sum", planning=False)
    assert tot.get("welch", "diff").estimate == pytest.approx(g.loc[t, "c"].mean() - g.loc[~t, "c"].mean())


def test_units_in_two_arms_are_dropped_with_a_warning():
    s = simulate_experiment(300, seed=4, impressions=True)
    s2 = s.copy()
    first = s2.index[s2["user_id"] == s2["user_id"].iloc[0]]
    s2.loc[first[:1], "variant"] = "treatment" if s2.loc[first[0], "variant"] == "control" else "control"
    r = analyze(s2, variant="variant", metrics=["clicks"], unit="user_id", planning=False)
    assert r.n_units == s["user_id"].nunique() - 1
    assert any("more than one variant" in w for w in r.warnings)


def test_missing_covariates_imputed_with_indicator(users):
    u = users.copy()
    u["pre_revenue"] = u["pre_revenue"].astype(float)
    u.loc[u.index[::10], "pre_revenue"] = np.nan
    r = analyze(u, variant="variant", metrics=["revenue"], covariates=["pre_revenue"], planning=False)
    assert any("300 units with missing values were imputed" in w for w in r.warnings)
    vr = r.variance_reduction.iloc[0]
    assert vr["covariates"] == "pre_revenue, pre_revenue_missing" and vr["se_ratio"] < 1
    assert users["pre_revenue"].notna().all()  # input untouched


def test_cuped_auto_covariate_and_more_arms():
    sim = simulate_experiment(3000, variants=("A", "B", "C"), lift=[0, 0.1, 0], seed=8)
    r = analyze(sim.rename(columns={"pre_revenue": "pre_revenue"}), variant="variant", metrics=["revenue"],
                cuped=True, control="B", planning=False)
    assert r.control == "B"
    assert sorted({e.extra["variant"] for e in r.estimates}) == ["A", "C"]
    assert r.config["cuped_auto_covariates"] == {"revenue": "pre_revenue"}
    with pytest.raises(InputError, match="pre_converted"):
        analyze(sim, variant="variant", metrics=["converted"], cuped=True)


def test_cupac_with_text_embedder_stand_in(users):
    class TasteEmbedder:  # stands in for causalrec.features.TextEmbedder (one-hot of the words)
        def encode_column(self, s):
            words = sorted({w for t in s for w in t.split()})
            return np.array([[w in t.split() for w in words] for t in s], dtype=np.float32)

    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    cupac = CUPAC(features=["pre_revenue", "pre_sessions"], text="history", embedder=TasteEmbedder(), n_folds=3,
                  model=HistGradientBoostingRegressor(max_iter=60))
    # OpenMP threads spin against other processes on a shared 2-core machine: one thread is 20x faster there
    with threadpool_limits(1):
        r = analyze(users, variant="variant", metrics=["revenue"], covariates=["pre_revenue"], cupac=cupac,
                    planning=False)
    vr = r.variance_reduction.set_index("estimator")
    assert vr.loc["cupac", "var_reduction"] > vr.loc["cuped", "var_reduction"] > 0.1
    assert r.get("cupac", "diff").extra["primary"] and not r.get("cuped", "diff").extra["primary"]


def test_segments_and_sequential(users):
    r = analyze(users, variant="variant", metrics=["revenue"], segment="platform", sequential=True,
                order="user_id", planning=False)
    seg = r.segments
    assert set(seg["value"]) == {"web", "ios", "android"}
    assert (seg["p_holm"] >= seg["p_value"] - 1e-12).all() and (seg["p_bh"] >= seg["p_value"] - 1e-12).all()
    seq = r.get("msprt", "diff")
    fixed = r.get("welch", "diff")
    assert seq.p_value >= fixed.p_value and seq.ci_high - seq.ci_low > fixed.ci_high - fixed.ci_low
    assert seq.extra["n_looks"] == 20


def test_bad_inputs_raise_input_error(users):
    with pytest.raises(InputError, match="only one variant"):
        analyze(users[users["variant"] == "control"], variant="variant", metrics=["revenue"])
    with pytest.raises(InputError, match="must be numeric"):
        analyze(users, variant="variant", metrics=["history"])
    with pytest.raises(InputError, match="zero units"):
        analyze(users, variant="variant", metrics=["revenue"], control="holdout")
    cat = users.assign(variant=pd.Categorical(users["variant"], categories=["control", "treatment", "new"]))
    with pytest.raises(InputError, match="'new' has zero units"):
        analyze(cat, variant="variant", metrics=["revenue"])
    with pytest.raises(InputError, match="3 weights"):
        analyze(users, variant="variant", metrics=["revenue"], expected_split="30/30/40")
    with pytest.raises(InputError, match="NUM/DEN"):
        analyze(users, variant="variant", ratios=["clicks"])
    with pytest.raises(InputError, match="missing"):
        analyze(users, variant="variant", metrics=["nope"])
