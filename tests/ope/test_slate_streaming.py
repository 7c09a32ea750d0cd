"""Ranked lists streamed in batches give the numbers of the in-memory evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from causalrec.data import LogSchema
from causalrec.ope import evaluate
from causalrec.ope.slate_synthetic import make_slate_logs

SCHEMA = LogSchema(outcome="click")
NAMES = ["sips", "snsips", "iips", "sniips", "rips", "snrips", "cascade_dr", "pi", "snpi"]


@pytest.fixture(scope="module")
def data():
    sb = make_slate_logs(600, n_items=7, list_length=4, seed=11)
    logs = sb.logs.copy()
    logs["request_id"] = "q" + logs["request_id"].astype(str).str.zfill(5)  # string keys, sorted
    scores = sb.target_scores.assign(request_id="q" + sb.target_scores["request_id"].astype(str).str.zfill(5))
    return logs, scores


def _same(a, b, rel=1e-10):
    for x, y in zip(a.estimates, b.estimates, strict=True):
        assert x.estimator == y.estimator
        assert x.estimate == pytest.approx(y.estimate, rel=rel), x.estimator
        assert x.se == pytest.approx(y.se, rel=1e-8), x.estimator
        if "se_iid" in x.to_dict():
            assert x.to_dict()["se_iid"] == pytest.approx(y.to_dict()["se_iid"], rel=1e-8)


@pytest.mark.parametrize("batch_size", [5, 97, 1000, 100_000])
def test_streaming_equals_in_memory(data, tmp_path, batch_size):
    logs, scores = data
    path = tmp_path / "logs.parquet"
    logs.to_parquet(path)
    kw = dict(schema=SCHEMA, target_kind="plackett-luce", estimators=NAMES, propensity_marginal="propensity_marginal")
    mem = evaluate(logs, scores, **kw)
    st = evaluate(path, scores, batch_size=batch_size, progress=False, **kw)
    _same(st, mem)
    assert st.config["mode"] == "streaming (1 pass; outcome-model terms from the blocks kept in memory)"
    assert mem.config["mode"] == "in_memory (1 pass)"
    assert st.diagnostics["n_clusters"] == mem.diagnostics["n_clusters"] == 600
    for k in ("ess", "weight_max", "weight_mean"):
        assert st.diagnostics[k] == pytest.approx(mem.diagnostics[k], rel=1e-10)


@pytest.mark.parametrize("batch_size", [97, 100_000])
def test_second_read_when_kept_blocks_exceed_budget(data, tmp_path, monkeypatch, batch_size):
    """Blocks kept for Cascade-DR beyond REPLAY_BYTES: the file is read again, same numbers; the
    kept blocks give exactly (not only to 1e-10) the numbers of the second read."""
    import causalrec.ope.slate_eval as se

    logs, scores = data
    path = tmp_path / "logs.parquet"
    logs.to_parquet(path)
    kw = dict(schema=SCHEMA, target_kind="plackett-luce", estimators=NAMES, propensity_marginal="propensity_marginal",
              batch_size=batch_size, progress=False, bootstrap=50)
    kept = evaluate(path, scores, **kw)
    monkeypatch.setattr(se, "REPLAY_BYTES", 0)
    again = evaluate(path, scores, **kw)
    assert again.config["mode"] == "streaming (2 passes)"
    assert kept.config["mode"].startswith("streaming (1 pass; ")
    for x, y in zip(kept.estimates, again.estimates, strict=True):
        assert x.to_dict() == y.to_dict(), x.estimator
    assert kept.diagnostics == again.diagnostics


def test_rows_in_any_order_in_memory(data):
    logs, scores = data
    kw = dict(schema=SCHEMA, target_kind="plackett-luce", estimators=NAMES, propensity_marginal="propensity_marginal")
    shuffled = logs.sample(frac=1.0, random_state=1)
    _same(evaluate(shuffled, scores, **kw), evaluate(logs, scores, **kw), rel=1e-12)


def test_in_memory_blocks_equal_one_block(data, monkeypatch):
    import causalrec.ope.slate_eval as se

    logs, scores = data
    kw = dict(schema=SCHEMA, target_kind="plackett-luce", estimators=NAMES, propensity_marginal="propensity_marginal",
              bootstrap=50)
    one = evaluate(logs, scores, **kw)
    monkeypatch.setattr(se, "BLOCK_ROWS", 333)
    many = evaluate(logs, scores, **kw)
    _same(many, one)
    for a, b in zip(many.estimates, one.estimates, strict=True):
        assert a.to_dict()["boot_ci_low"] == pytest.approx(b.to_dict()["boot_ci_low"], rel=1e-12)


def test_other_cluster_column_and_no_clusters(data, tmp_path):
    logs, scores = data
    logs = logs.assign(user=(np.arange(len(logs)) // 12))  # a user has three lists; sorted
    path = tmp_path / "u.parquet"
    logs.to_parquet(path)
    kw = dict(schema=SCHEMA, target_kind="plackett-luce", estimators=["rips", "cascade_dr"])
    mem = evaluate(logs, scores, cluster="user", **kw)
    st = evaluate(path, scores, cluster="user", batch_size=77, progress=False, bootstrap=30, **kw)
    _same(st, mem)
    assert mem.diagnostics["n_clusters"] == 200 and mem.diagnostics["rows_per_cluster_max"] == 12
    iid = evaluate(logs, scores, cluster="none", **kw)
    assert "cluster_column" not in iid.diagnostics
    for a, b in zip(iid.estimates, mem.estimates, strict=True):
        assert a.estimate == pytest.approx(b.estimate, rel=0.05)  # folds differ (by request vs by user)


def test_value_per_list_streamed(data, tmp_path):
    logs, scores = data
    path = tmp_path / "l.parquet"
    logs.to_parquet(path)
    kw = dict(schema=SCHEMA, target_kind="plackett-luce", estimators=["rips", "snrips", "cascade_dr"],
              value_per="list")
    mem = evaluate(logs, scores, **kw)
    st = evaluate(path, scores, batch_size=64, progress=False, **kw)
    _same(st, mem)
    per_imp = evaluate(logs, scores, **{**kw, "value_per": "impression"})
    for a, b in zip(mem.estimates, per_imp.estimates, strict=True):
        assert a.estimate == pytest.approx(4 * b.estimate, rel=1e-12)  # lists of 4 slots


def test_streamed_bootstrap_resamples_requests(data, tmp_path):
    logs, scores = data
    path = tmp_path / "b.parquet"
    logs.to_parquet(path)
    res = evaluate(path, scores, schema=SCHEMA, target_kind="plackett-luce", estimators=["rips"], bootstrap=300,
                   batch_size=500, progress=False)
    d = res.estimates[0].to_dict()
    assert d["boot_se"] == pytest.approx(d["se"], rel=0.2)
    assert res.config["bootstrap_method"] == "poisson (streaming), whole clusters"


def test_topk_and_table_targets_stream(data, tmp_path):
    logs, scores = data
    path = tmp_path / "t.parquet"
    logs.to_parquet(path)
    kw = dict(schema=SCHEMA, estimators=["sips", "iips", "rips", "cascade_dr"],
              propensity_marginal="propensity_marginal")
    mem = evaluate(logs, scores, target_kind="topk", **kw)
    st = evaluate(path, scores, target_kind="topk", batch_size=50, progress=False, **kw)
    _same(st, mem)
    # a deterministic table target built from the same top-k lists gives the same numbers
    top = scores.sort_values(["request_id", "score"], ascending=[True, False]).groupby("request_id").head(4)
    top = top.assign(position=top.groupby("request_id").cumcount(), prob=1.0)[["request_id", "position",
                                                                               "item_id", "prob"]]
    tab = evaluate(logs, top, **kw)
    for a, b in zip(tab.estimates, mem.estimates, strict=True):
        assert a.estimate == pytest.approx(b.estimate, rel=1e-12), a.estimator
