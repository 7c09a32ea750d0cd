"""Slate estimators on a log small enough to compute by hand (two requests of two slots)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalrec.errors import InputError
from causalrec.inference import cluster_se
from causalrec.ope import evaluate

ALL = ["sips", "snsips", "iips", "sniips", "rips", "snrips", "cascade_dr", "pi", "snpi"]

# request A shows items (0, 1), request B (1, 2); clicks (1, 0) and (0, 1)
LOGS = pd.DataFrame({
    "request_id": ["A", "A", "B", "B"], "position": [0, 1, 0, 1], "item_id": [0, 1, 1, 2],
    "outcome": [1.0, 0.0, 0.0, 1.0],
    "propensity": [0.5, 0.4, 0.25, 0.5],  # logging probability given the items above
    "pm": [0.5, 0.3, 0.25, 0.35],  # logging marginal at the slot
})
# the target's distribution at each logged slot given the logged items above, and its marginals
TARGET = pd.DataFrame({
    "request_id": ["A", "A", "A", "A", "B", "B", "B", "B"],
    "position": [0, 0, 1, 1, 0, 0, 1, 1],
    "item_id": [0, 1, 1, 2, 1, 0, 2, 0],
    "prob": [0.6, 0.4, 0.5, 0.5, 0.4, 0.6, 0.8, 0.2],
    "prob_marginal": [0.6, 0.4, 0.3, 0.7, 0.4, 0.6, 0.5, 0.5],
})
# by hand: rho_A = (1.2, 1.25) -> W_A = (1.2, 1.5); rho_B = (1.6, 1.6) -> W_B = (1.6, 2.56)
# omega_A = (1.2, 1.0), omega_B = (1.6, 0.5 / 0.35); w_pi = sum(omega) - 1 per list
W = np.array([1.2, 1.5, 1.6, 2.56])
W_LIST = np.array([1.5, 1.5, 2.56, 2.56])
OMEGA = np.array([1.2, 1.0, 1.6, 0.5 / 0.35])
W_PI = np.array([1.2, 1.2, 1.6 + 0.5 / 0.35 - 1, 1.6 + 0.5 / 0.35 - 1])
Y = LOGS["outcome"].to_numpy()
# cascade_dr with Qhat = 0.5 everywhere: W_k (y - 0.5) + W_{k-1} * 0.5
CDR_TERMS = W * (Y - 0.5) + np.array([1.0, 1.2, 1.0, 1.6]) * 0.5
BY_HAND_PER_LIST = {
    "sips": (W_LIST * Y).sum() / 2, "snsips": (W_LIST * Y).sum() / (W_LIST / 2).sum(),
    "iips": (OMEGA * Y).sum() / 2, "sniips": (OMEGA * Y).sum() / (OMEGA / 2).sum(),
    "rips": (W * Y).sum() / 2, "snrips": (W * Y).sum() / (W / 2).sum(),
    "cascade_dr": CDR_TERMS.sum() / 2,
    "pi": (W_PI * Y).sum() / 2, "snpi": (W_PI * Y).sum() / (W_PI / 2).sum(),
}


def half(frame: pd.DataFrame) -> np.ndarray:
    return np.full(len(frame), 0.5)


def run(**kw):
    return evaluate(LOGS, TARGET, estimators=ALL, propensity_marginal="pm", outcome_model=half, **kw)


def test_every_estimator_equals_the_hand_computation_per_list():
    res = run(value_per="list")
    for e in res.estimates:
        assert e.estimate == pytest.approx(BY_HAND_PER_LIST[e.estimator], rel=1e-12), e.estimator
        assert e.target == "policy_value_per_list"
    assert BY_HAND_PER_LIST["sips"] == pytest.approx(2.03)  # the arithmetic above, spelled out once
    assert BY_HAND_PER_LIST["cascade_dr"] == pytest.approx(1.365)


def test_per_impression_divides_the_plain_estimators_by_the_list_length():
    res = run()
    for e in res.estimates:
        assert e.estimate == pytest.approx(BY_HAND_PER_LIST[e.estimator] / 2, rel=1e-12), e.estimator
        assert e.target == "policy_value"


def test_standard_errors_are_clustered_by_request_by_default():
    res = run(value_per="list")
    assert res.config["cluster"] == "request_id" and res.config["cluster_choice"] == "auto"
    assert res.diagnostics["n_clusters"] == 2
    rips = res.get("rips")
    # per-list totals (1.2, 2.56): psi = +-0.68, se^2 = sum psi^2 / (G (G - 1))
    assert rips.se == pytest.approx(0.68, rel=1e-12)
    # the same as the shared cluster-robust SE of the row influence values
    v = rips.estimate
    psi_rows = (W * Y - v * 0.5) / 0.5  # b = 1/L per row, mean(b) = 0.5
    assert rips.se == pytest.approx(cluster_se(psi_rows, np.array([0, 0, 1, 1])), rel=1e-12)
    assert "se_iid" in rips.to_dict()
    iid = run(value_per="list", cluster=None).get("rips")
    assert iid.se == pytest.approx(rips.to_dict()["se_iid"], rel=1e-12)


def test_deterministic_table_needs_no_marginal_column():
    # the target ranks item 0 then item 1 for A, item 1 then 2 for B: both logged lists
    det = pd.DataFrame({"request_id": ["A", "A", "B", "B"], "position": [0, 1, 0, 1], "item_id": [0, 1, 1, 2],
                        "prob": 1.0})
    res = evaluate(LOGS, det, estimators=["sips", "iips", "rips"], propensity_marginal="pm", value_per="list")
    sips = (1 / (0.5 * 0.4) * 1 + 1 / (0.25 * 0.5) * 1) / 2
    assert res.get("sips").estimate == pytest.approx(sips, rel=1e-12)
    assert res.get("iips").estimate == pytest.approx((1 / 0.5 + 1 / 0.35) / 2, rel=1e-12)
    assert res.target_policy["deterministic"] is True
    with pytest.raises(InputError, match="prob_marginal"):
        evaluate(LOGS, TARGET.drop(columns=["prob_marginal"]), estimators=["iips"], propensity_marginal="pm")


def test_clip_caps_each_weight():
    res = run(value_per="list", clip=1.3)
    assert res.get("rips").estimate == pytest.approx((1.2 + 1.3) / 2, rel=1e-12)
    assert res.get("sips").estimate == pytest.approx((1.3 + 1.3) / 2, rel=1e-12)


def test_bootstrap_resamples_requests(tmp_path):
    rng = np.random.default_rng(0)
    logs = pd.concat([LOGS.assign(request_id=LOGS["request_id"] + str(i)) for i in range(60)], ignore_index=True)
    logs["outcome"] = rng.integers(0, 2, len(logs)).astype(float)
    target = pd.concat([TARGET.assign(request_id=TARGET["request_id"] + str(i)) for i in range(60)],
                       ignore_index=True)
    res = evaluate(logs, target, estimators=["rips", "iips"], propensity_marginal="pm", bootstrap=400)
    for e in res.estimates:
        d = e.to_dict()
        assert d["boot_ci_low"] < d["estimate"] < d["boot_ci_high"]
        assert d["boot_se"] == pytest.approx(d["se"], rel=0.25)
    assert res.config["bootstrap_method"] == "multinomial, whole clusters"


def test_inputs_are_not_mutated_and_json_has_the_contract(tmp_path):
    before, tbefore = LOGS.copy(), TARGET.copy()
    res = run()
    pd.testing.assert_frame_equal(LOGS, before)
    pd.testing.assert_frame_equal(TARGET, tbefore)
    d = res.to_dict()
    for k in ("causalrec_version", "command", "n_rows", "estimates", "diagnostics", "warnings", "config"):
        assert k in d
    assert d["n_rows"] == 4 and d["config"]["value_per"] == "impression"
    assert d["diagnostics"]["slate_weight_list"]["max"] == pytest.approx(2.56)
