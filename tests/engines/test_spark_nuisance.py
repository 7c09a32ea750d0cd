"""Scikit-learn outcome models on Spark: fold models fitted on the driver, scored on the executors,
equal to the in-process cross-fit (same folds, same rows, same order) to 1e-9."""

from __future__ import annotations

import numpy as np
import pytest

from causalrec.data.schema import LogSchema
from causalrec.ope import evaluate
from causalrec.ope.synthetic import make_bandit_logs

SCHEMA = LogSchema(outcome="click", covariates=("segment",))
ESTS = ["dm", "ips", "snips", "dr", "sndr", "switch_dr"]

def _quantile_key(k: str) -> bool:
    """Weight quantiles: exact in memory, from the streaming histogram on Spark (as in the streaming path)."""
    from causalrec.ope.weights import QUANTILES, _qname

    return k == "weight_quantile_method" or k in {f"weight_{_qname(q)}" for q in QUANTILES}


@pytest.fixture(scope="module")
def bandit(tmp_path_factory):
    sim = make_bandit_logs(6_000, n_items=12, seed=5)
    path = tmp_path_factory.mktemp("spark_nuisance") / "logs.parquet"
    sim.logs.to_parquet(path, index=False, row_group_size=500)  # several partitions
    return sim, path


def _same(remote, mem):
    da, db = remote.to_dict(), mem.to_dict()
    assert [e["estimator"] for e in da["estimates"]] == [e["estimator"] for e in db["estimates"]]
    for ea, eb in zip(da["estimates"], db["estimates"], strict=True):
        for k in ("estimate", "se", "ci_low", "ci_high", "se_iid"):
            if k in ea or k in eb:
                assert ea[k] == pytest.approx(eb[k], rel=1e-9, abs=1e-12), (ea["estimator"], k)
    for k, v in db["diagnostics"].items():
        if _quantile_key(k):
            continue
        if isinstance(v, float) and np.isfinite(v):
            assert da["diagnostics"][k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
        else:
            assert da["diagnostics"][k] == v, k
    assert da["n_rows"] == db["n_rows"]
    assert da["outcome_model"] == db["outcome_model"]


@pytest.mark.parametrize("model,cluster", [
    ("ridge", "none"),
    pytest.param("logistic", "request_id", marks=pytest.mark.slow),  # Spark jobs: several seconds each
])
def test_sklearn_outcome_model_equals_in_process(spark, bandit, model, cluster):
    from sklearn.linear_model import LogisticRegression, Ridge

    sim, path = bandit
    est = Ridge(alpha=1.0) if model == "ridge" else LogisticRegression(C=1.0, max_iter=500)
    sdf = spark.read.parquet(str(path))
    assert sdf.rdd.getNumPartitions() > 1
    target = sim.targets["greedy_mix"]
    mem = evaluate(sim.logs, target, schema=SCHEMA, estimators=ESTS, outcome_model=est, cluster=cluster, seed=4)
    remote = evaluate(sdf, target, schema=SCHEMA, estimators=ESTS, outcome_model=est, cluster=cluster, seed=4)
    assert remote.config["engine"] == "spark"
    fit = remote.config["spark"]["outcome_fit"]
    assert fit["fit_sample"] is None and fit["rows_fitted"] == len(sim.logs)
    _same(remote, mem)
    # the model matters: DM differs from the cell-mean default's
    cells = evaluate(sdf, target, schema=SCHEMA, estimators=["dm"], cluster=cluster, seed=4)
    assert cells.estimates[0].estimate != pytest.approx(remote.estimates[0].estimate, rel=1e-6)


@pytest.mark.slow
def test_sampled_fit_above_the_row_limit(spark, bandit):
    from sklearn.linear_model import Ridge

    sim, path = bandit
    sdf = spark.read.parquet(str(path))
    target = sim.targets["greedy_mix"]
    res = evaluate(sdf, target, schema=SCHEMA, estimators=["dm", "dr"], outcome_model=Ridge(), cluster="none",
                   spark_fit_rows=2_000)
    fit = res.config["spark"]["outcome_fit"]
    assert fit["fit_sample"]["rate"] == pytest.approx(2_000 / 6_000)
    assert 1_700 < fit["rows_fitted"] < 2_300  # a Bernoulli sample at rate 1/3
    assert any("sample of" in w for w in res.warnings)
    full = evaluate(sim.logs, target, schema=SCHEMA, estimators=["dm", "dr"], outcome_model=Ridge(), cluster="none")
    # DR stays close to the full fit's (the weights carry it); not equal
    assert abs(res.estimates[1].estimate - full.estimates[1].estimate) < 3 * full.estimates[1].se


def test_debias_dr_equals_in_process(spark, bandit, same_estimates):
    """dr labels: the fold models fitted on the driver, predicting on the executors, equal in-process
    ``debias(..., folds="hash")`` per row (same rows in the same order: a Parquet scan)."""
    from sklearn.linear_model import Ridge

    from causalrec.debias import debias

    sim, path = bandit
    logs = sim.logs.assign(segment_name="s" + sim.logs["segment"].astype(str))  # a categorical covariate too
    logs.to_parquet(path.with_name("dr.parquet"), index=False, row_group_size=500)
    schema = LogSchema(outcome="click", covariates=("segment", "segment_name"))
    kw = dict(schema=schema, method="dr", clip=0.02, cap=40.0, examination=[1.0, 0.6, 0.3], position_clip=0.5,
              outcome_model=Ridge(alpha=1.0), bootstrap=0, seed=2)
    local = debias(logs, folds="hash", **kw)
    sdf = spark.read.parquet(str(path.with_name("dr.parquet")))
    assert sdf.rdd.getNumPartitions() > 1
    remote = debias(sdf, **kw)
    assert remote.config["folds"] == "hash"
    fit = remote.config["spark"]["outcome_fit"]
    assert fit["fit_sample"] is None and fit["rows_fitted"] == len(logs) and fit["model"] == "Ridge"
    frame = remote.frame.toPandas().sort_values(["request_id", "position"]).reset_index(drop=True)
    mine = local.frame.sort_values(["request_id", "position"]).reset_index(drop=True)
    for col in ("weight", "corrected_label", "debias_propensity", "debias_examination"):
        np.testing.assert_allclose(frame[col].to_numpy(), mine[col].to_numpy(), rtol=1e-9, atol=1e-12)
    assert (frame["debias_model"] == mine["debias_model"]).all()
    # the outcome model moved the labels where the position clip binds (else dr == ips per row)
    ips = debias(logs, **{**kw, "method": "ips"}).frame["corrected_label"].to_numpy()
    assert np.abs(local.frame["corrected_label"].to_numpy() - ips).max() > 1e-3
    same_estimates(remote, local)
    assert remote.warnings == local.warnings


@pytest.mark.parametrize("examination", ["none", pytest.param([1.0, 0.6, 0.3], marks=pytest.mark.slow)])
def test_estimated_item_share_propensity_equals_in_process(spark, bandit, examination, same_estimates):
    """``estimate_propensity=True`` without covariates: the empirical item share (per position when the
    log has positions) from counts summed over partitions, the same numbers as in process."""
    from causalrec.debias import debias
    from causalrec.errors import InputError

    sim, _ = bandit
    logs = sim.logs.drop(columns=["propensity"])
    kw = dict(schema=LogSchema(outcome="click"), method="snips", estimate_propensity=True, clip=0.02,
              examination=examination, bootstrap=0)
    local = debias(logs, **kw)
    remote = debias(spark.createDataFrame(logs).repartition(3), **kw)
    frame = remote.frame.toPandas().sort_values(["request_id", "position"]).reset_index(drop=True)
    mine = local.frame.sort_values(["request_id", "position"]).reset_index(drop=True)
    for col in ("weight", "corrected_label", "debias_propensity"):
        np.testing.assert_allclose(frame[col].to_numpy(), mine[col].to_numpy(), rtol=1e-9, atol=0)
    assert (frame["debias_model"] == mine["debias_model"]).all()
    assert "empirical item share per position" in mine["debias_model"].iloc[0]
    same_estimates(remote, local, keys=("estimate", "se"))
    with pytest.raises(InputError, match="covariates"):
        debias(spark.createDataFrame(logs), **{**kw, "schema": LogSchema(outcome="click", covariates=("segment",))})
