"""``compare_with_ope``: the OPE prediction set beside the A/B measurement."""

import numpy as np
import pandas as pd
import pytest

from causalrec.data.schema import LogSchema
from causalrec.errors import InputError
from causalrec.experiments import analyze, compare_with_ope

CTR = np.array([0.05, 0.10, 0.20])  # click probability of each of three items


def _logs(n, probs, seed):
    rng = np.random.default_rng(seed)
    item = rng.choice(3, size=n, p=probs)
    return pd.DataFrame({"item_id": item, "outcome": (rng.random(n) < CTR[item]).astype(int),
                         "propensity": np.asarray(probs)[item], "user": rng.integers(0, n // 4, n)})


@pytest.fixture(scope="module")
def arms():
    control = _logs(20_000, [1 / 3, 1 / 3, 1 / 3], seed=1)  # uniform logging policy
    target = [0.1, 0.2, 0.7]
    treatment = _logs(20_000, target, seed=2)  # the treatment policy, run online
    treatment["user"] += 1_000_000  # users are randomised: none is in both arms
    table = pd.DataFrame({"item_id": [0, 1, 2], "prob": target})
    return control, treatment, table


def test_prediction_agrees_with_measurement(arms):
    control, treatment, table = arms
    schema = LogSchema(position=None, user_id=None)
    cmp = compare_with_ope(control, table, treatment, schema=schema, estimators=("ips", "snips"))
    truth = float(CTR @ np.array([0.1, 0.2, 0.7]))
    t = cmp.table()
    assert list(t["ope_estimator"]) == ["ips", "snips"]
    for _, row in t.iterrows():
        assert row["predicted_value_ci_low"] <= truth <= row["predicted_value_ci_high"]
        assert row["measured_value"] == pytest.approx(treatment["outcome"].mean())
        assert row["agree"] and row["ci_overlap"]
        assert row["predicted_lift"] == pytest.approx(row["predicted_value"] / control["outcome"].mean() - 1)
    err = cmp.get("ips", "prediction_error")
    ips = cmp.ope.get("ips")
    assert err.estimate == pytest.approx(ips.estimate - treatment["outcome"].mean())
    assert err.se == pytest.approx(np.hypot(ips.se, cmp.diagnostics["treatment_se"]))
    d = cmp.to_dict()
    assert d["command"] == "ab_vs_ope" and len(d["agreement"]) == 2 and d["ab"]["srm"] is not None
    assert "agree" in cmp.summary()


def test_detects_a_wrong_prediction(arms):
    control, treatment, _ = arms
    wrong = pd.DataFrame({"item_id": [0, 1, 2], "prob": [1.0, 0.0, 0.0]})  # not the policy that ran
    cmp = compare_with_ope(control, wrong, treatment, schema=LogSchema(position=None, user_id=None),
                           estimators=("snips",))
    assert not cmp.agreement["agree"].iloc[0] and cmp.agreement["p_value"].iloc[0] < 1e-6


def test_from_ab_result_with_units_and_bootstrap(arms):
    control, treatment, table = arms
    both = pd.concat([control.assign(arm="control"), treatment.assign(arm="new")], ignore_index=True)
    ab = analyze(both, variant="arm", metrics=["outcome"], unit="user", planning=False)
    assert not ab.warnings
    schema = LogSchema(position=None, user_id=None)
    cmp = compare_with_ope(control, table, ab, schema=schema, estimators=("snips",), unit="user",
                           lift_bootstrap=20, seed=3)
    row = cmp.table().iloc[0]
    e = ab.get("delta", "diff")
    assert row["measured_value"] == pytest.approx(e.extra["value_treatment"])
    assert row["predicted_lift_ci_low"] < row["predicted_lift"] < row["predicted_lift_ci_high"]
    assert "bootstrap" in cmp.get("snips", "lift", source="ope").extra["ci_method"]
    with pytest.raises(InputError, match="no estimate"):
        compare_with_ope(control, table, ab, schema=schema, metric="revenue")


def test_ope_side_is_clustered_by_the_experiment_unit():
    from causalrec.ope import evaluate

    rng = np.random.default_rng(9)
    n_users, per = 1000, 20
    user = np.repeat(np.arange(n_users), per)
    lift = np.repeat(rng.normal(0, 0.15, n_users), per)  # a user's impressions share a click propensity

    def logs(probs, offset, seed):
        r = np.random.default_rng(seed)
        item = r.choice(3, size=len(user), p=probs)
        p_click = np.clip(CTR[item] + lift, 0.0, 1.0)
        return pd.DataFrame({"item_id": item, "outcome": (r.random(len(user)) < p_click).astype(int),
                             "propensity": np.asarray(probs)[item], "user": user + offset})

    control = logs([1 / 3, 1 / 3, 1 / 3], 0, 1)
    treatment = logs([0.1, 0.2, 0.7], 10**6, 2)
    table = pd.DataFrame({"item_id": [0, 1, 2], "prob": [0.1, 0.2, 0.7]})
    schema = LogSchema(position=None, user_id=None)
    both = pd.concat([control.assign(arm="control"), treatment.assign(arm="new")], ignore_index=True)
    ab = analyze(both, variant="arm", metrics=["outcome"], unit="user", planning=False)
    cmp = compare_with_ope(control, table, ab, schema=schema, estimators=("snips",))
    assert cmp.config["unit"] == "user" and cmp.config["ope_cluster"] == "user"
    clustered = evaluate(control, table, schema=schema, estimators=("snips",), cluster="user").get("snips")
    iid = evaluate(control, table, schema=schema, estimators=("snips",)).get("snips")
    e = cmp.get("snips", "value", source="ope")
    assert e.se == pytest.approx(clustered.se) and e.se > 1.3 * iid.se
    err = cmp.get("snips", "prediction_error")
    assert err.se == pytest.approx(np.hypot(clustered.se, cmp.diagnostics["treatment_se"]))
    with pytest.raises(InputError, match="unit column"):
        compare_with_ope(control.drop(columns=["user"]), table, ab, schema=schema, estimators=("snips",))
