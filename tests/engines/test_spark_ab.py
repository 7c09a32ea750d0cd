"""A/B on Spark: the same sufficient statistics, hence the same estimates, as in process (1e-9)."""

from __future__ import annotations

import numpy as np
import pytest

from causalrec.errors import InputError
from causalrec.experiments import analyze
from causalrec.experiments.synthetic import simulate_experiment


def flat(result) -> dict:
    """Every number of the result's estimates (and SRM), keyed by where it is."""
    d = result.to_dict()
    out = {}
    for i, e in enumerate(d["estimates"]):
        for k, v in e.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[(i, e.get("estimator"), e.get("target"), k)] = float(v)
    for k, v in d["diagnostics"].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[("diag", k)] = float(v)
    return out


def assert_same(a, b):
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for k in fb:
        if np.isnan(fb[k]):
            assert np.isnan(fa[k]), k
        else:
            assert fa[k] == pytest.approx(fb[k], rel=1e-9, abs=1e-12), k
    assert a.to_dict()["warnings"] == b.to_dict()["warnings"]


@pytest.fixture(scope="module")
def users():
    return simulate_experiment(3_000, lift=[0.0, 0.05], click_lift=[0.0, 0.03], seed=4)


@pytest.fixture(scope="module")
def sessions():
    return simulate_experiment(800, lift=[0.0, 0.05], seed=5, impressions=True)


def test_cuped_and_ratio_per_user(spark, users):
    kw = dict(variant="variant", metrics=["revenue", "converted"], ratios=["clicks/sessions"],
              covariates=["pre_revenue", "pre_sessions"],
              segment="platform")
    local = analyze(users, **kw)
    remote = analyze(spark.createDataFrame(users).repartition(3), **kw)
    assert remote.config["engine"] == "spark"
    assert_same(remote, local)


@pytest.mark.slow  # Spark jobs: several seconds each
def test_sessions_summed_per_unit_across_partitions(spark, sessions):
    kw = dict(variant="variant", metrics=["revenue"], ratios=["clicks/revenue"], unit="user_id",
              covariates=["pre_revenue"], lin=True)
    local = analyze(sessions, **kw)
    # rows of one user scattered over partitions: Spark sums them per unit first
    sdf = spark.createDataFrame(sessions.sample(frac=1.0, random_state=1)).repartition(3)
    assert_same(analyze(sdf, **kw), local)


def test_bad_input_and_unsupported_options(spark, users):
    bad = users.copy()
    bad.loc[17, "revenue"] = np.nan
    with pytest.raises(InputError) as local:
        analyze(bad, variant="variant", metrics=["revenue"])
    with pytest.raises(InputError) as remote:
        analyze(spark.createDataFrame(bad), variant="variant", metrics=["revenue"])
    assert str(remote.value) == str(local.value)
    with pytest.raises(InputError, match="quantile"):
        analyze(spark.createDataFrame(users), variant="variant", quantiles=["revenue:0.5"])
