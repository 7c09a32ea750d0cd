"""Cluster-robust standard errors and bootstrap for OPE (``evaluate(..., cluster=...)``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalrec.errors import InputError
from causalrec.inference import bootstrap_ci, cluster_se, influence_se
from causalrec.ope import evaluate

A, K = 10, 10
ITEM_CTR = np.linspace(0.4, 1.0, A)
TARGET_PROBS = np.r_[np.zeros(A - 3), np.full(3, 1 / 3)]
TARGET = pd.DataFrame({"item_id": np.arange(A), "prob": TARGET_PROBS})
# request-level click propensity u ~ Beta(0.5, 1), shared by the request's K positions
TRUTH = (0.5 / 1.5) * float(TARGET_PROBS @ ITEM_CTR)


def slate_logs(rng: np.random.Generator, n_requests: int) -> pd.DataFrame:
    """Uniform logging over A items at each of K positions; clicks share the request's u."""
    u = rng.beta(0.5, 1.0, n_requests)
    req = np.repeat(np.arange(n_requests), K)
    item = rng.integers(0, A, n_requests * K)
    y = (rng.random(n_requests * K) < u[req] * ITEM_CTR[item]).astype(float)
    return pd.DataFrame({"request_id": req, "item_id": item, "position": np.tile(np.arange(K), n_requests),
                         "outcome": y, "propensity": 1.0 / A})


def test_cluster_se_with_singletons_equals_iid_se():
    psi = np.random.default_rng(1).normal(size=500)
    assert cluster_se(psi, np.arange(500)) == pytest.approx(influence_se(psi), rel=1e-12)


def test_cluster_se_of_duplicated_rows_is_the_se_of_the_distinct_rows():
    # every value twice in its own cluster: the cluster SE sees 200 independent draws,
    # while the iid SE wrongly believes in 400
    psi = np.random.default_rng(2).normal(size=200)
    rows, groups = np.repeat(psi, 2), np.repeat(np.arange(200), 2)
    assert cluster_se(rows, groups) == pytest.approx(influence_se(psi), rel=1e-12)
    assert influence_se(rows) < 0.75 * cluster_se(rows, groups)


def test_cluster_bootstrap_resamples_whole_clusters():
    groups = np.repeat(np.arange(50), 4)
    seen = []

    def stat(counts):
        seen.append(counts)
        return counts.sum(axis=1)

    bootstrap_ci(stat, 200, 20, groups=groups, batch=10)
    counts = np.concatenate(seen)
    by_cluster = counts.reshape(20, 50, 4)
    assert (by_cluster == by_cluster[:, :, :1]).all()  # rows of a cluster share a multiplicity
    assert (counts.sum(axis=1) == 200).all()  # 50 clusters drawn per replicate, 4 rows each


def test_clustered_intervals_cover_where_iid_intervals_do_not():
    """400 slate logs with a shared per-request click propensity (intra-request correlation).

    Measured when written: clustered coverage 0.95, iid coverage 0.84. The bounds are about
    three binomial standard errors around 0.95, and five above 0.84.
    """
    rng = np.random.default_rng(0)
    hit_cluster = hit_iid = 0
    reps = 400
    for _ in range(reps):
        res = evaluate(slate_logs(rng, 200), TARGET, estimators=["snips"], cluster="request_id")
        e = res.estimates[0].to_dict()
        hit_cluster += e["ci_low"] <= TRUTH <= e["ci_high"]
        hit_iid += abs(e["estimate"] - TRUTH) <= 1.959964 * e["se_iid"]
    assert 0.92 <= hit_cluster / reps <= 0.98
    assert hit_iid / reps < 0.90


def test_cluster_result_reports_clusters_and_iid_se():
    logs = slate_logs(np.random.default_rng(3), 300)
    before = logs.copy()
    res = evaluate(logs, TARGET, estimators=["ips", "dr"], cluster="request_id", bootstrap=200)
    pd.testing.assert_frame_equal(logs, before)  # input not mutated
    assert res.diagnostics["n_clusters"] == 300
    assert res.diagnostics["rows_per_cluster_mean"] == K
    assert res.config["cluster"] == "request_id"
    for e in res.estimates:
        d = e.to_dict()
        assert d["se"] > d["se_iid"]  # positive intra-request correlation
        # cluster bootstrap and cluster influence-function SE estimate the same thing
        assert d["boot_se"] == pytest.approx(d["se"], rel=0.2)
    plain = evaluate(logs, TARGET, estimators=["ips", "dr"], cluster=None)
    assert [e.estimate for e in plain.estimates] == pytest.approx([e.estimate for e in res.estimates], rel=0.02)
    assert "se_iid" not in plain.estimates[0].to_dict()
    assert plain.config["cluster"] is None and plain.config["cluster_choice"] == "none"


def test_request_column_is_the_default_cluster():
    """Issue 10: with a request_id column, every OPE standard error is clustered by it unless opted out."""
    logs = slate_logs(np.random.default_rng(9), 200)
    auto = evaluate(logs, TARGET, estimators=["ips", "snips", "dr"])
    explicit = evaluate(logs, TARGET, estimators=["ips", "snips", "dr"], cluster="request_id")
    assert auto.config["cluster"] == "request_id" and auto.config["cluster_choice"] == "auto"
    assert auto.diagnostics["cluster_column"] == "request_id" and auto.diagnostics["n_clusters"] == 200
    for a, b in zip(auto.estimates, explicit.estimates, strict=True):
        assert a.se == b.se and a.to_dict()["se_iid"] < a.se
    off = evaluate(logs, TARGET, estimators=["ips"], cluster="none")
    assert off.config["cluster"] is None and "cluster_column" not in off.diagnostics
    assert off.estimates[0].se == pytest.approx(auto.estimates[0].to_dict()["se_iid"], rel=1e-12)
    no_req = evaluate(logs.drop(columns=["request_id"]), TARGET, estimators=["ips"])
    assert no_req.config["cluster"] is None and no_req.config["cluster_choice"] == "auto (no request column)"


def test_cluster_errors_name_the_column(tmp_path):
    logs = slate_logs(np.random.default_rng(4), 20)
    with pytest.raises(InputError, match="session_id"):
        evaluate(logs, TARGET, cluster="session_id")
    shuffled = logs.sample(frac=1.0, random_state=0)
    with pytest.raises(InputError, match="sorted by 'request_id'"):
        evaluate(shuffled, TARGET, cluster="request_id", batch_size=50)
    evaluate(shuffled, TARGET, cluster="request_id")  # in memory any order works
    bad = logs.astype({"request_id": float})
    bad.loc[3, "request_id"] = np.nan
    with pytest.raises(InputError, match="missing"):
        evaluate(bad, TARGET, cluster="request_id")
    with pytest.raises(InputError, match="fewer than 2"):
        evaluate(logs.assign(one=1), TARGET, cluster="one")


def test_cli_cluster_option(tmp_path):
    from typer.testing import CliRunner

    from causalrec.cli.app import app

    logs = slate_logs(np.random.default_rng(5), 100)
    logs.to_csv(tmp_path / "logs.csv", index=False)
    TARGET.to_csv(tmp_path / "target.csv", index=False)
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["ope", str(tmp_path / "logs.csv"), "--target", str(tmp_path / "target.csv"),
                                 "--cluster", "request_id", "--estimators", "ips,snips", "--out", str(out),
                                 "--report", str(tmp_path / "r.html"), "--quiet"])
    assert r.exit_code == 0, r.output
    import json

    payload = json.loads(out.read_text())
    assert payload["diagnostics"]["n_clusters"] == 100
    assert all("se_iid" in e for e in payload["estimates"])
    html = (tmp_path / "r.html").read_text()
    assert "cluster-robust by" in html and "request_id" in html


@pytest.mark.parametrize("batch_size", [7, 64, 1000])
def test_streaming_clusters_equal_in_memory(tmp_path, batch_size):
    """Batches that split requests (7 and 64 rows vs 10 per request) and one that does not."""
    rng = np.random.default_rng(6)
    logs = slate_logs(rng, 150)
    logs = logs[rng.random(len(logs)) < 0.6].reset_index(drop=True)  # requests of unequal sizes
    logs["request_id"] = "r" + logs["request_id"].astype(str).str.zfill(4)  # string keys, sorted
    path = tmp_path / "logs.parquet"
    logs.to_parquet(path)
    ests = ["ips", "snips", "dr", "sndr"]
    mem = evaluate(logs, TARGET, estimators=ests, cluster="request_id")
    st = evaluate(path, TARGET, estimators=ests, cluster="request_id", batch_size=batch_size, progress=False)
    for a, b in zip(mem.estimates, st.estimates, strict=True):
        assert b.estimate == pytest.approx(a.estimate, rel=1e-10)
        assert b.se == pytest.approx(a.se, rel=1e-8)
        assert b.to_dict()["se_iid"] == pytest.approx(a.to_dict()["se_iid"], rel=1e-8)
    for k in ("n_clusters", "rows_per_cluster_mean", "rows_per_cluster_max"):
        assert st.diagnostics[k] == mem.diagnostics[k]


def test_streaming_cluster_bootstrap_resamples_clusters():
    logs = slate_logs(np.random.default_rng(7), 400)
    res = evaluate(logs, TARGET, estimators=["snips"], cluster="request_id", batch_size=333, bootstrap=300,
                   progress=False)
    d = res.estimates[0].to_dict()
    assert d["boot_se"] == pytest.approx(d["se"], rel=0.2)
    assert d["boot_se"] > 1.2 * d["se_iid"]  # a row bootstrap would land near se_iid
    assert "whole clusters" in res.config["bootstrap_method"]


def test_tab_separated_logs_are_read_in_memory_and_streamed(tmp_path):
    logs = slate_logs(np.random.default_rng(8), 50)
    path = tmp_path / "logs.tsv"
    logs.to_csv(path, sep="\t", index=False)
    mem = evaluate(path, TARGET, estimators=["ips"], cluster="request_id")
    st = evaluate(path, TARGET, estimators=["ips"], cluster="request_id", batch_size=64, progress=False)
    ref = evaluate(logs, TARGET, estimators=["ips"], cluster="request_id")
    assert mem.estimates[0].estimate == ref.estimates[0].estimate
    assert st.estimates[0].estimate == pytest.approx(ref.estimates[0].estimate, rel=1e-12)
