"""Position bias under personalised rankings: harvesting, EM with features, the identification check."""

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.debias import debias, harvest_interventions, identification_check, regression_em
from causalrec.errors import InputError

THETA = np.array([1.0, 0.6, 0.45, 0.3, 0.2])


def _personalised(n_pairs=4000, reps=4, seed=0):
    """(user, item) pairs with their own relevance, logged ``reps`` times; better pairs sit higher.

    Within a pair the slot varies at random (several rankers), across pairs it follows relevance:
    item-level EM is confounded, pair-level harvesting is not.
    """
    rng = np.random.default_rng(seed)
    item = rng.integers(0, 40, n_pairs)
    user = np.arange(n_pairs)
    gamma = rng.uniform(0.05, 0.95, n_pairs)
    u = np.repeat(user, reps)
    i = np.repeat(item, reps)
    g = np.repeat(gamma, reps)
    slot = np.clip(np.round((1 - g) * 4 + rng.normal(0, 1.0, g.size)), 0, 4).astype(int)
    click = (rng.random(g.size) < THETA[slot] * g).astype(float)
    return pd.DataFrame({"user_id": u, "item_id": i, "position": slot, "click": click, "relevance": g})


def test_harvesting_recovers_the_curve_when_pairs_repeat():
    d = _personalised()
    pb = harvest_interventions(d.click.to_numpy(), d.position.to_numpy(), d.user_id.to_numpy(),
                               d.item_id.to_numpy(), bootstrap=30, seed=1)
    assert pb.method == "intervention_harvesting"
    assert np.max(np.abs(pb.examination - THETA)) < 0.06, pb.summary()
    assert np.all(pb.ci_low <= pb.examination) and np.all(pb.examination <= pb.ci_high)
    assert pb.extra["share_rows_used"] > 0.9
    # the item-level EM on the same logs is confounded by the personalised ranking
    em = regression_em(d.click.to_numpy(), d.position.to_numpy(), groups=d.item_id.to_numpy(), bootstrap=0)
    assert np.max(np.abs(em.examination - THETA)) > 0.1, em.summary()


def test_regression_em_with_a_relevance_model_on_features_survives_personalisation():
    d = _personalised()
    g = d.relevance.to_numpy()
    X = np.c_[np.log(g / (1 - g))]  # a feature that explains the relevance the ranking used
    pb = regression_em(d.click.to_numpy(), d.position.to_numpy(), features=X, bootstrap=0)
    assert np.max(np.abs(pb.examination - THETA)) < 0.06, pb.summary()


def test_harvesting_without_repeated_pairs_is_an_error():
    rng = np.random.default_rng(0)
    n = 500
    with pytest.raises(InputError, match="harvesting cannot identify"):
        harvest_interventions(rng.integers(0, 2, n).astype(float), rng.integers(0, 3, n), np.arange(n),
                              rng.integers(0, 5, n), bootstrap=0)


def test_identification_check_measures_pairs_not_items():
    pos = np.array([0, 1, 0, 1, 2, 2])
    items = np.array(["a", "a", "b", "b", "c", "c"])
    users = np.array([1, 2, 1, 1, 3, 3])
    out = identification_check(pos, items, users)
    assert out["share_rows_item_multi_position"] == pytest.approx(4 / 6)
    # only (1, b) is a pair seen at two slots
    assert out["share_rows_pair_multi_position"] == pytest.approx(2 / 6)


def test_debias_warns_when_em_meets_a_personalised_ranking_and_not_on_shuffled_lists():
    from causalrec.simulate import simulate_logs

    kw = dict(n_positions=5, n_users=400, n_items=120, position_bias=0.8)
    pers = simulate_logs(12_000, seed=3, random_share=0.0, **kw).logs
    shuf = simulate_logs(12_000, seed=3, random_share=1.0, **kw).logs
    schema = LogSchema(outcome="click")
    r1 = debias(pers, schema=schema, method="ips", exposure="treatment", bootstrap=0)
    r2 = debias(shuf, schema=schema, method="ips", exposure="treatment", bootstrap=0)
    assert any("not randomised" in w for w in r1.warnings), r1.warnings
    assert not any("not randomised" in w for w in r2.warnings), r2.warnings
    ex = r1.to_dict()["examination"]
    assert "share_rows_pair_multi_position" in ex and ex["ranking_looks_randomised"] is False


def test_debias_harvest_path_and_its_context_column():
    d = _personalised(n_pairs=1500, reps=4, seed=2).assign(propensity=1.0)
    r = debias(d, schema=LogSchema(outcome="click"), method="ips", examination="harvest", bootstrap=0)
    assert r.position_bias.method == "intervention_harvesting"
    assert np.max(np.abs(r.position_bias.examination - THETA)) < 0.1
    with pytest.raises(InputError, match="context"):
        debias(d.drop(columns="user_id"), schema=LogSchema(outcome="click"), method="ips", examination="harvest",
               bootstrap=0)


def test_one_based_positions_read_as_zero_based_name_the_flag():
    d = _personalised(n_pairs=200, reps=2).assign(propensity=1.0)
    d["position"] = d["position"] + 1
    with pytest.raises(InputError, match="--position-base 1"):
        debias(d, schema=LogSchema(outcome="click"), method="ips", bootstrap=0)
    with pytest.raises(InputError, match="--position-base 1"):
        regression_em(d.click.to_numpy(), d.position.to_numpy(), groups=d.item_id.to_numpy(), bootstrap=0)


def _em_case(seed, shuffled):
    from causalrec.simulate import simulate_logs

    sim = simulate_logs(20000 * 5, seed=100 + seed, n_positions=5, new_user_share=0.0, position_bias=0.8,
                        random_share=1.0 if shuffled else 0.0, n_users=1000, n_items=300, catalog_seed=0)
    res = debias(sim.logs, schema=LogSchema(outcome="click"), method="ips", exposure="treatment", bootstrap=0,
                 seed=seed)
    err = float(np.max(np.abs(res.position_bias.examination - np.asarray(sim.truth["examination"]))))
    return res, err


@pytest.mark.parametrize("seed", [0, 1])
def test_em_under_a_personalised_ranking_is_flagged_when_off(seed):
    res, err = _em_case(seed, shuffled=False)
    pb = res.position_bias
    # the default per-item EM is confounded here (the case): off by more than 0.05 at a deep slot ...
    assert err > 0.05
    # ... and every such run carries the verdict, in the result, its JSON, the table and a warning
    assert pb.extra["trusted"] is False and any(i.startswith("not randomised") for i in pb.extra["issues"])
    assert res.diagnostics["examination_trusted"] is False
    assert '"trusted": false' in res.to_json()
    assert "verdict: NOT trusted" in res.summary()
    assert any("NOT trusted" in w for w in res.warnings)


@pytest.mark.parametrize("seed", [0, 1])
def test_em_on_shuffled_lists_is_within_005_and_trusted(seed):
    res, err = _em_case(seed, shuffled=True)
    pb = res.position_bias
    assert err <= 0.05, pb.summary()
    assert pb.extra["trusted"] is True, pb.extra["issues"]
    assert pb.extra["precision_from"] == "split-half" and pb.extra["max_half_width"] <= 0.05
    assert "verdict: trusted" in res.summary()


def test_verdict_flags_an_imprecise_curve_and_weak_identification():
    from causalrec.debias.position import examination_verdict

    rng = np.random.default_rng(0)
    n = 400
    pos = rng.integers(0, 3, n)
    click = (rng.random(n) < 0.3 * THETA[pos]).astype(float)
    # every item at one slot only: not identified; a few hundred rows: imprecise
    pb = regression_em(click, pos, groups=pos * 1000 + rng.integers(0, 3, n), bootstrap=30, seed=0)
    examination_verdict(pb, randomised=True, precision_from="bootstrap")
    assert pb.extra["trusted"] is False
    kinds = {i.split(":")[0] for i in pb.extra["issues"]}
    assert {"weak identification", "imprecise"} <= kinds, pb.extra["issues"]
    # without an interval and without a split-half, precision is not measured: never trusted by default
    pb0 = regression_em(click, pos, groups=rng.integers(0, 3, n), bootstrap=0)
    examination_verdict(pb0, randomised=True)
    assert any("could not be measured" in i for i in pb0.extra["issues"])
