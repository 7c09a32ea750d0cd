"""The Spark engine's OPE equals the in-process engine (estimates, SEs, diagnostics) to 1e-9."""

from __future__ import annotations

import re

import numpy as np
import pytest

from causalrec.data.schema import LogSchema
from causalrec.errors import InputError
from causalrec.ope import evaluate
from causalrec.ope.synthetic import make_bandit_logs

SCHEMA = LogSchema(outcome="click")
ESTS = ["dm", "ips", "snips", "dr", "sndr", "switch_dr"]


@pytest.fixture(scope="module")
def bandit(tmp_path_factory):
    sim = make_bandit_logs(6_000, n_items=12, seed=3)
    path = tmp_path_factory.mktemp("spark_ope") / "logs.parquet"
    sim.logs.to_parquet(path, index=False, row_group_size=500)  # many row groups: several partitions
    return sim, path


def assert_same(a, b, rtol=1e-9):
    da, db = a.to_dict(), b.to_dict()
    assert [e["estimator"] for e in da["estimates"]] == [e["estimator"] for e in db["estimates"]]
    for ea, eb in zip(da["estimates"], db["estimates"], strict=True):
        for k in ("estimate", "se", "ci_low", "ci_high", "se_iid"):
            if k in ea or k in eb:
                assert ea[k] == pytest.approx(eb[k], rel=rtol, abs=1e-12), (ea["estimator"], k)
    for k, v in db["diagnostics"].items():
        if isinstance(v, float) and np.isfinite(v):
            assert da["diagnostics"][k] == pytest.approx(v, rel=rtol, abs=1e-12), k
        else:
            assert da["diagnostics"][k] == v, k
    assert da["n_rows"] == db["n_rows"]


@pytest.mark.parametrize("cluster", ["none", "request_id"])
def test_spark_equals_in_process_streaming(spark, bandit, cluster):
    sim, path = bandit
    sdf = spark.read.parquet(str(path))
    assert sdf.rdd.getNumPartitions() > 1
    target = sim.targets["greedy_mix"]
    local = evaluate(path, target, schema=SCHEMA, estimators=ESTS, cluster=cluster, batch_size=1_000)
    remote = evaluate(sdf, target, schema=SCHEMA, estimators=ESTS, cluster=cluster)
    assert remote.config["engine"] == "spark"
    assert remote.config["spark"]["partitions"] > 1
    assert_same(remote, local)
    # estimates and SEs also equal the in-memory path (its quantiles are exact, the rest equal)
    mem = evaluate(sim.logs, target, schema=SCHEMA, estimators=ESTS, cluster=cluster)
    for ea, eb in zip(remote.to_dict()["estimates"], mem.to_dict()["estimates"], strict=True):
        assert ea["estimate"] == pytest.approx(eb["estimate"], rel=1e-9)
        assert ea["se"] == pytest.approx(eb["se"], rel=1e-9)


def test_clusters_split_across_partitions(spark, bandit):
    """Rows shuffled so every request's rows sit in different partitions: the same clustered SE."""
    sim, _ = bandit
    logs = sim.logs.sample(frac=1.0, random_state=0).reset_index(drop=True)
    sdf = spark.createDataFrame(logs).repartition(4)
    parts = sdf.rdd.mapPartitions(lambda it: [sorted({r["request_id"] for r in it})]).collect()
    spanning = set(parts[0]) & set(parts[1])
    assert spanning, "some requests must span partitions for this test to mean anything"
    target = sim.targets["greedy_mix"]
    mem = evaluate(logs, target, schema=SCHEMA, estimators=["ips", "snips", "dr"], cluster="request_id")
    remote = evaluate(sdf, target, schema=SCHEMA, estimators=["ips", "snips", "dr"], cluster="request_id")
    for ea, eb in zip(remote.to_dict()["estimates"], mem.to_dict()["estimates"], strict=True):
        for k in ("estimate", "se", "se_iid"):
            assert ea[k] == pytest.approx(eb[k], rel=1e-9), (ea["estimator"], k)
    d = remote.diagnostics
    assert d["n_clusters"] == mem.diagnostics["n_clusters"]
    assert d["rows_per_cluster_max"] == mem.diagnostics["rows_per_cluster_max"]


def test_bad_input_raises_the_same_error(spark, bandit):
    sim, _ = bandit
    logs = sim.logs.copy()
    logs.loc[4321, "propensity"] = 0.0
    target = sim.targets["greedy_mix"]
    with pytest.raises(InputError) as local:
        evaluate(logs, target, schema=SCHEMA, batch_size=1_000)
    with pytest.raises(InputError) as remote:
        evaluate(spark.createDataFrame(logs), target, schema=SCHEMA)
    # the same message; both streaming engines number rows within their batch
    assert re.sub(r"row \d+", "row N", str(remote.value)) == re.sub(r"row \d+", "row N", str(local.value))
    with pytest.raises(InputError, match="bootstrap"):
        evaluate(spark.createDataFrame(sim.logs), target, schema=SCHEMA, bootstrap=10)
