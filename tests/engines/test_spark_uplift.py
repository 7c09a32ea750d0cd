"""Uplift AIPW on Spark: nuisances fitted per fold on the driver, scored on the executors, the ATE/ATT
finished from merged moments; equal to the in-process run with the same (hash) folds to 1e-9."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalrec.errors import InputError
from causalrec.uplift import estimate

COVS = ["x1", "x2", "segment"]


def _logs(n: int = 4_000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    segment = rng.choice(["a", "b", "c"], size=n)
    e = 1.0 / (1.0 + np.exp(-(0.8 * x1 - 0.5 * x2 + 0.3 * (segment == "b"))))
    t = (rng.random(n) < e).astype(int)
    y = 1.0 + x1 + 0.5 * x2 + t * (0.4 + 0.3 * x1) + rng.normal(scale=1.0, size=n)
    # users of a few rows each, scattered over the file: a user spans partitions
    user = rng.integers(0, 700, size=n)
    return pd.DataFrame({"user_id": user, "x1": x1, "x2": x2, "segment": segment, "treat": t, "y": y})


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    df = _logs()
    path = tmp_path_factory.mktemp("spark_uplift") / "logs.parquet"
    df.to_parquet(path, index=False, row_group_size=500)  # several partitions
    return df, path


def _models():
    from sklearn.linear_model import LogisticRegression, Ridge

    return LogisticRegression(C=1.0, max_iter=1000), Ridge(alpha=1.0)


def _run(logs, **kw):
    p, o = _models()
    return estimate(logs, treatment="treat", outcome="y", covariates=COVS, features="covariates",
                    methods=["aipw"], propensity_model=p, outcome_model=o, n_folds=3, seed=7, **kw)


def _same(remote, mem):
    assert [(e.estimator, e.target) for e in remote.estimates] == [(e.estimator, e.target) for e in mem.estimates]
    for a, b in zip(remote.estimates, mem.estimates, strict=True):
        for k in ("estimate", "se", "ci_low", "ci_high"):
            assert getattr(a, k) == pytest.approx(getattr(b, k), rel=1e-9, abs=1e-12), (a.target, k)
    for k in ("n_treated", "n_control", "share_clipped", "share_outcome_predictions_bounded", "propensity_min",
              "propensity_max"):
        assert remote.diagnostics[k] == pytest.approx(mem.diagnostics[k], rel=1e-9, abs=1e-12), k
    assert remote.n_rows == mem.n_rows


@pytest.mark.parametrize("group_by_user,ci_target,trim", [
    # clusters (users) that span partitions: the groupBy path; ~75 s on the loaded 2-core machine
    pytest.param(True, "sample", None, marks=pytest.mark.slow),
    (False, "population", 0.05),     # row-hash folds, no clusters, trimming
])
def test_spark_aipw_equals_in_process(spark, logs, group_by_user, ci_target, trim):
    df, path = logs
    sdf = spark.read.parquet(str(path))
    assert sdf.rdd.getNumPartitions() > 1
    mem = _run(df, folds="hash", group_by_user=group_by_user, ci_target=ci_target, trim=trim)
    remote = _run(sdf, group_by_user=group_by_user, ci_target=ci_target, trim=trim)
    assert remote.config["engine"] == "spark"
    fit = remote.config["spark"]["nuisance_fit"]
    assert fit["fit_sample"] is None and fit["rows_fitted"] == len(df)
    _same(remote, mem)
    # the folds matter: the in-process default (shuffled split) gives another estimate
    split = _run(df, group_by_user=group_by_user, ci_target=ci_target, trim=trim)
    assert split.estimates[0].estimate != pytest.approx(mem.estimates[0].estimate, rel=1e-12)


def test_spark_uplift_sampled_fit_and_limits(spark, logs):
    df, path = logs
    sdf = spark.read.parquet(str(path))
    res = _run(sdf, group_by_user=False, spark_fit_rows=2_000)
    fit = res.config["spark"]["nuisance_fit"]
    assert fit["fit_sample"]["rate"] == pytest.approx(0.5)
    assert 1_700 < fit["rows_fitted"] < 2_300
    assert any("sample" in w for w in res.warnings)
    mem = _run(df, folds="hash", group_by_user=False)
    assert res.estimates[0].estimate == pytest.approx(mem.estimates[0].estimate, abs=5 * mem.estimates[0].se)
    with pytest.raises(InputError, match="do not run on Spark"):
        estimate(sdf, treatment="treat", outcome="y", covariates=COVS, methods=["aipw", "dml"])
    with pytest.raises(InputError, match="folds"):
        _run(sdf, folds="split")
