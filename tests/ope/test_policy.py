"""Target policy forms: context-free (with/without position), keyed by row or request, callables."""

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.errors import InputError
from causalrec.ope import evaluate
from causalrec.ope.synthetic import make_bandit_logs


@pytest.fixture(scope="module")
def sb():
    return make_bandit_logs(600, n_items=5, n_positions=3, n_segments=2, seed=3)


SCHEMA = LogSchema(outcome="click")
ALL = ("dm", "ips", "snips", "dr", "sndr", "switch_dr", "dros")


def _numpy_ips(logs, pi_logged):
    w = pi_logged / logs["propensity"].to_numpy()
    y = logs["click"].to_numpy()
    return (w * y).mean(), (w * y).sum() / w.sum()


def test_context_free_positional_matches_numpy(sb):
    t = sb.targets["greedy_mix"]
    r = evaluate(sb.logs, t, schema=SCHEMA, estimators=("ips", "snips"))
    P = t.pivot(index="item_id", columns="position", values="prob").to_numpy()
    ips, snips = _numpy_ips(sb.logs, P[sb.logs["item_id"], sb.logs["position"]])
    assert r.get("ips").estimate == pytest.approx(ips, rel=1e-12)
    assert r.get("snips").estimate == pytest.approx(snips, rel=1e-12)


def test_table_without_position_applies_to_every_position(sb):
    t = pd.DataFrame({"item_id": range(5), "prob": [0.1, 0.2, 0.3, 0.2, 0.2]})
    t_pos = pd.concat([t.assign(position=k) for k in range(3)])
    a = evaluate(sb.logs, t, schema=SCHEMA, estimators=ALL)
    b = evaluate(sb.logs, t_pos, schema=SCHEMA, estimators=ALL)
    np.testing.assert_allclose(a.to_frame()["estimate"], b.to_frame()["estimate"], rtol=1e-12)
    np.testing.assert_allclose(a.to_frame()["se"], b.to_frame()["se"], rtol=1e-12)


def test_row_and_request_keyed_tables_equal_context_free_when_identical(sb):
    t = sb.targets["greedy_mix"]
    n = len(sb.logs)
    by_row = (sb.logs[["position"]].reset_index(names="row").merge(t, on="position"))[["row", "item_id", "prob"]]
    reqs = sb.logs[["request_id", "position"]].drop_duplicates()
    by_req = reqs.merge(t, on="position")
    base = evaluate(sb.logs, t, schema=SCHEMA, estimators=ALL)
    for tab in (by_row, by_req):
        r = evaluate(sb.logs, tab, schema=SCHEMA, estimators=ALL)
        np.testing.assert_allclose(r.to_frame()["estimate"], base.to_frame()["estimate"], rtol=1e-10)
        np.testing.assert_allclose(r.to_frame()["se"], base.to_frame()["se"], rtol=1e-10)
    assert len(by_row) == n * 5


def test_row_keyed_contextual_target(sb):
    # a target that depends on the row: always the item with the highest true click rate for the segment
    logs = sb.logs
    best = sb.q.argmax(axis=1)  # (S, K)
    tab = pd.DataFrame({"row": np.arange(len(logs)), "item_id": best[logs["segment"], logs["position"]], "prob": 1.0})
    full = (pd.MultiIndex.from_product([np.arange(len(logs)), range(5)], names=["row", "item_id"])
            .to_frame(index=False).merge(tab, how="left").fillna({"prob": 0.0}))
    r = evaluate(logs, full, schema=SCHEMA, estimators=("ips", "dr"))
    w = (logs["item_id"].to_numpy() == best[logs["segment"], logs["position"]]) / logs["propensity"].to_numpy()
    assert r.get("ips").estimate == pytest.approx((w * logs["click"]).mean(), rel=1e-12)


def test_callable_targets(sb):
    t = sb.targets["greedy_mix"]
    P = t.pivot(index="item_id", columns="position", values="prob").to_numpy()

    def logged_probs(batch):
        return P[batch["item_id"].to_numpy(), batch["position"].to_numpy()]

    def long_table(batch):
        rows = pd.DataFrame({"row": np.arange(len(batch)), "position": batch["position"].to_numpy()})
        return rows.merge(t, on="position")[["row", "item_id", "prob"]]

    base = evaluate(sb.logs, t, schema=SCHEMA, estimators=ALL)
    r1 = evaluate(sb.logs, logged_probs, schema=SCHEMA, estimators=("ips", "snips"))
    assert r1.get("ips").estimate == pytest.approx(base.get("ips").estimate, rel=1e-12)
    r2 = evaluate(sb.logs, long_table, schema=SCHEMA, estimators=ALL)
    np.testing.assert_allclose(r2.to_frame()["estimate"], base.to_frame()["estimate"], rtol=1e-10)
    with pytest.raises(InputError, match="full target distribution"):
        evaluate(sb.logs, logged_probs, schema=SCHEMA, estimators=("dr",))
    r3 = evaluate(sb.logs, long_table, schema=SCHEMA, estimators=ALL, batch_size=100)
    np.testing.assert_allclose(r3.to_frame()["estimate"], base.to_frame()["estimate"], rtol=1e-9)


def test_position_base_one(sb):
    logs1 = sb.logs.assign(position=sb.logs["position"] + 1)
    t1 = sb.targets["greedy_mix"].assign(position=lambda d: d["position"] + 1)
    a = evaluate(logs1, t1, schema=SCHEMA.with_(position_base=1), estimators=ALL)
    b = evaluate(sb.logs, sb.targets["greedy_mix"], schema=SCHEMA, estimators=ALL)
    np.testing.assert_allclose(a.to_frame()["estimate"], b.to_frame()["estimate"], rtol=1e-12)


def test_string_items_and_user_column_names(sb):
    logs = sb.logs.rename(columns={"item_id": "sku", "click": "y", "propensity": "ps", "position": "slot"})
    logs = logs.assign(sku="item-" + logs["sku"].astype(str))
    t = sb.targets["uniform"].rename(columns={"item_id": "sku", "position": "slot"})
    t = t.assign(sku="item-" + t["sku"].astype(str))
    sch = LogSchema(item_id="sku", outcome="y", propensity="ps", position="slot")
    a = evaluate(logs, t, schema=sch, estimators=ALL)
    b = evaluate(sb.logs, sb.targets["uniform"], schema=SCHEMA, estimators=ALL)
    np.testing.assert_allclose(a.to_frame()["estimate"], b.to_frame()["estimate"], rtol=1e-12)


@pytest.mark.parametrize("mutate, match", [
    (lambda t: t[t["item_id"] != 4].assign(prob=0.25), "missing from the target policy"),
    (lambda t: pd.concat([t, t.iloc[:1]]), "duplicated"),
    (lambda t: t.assign(prob=t["prob"] * 1.1), "sum to 1"),
    (lambda t: t.drop(columns=["prob"]), "prob"),
    (lambda t: t[t["position"] < 2], "only covers positions"),
])
def test_bad_targets(sb, mutate, match):
    t = sb.targets["uniform"]
    with pytest.raises(InputError, match=match):
        evaluate(sb.logs, mutate(t), schema=SCHEMA, estimators=("ips",))


def test_missing_item_detected_when_streaming(sb, tmp_path):
    path = tmp_path / "logs.parquet"
    sb.logs.to_parquet(path)
    t = sb.targets["uniform"]
    with pytest.raises(InputError, match="missing from the target policy"):
        evaluate(path, t[t["item_id"] != 4].assign(prob=0.25), schema=SCHEMA, estimators=("ips",), batch_size=50)


def test_request_keyed_target_needs_every_request(sb):
    reqs = sb.logs[["request_id", "position"]].drop_duplicates()
    by_req = reqs.merge(sb.targets["uniform"], on="position")
    with pytest.raises(InputError, match="no probabilities for request"):
        evaluate(sb.logs, by_req[by_req["request_id"] != 7], schema=SCHEMA, estimators=("ips",))


def test_positional_target_needs_a_position_column(sb):
    with pytest.raises(InputError, match="no position column"):
        evaluate(sb.logs.drop(columns=["position"]), sb.targets["uniform"], schema=SCHEMA, estimators=("ips",))


@pytest.mark.parametrize("positions, match", [([0, 1, 2], "below the declared base"), ([1.5, 1, 2], "whole numbers")])
def test_bad_log_positions(sb, positions, match):
    logs = sb.logs.iloc[:3].assign(position=positions)
    t = sb.targets["uniform"].assign(position=lambda d: d["position"] + 1)
    with pytest.raises(InputError, match=match):
        evaluate(logs, t, schema=SCHEMA.with_(position_base=1), estimators=("ips",))
