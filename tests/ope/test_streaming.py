"""Streaming over Parquet batches gives the in-memory numbers (estimates, SEs, diagnostics) to 1e-9."""

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.errors import InputError
from causalrec.ope import evaluate
from causalrec.ope.synthetic import make_bandit_logs

ALL = ("dm", "ips", "snips", "dr", "sndr", "switch_dr", "dros")
SCHEMA = LogSchema(outcome="click")
DIAG = ("ess", "ess_ratio", "weight_mean", "weight_mean_se", "weight_max", "weight_min", "share_clipped",
        "propensity_min", "propensity_max", "logged_mean_outcome", "logged_mean_outcome_se")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    sb = make_bandit_logs(3000, n_items=8, n_positions=3, n_segments=3, seed=11)
    path = tmp_path_factory.mktemp("stream") / "logs.parquet"
    sb.logs.to_parquet(path, row_group_size=500)
    return sb, path


def _close(a, b):
    fa, fb = a.to_frame(), b.to_frame()
    np.testing.assert_allclose(fa["estimate"], fb["estimate"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fa["se"], fb["se"], rtol=1e-9, atol=1e-12)
    for k in DIAG:
        assert a.diagnostics[k] == pytest.approx(b.diagnostics[k], rel=1e-9, abs=1e-12), k


@pytest.mark.parametrize("batch_size, clip", [(1, None), (97, None), (97, 2.0), (1000, None), (1000, 2.0),
                                               (10_000, None), (10_000, 2.0)])
def test_streaming_equals_in_memory(data, batch_size, clip):
    sb, path = data
    logs = sb.logs if batch_size != 1 else sb.logs.iloc[:30]
    src = path if batch_size != 1 else logs
    mem = evaluate(logs, sb.targets["greedy_mix"], schema=SCHEMA, estimators=ALL, clip=clip)
    stream = evaluate(src, sb.targets["greedy_mix"], schema=SCHEMA, estimators=ALL, clip=clip,
                      batch_size=batch_size)
    _close(stream, mem)
    assert stream.config["mode"].startswith("streaming (2 passes")
    assert mem.config["mode"] == "in_memory"


def test_streaming_request_keyed_and_csv(data, tmp_path):
    sb, path = data
    reqs = sb.logs[["request_id", "position"]].drop_duplicates()
    by_req = reqs.merge(sb.targets["uniform"], on="position")
    mem = evaluate(sb.logs, by_req, schema=SCHEMA, estimators=ALL)
    _close(evaluate(path, by_req, schema=SCHEMA, estimators=ALL, batch_size=333), mem)
    csv = tmp_path / "logs.csv"
    sb.logs.to_csv(csv, index=False)
    _close(evaluate(csv, by_req, schema=SCHEMA, estimators=ALL, batch_size=700), mem)


def test_ips_only_streams_in_one_pass(data):
    sb, path = data
    r = evaluate(path, sb.targets["uniform"], schema=SCHEMA, estimators=("ips", "snips"), batch_size=500)
    assert r.config["mode"] == "streaming (1 pass)"


def test_streaming_quantiles_are_close(data):
    sb, path = data
    mem = evaluate(sb.logs, sb.targets["greedy_mix"], schema=SCHEMA, estimators=("ips",))
    st = evaluate(path, sb.targets["greedy_mix"], schema=SCHEMA, estimators=("ips",), batch_size=400)
    assert st.diagnostics["weight_quantile_method"] == "histogram"
    for k in ("weight_p50", "weight_p90", "weight_p99"):
        assert st.diagnostics[k] == pytest.approx(mem.diagnostics[k], rel=0.03)
    assert mem.weight_histogram == st.weight_histogram


def test_streaming_bootstrap_is_seeded_and_sane(data):
    sb, path = data
    kw = dict(schema=SCHEMA, estimators=("ips", "dr"), bootstrap=200, batch_size=1000, seed=5)
    a = evaluate(path, sb.targets["greedy_mix"], **kw)
    b = evaluate(path, sb.targets["greedy_mix"], **kw)
    assert a.to_dict()["estimates"] == b.to_dict()["estimates"]
    for e in a.estimates:
        width_boot = e.extra["boot_ci_high"] - e.extra["boot_ci_low"]
        assert width_boot == pytest.approx(e.ci_high - e.ci_low, rel=0.3)
        assert e.extra["boot_ci_low"] < e.estimate < e.extra["boot_ci_high"]


def test_sklearn_model_refuses_streaming(data):
    from sklearn.linear_model import Ridge

    sb, path = data
    with pytest.raises(InputError, match="whole log in memory"):
        evaluate(path, sb.targets["uniform"], schema=SCHEMA, estimators=("dr",), outcome_model=Ridge(),
                 batch_size=100)


def test_fixed_outcome_function_streams(data):
    sb, path = data
    q = sb.q

    def true_q(frame: pd.DataFrame) -> np.ndarray:
        return q[frame["segment"].to_numpy(), frame["item_id"].to_numpy(), frame["position"].to_numpy()]

    mem = evaluate(sb.logs, sb.targets["greedy_mix"], schema=SCHEMA, estimators=ALL, outcome_model=true_q)
    st = evaluate(path, sb.targets["greedy_mix"], schema=SCHEMA, estimators=ALL, outcome_model=true_q,
                  batch_size=256)
    _close(st, mem)
    assert st.config["mode"] == "streaming (1 pass)"
    # with the true outcome model DM is the true value up to the sampling of segments and positions
    assert mem.get("dm").estimate == pytest.approx(sb.truth["greedy_mix"], rel=0.05)


def test_blocked_in_memory_path_equals_whole_array_path(data, monkeypatch):
    import causalrec.ope.evaluation as evaluation

    sb, _ = data
    whole = evaluate(sb.logs, sb.targets["greedy_mix"], schema=SCHEMA, estimators=ALL, clip=2.0)
    whole_plain = evaluate(sb.logs, sb.targets["greedy_mix"], schema=SCHEMA, estimators=ALL, clip=2.0, cluster=None)
    monkeypatch.setattr(evaluation, "CHUNK_ABOVE_ROWS", 100)
    monkeypatch.setattr(evaluation, "CHUNK_ROWS", 301)
    blocks = evaluate(sb.logs, sb.targets["greedy_mix"], schema=SCHEMA, estimators=ALL, clip=2.0)
    assert blocks.config["mode"] == "in_memory (blocks)"
    _close(blocks, whole)
    # the default clusters by request_id; the blocks add into per-request totals
    assert blocks.config["cluster"] == "request_id"
    for a, b in zip(blocks.estimates, whole.estimates, strict=True):
        assert a.to_dict()["se_iid"] == pytest.approx(b.to_dict()["se_iid"], rel=1e-9)
    assert blocks.diagnostics["n_clusters"] == whole.diagnostics["n_clusters"]
    plain = evaluate(sb.logs, sb.targets["greedy_mix"], schema=SCHEMA, estimators=ALL, clip=2.0, cluster=None)
    assert plain.config["mode"] == "in_memory (blocks)"
    _close(plain, whole_plain)
