"""Unbiasedness of the slate estimators on worlds with known truth.

Exact: in a world small enough to enumerate every list the logging policy can show, a log
with one request per (segment, list) whose outcomes are scaled by the list's probability
``G * P(segment) * mu(list | segment)`` makes the estimator's mean over requests equal to its
expectation under the logging policy exactly (every estimator here is linear in the
outcomes, and Cascade-DR's fixed outcome model is scaled the same way). So
``E_mu[V_hat] = V`` is checked to 1e-10, and so is the bias where an estimator's
assumption fails (a test that can fail). Monte Carlo: the mean over 150 simulated logs
lies within 4 Monte Carlo standard errors of the truth.
"""

from __future__ import annotations

from itertools import permutations, product

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.ope import evaluate
from causalrec.ope.slate_synthetic import make_slate_logs, make_world, true_value

SCHEMA = LogSchema(outcome="click")
ESTS = ["sips", "iips", "rips", "cascade_dr", "pi"]


def expectation_log(world):
    """A log whose request mean equals the expectation over the logging policy (see the module docstring)."""
    a, ell, s = world.n_items, world.list_length, world.n_segments
    if world.logging == "independent":
        lists = np.array(list(product(range(a), repeat=ell)), dtype=np.int64)
    else:
        lists = np.array(list(permutations(range(a), ell)), dtype=np.int64)
    seg = np.repeat(np.arange(s), lists.shape[0])
    items = np.tile(lists, (s, 1))
    cond, marg = world.logging_probs(seg, items)
    joint = cond.prod(axis=1)
    g = items.shape[0]
    scale = g * joint / s
    ey = world.expected_clicks(seg, items)
    logs = pd.DataFrame({
        "request_id": np.repeat(np.arange(g), ell), "segment": np.repeat(seg, ell),
        "position": np.tile(np.arange(ell), g), "item_id": items.ravel(),
        "click": (ey * scale[:, None]).ravel(), "propensity": cond.ravel(), "propensity_marginal": marg.ravel(),
    })
    target = pd.DataFrame({"request_id": np.repeat(np.arange(g), a), "item_id": np.tile(np.arange(a), g),
                           "score": world.target_scores[seg].ravel()})
    q0 = np.random.default_rng(0).random((s, a, ell))  # any fixed outcome model: DR's cancellation does not care

    def q_fixed(frame: pd.DataFrame) -> np.ndarray:
        r = frame["request_id"].to_numpy()
        return scale[r] * q0[seg[r], frame["item_id"].to_numpy(), frame["position"].to_numpy()]

    assert abs(joint.sum() - s) < 1e-9  # every list enumerated
    return logs, target, q_fixed


def expected_values(world) -> dict[str, float]:
    logs, target, q_fixed = expectation_log(world)
    res = evaluate(logs, target, schema=SCHEMA, target_kind="plackett-luce", estimators=ESTS,
                   propensity_marginal="propensity_marginal", value_per="list", outcome_model=q_fixed, cluster=None)
    return {e.estimator: e.estimate for e in res.estimates}


@pytest.mark.parametrize("logging, reward, unbiased, biased", [
    ("plackett-luce", "cascade", ["sips", "rips", "cascade_dr"], ["iips", "pi"]),
    ("plackett-luce", "independent", ["sips", "iips", "rips", "cascade_dr"], ["pi"]),
    ("independent", "independent", ["sips", "iips", "rips", "cascade_dr", "pi"], []),
    ("independent", "cascade", ["sips", "rips", "cascade_dr"], ["iips", "pi"]),
])
def test_exact_expectation_equals_the_truth_where_the_assumptions_hold(logging, reward, unbiased, biased):
    world = make_world(4, 3, 2, logging=logging, reward=reward, satisfaction=0.9, world_seed=3)
    truth = true_value(world)
    assert truth[2] == "exact"
    exp = expected_values(world)
    for name in unbiased:
        assert exp[name] == pytest.approx(truth[0], abs=1e-10), name
    for name in biased:  # the model the estimator assumes does not hold here
        assert abs(exp[name] - truth[0]) > 1e-3, name


def test_pseudoinverse_weights_equal_the_brute_force_pseudoinverse():
    """w_PI(s) = q_pi^T Gamma_mu^+ 1_s (Swaminathan et al. 2017) for a product logging policy, by enumeration."""
    world = make_world(3, 2, 1, logging="independent", reward="independent", world_seed=4)
    a, ell = world.n_items, world.list_length
    lists = np.array(list(product(range(a), repeat=ell)))
    seg = np.zeros(lists.shape[0], dtype=np.int64)
    cond, marg = world.logging_probs(seg, lists)
    mu = cond.prod(axis=1)
    onehot = np.zeros((lists.shape[0], ell * a))
    onehot[np.arange(lists.shape[0])[:, None], np.arange(ell) * a + lists] = 1.0
    gamma = (onehot * mu[:, None]).T @ onehot
    # target marginals of the Plackett-Luce target, by enumeration
    e = np.exp(world.target_scores[0])
    q_pi = np.zeros(ell * a)
    for lst in permutations(range(a), ell):
        p, rem = 1.0, e.sum()
        for it in lst:
            p *= e[it] / rem
            rem -= e[it]
        for k, it in enumerate(lst):
            q_pi[k * a + it] += p
    brute = onehot @ np.linalg.pinv(gamma) @ q_pi
    target = pd.DataFrame({"item_id": np.arange(a), "score": world.target_scores[0]})
    for i, lst in enumerate(lists):
        log = pd.DataFrame({"request_id": 0, "position": np.arange(ell), "item_id": lst, "click": [1.0, 0.0],
                            "propensity": cond[i], "propensity_marginal": marg[i]})
        res = evaluate(log, target, schema=SCHEMA, target_kind="plackett-luce", estimators=["pi"],
                       propensity_marginal="propensity_marginal", value_per="list", cluster=None)
        assert res.get("pi").estimate == pytest.approx(brute[i], abs=1e-10), lst


@pytest.mark.parametrize("logging, reward", [("plackett-luce", "cascade"), ("independent", "independent")])
def test_simulated_logs_average_to_the_truth(logging, reward):
    world = make_world(6, 3, 3, logging=logging, reward=reward, world_seed=1)
    truth = true_value(world)
    names = ["sips", "snsips", "iips", "sniips", "rips", "snrips", "cascade_dr", "pi", "snpi"]
    ok = {"sips", "snsips", "rips", "snrips", "cascade_dr"} | ({"iips", "sniips", "pi", "snpi"}
                                                             if logging == "independent" else set())
    vals = {k: [] for k in names}
    for rep in range(150):
        sb = make_slate_logs(800, world=world, truth=truth, seed=1000 + rep)
        res = evaluate(sb.logs, sb.target_scores, schema=SCHEMA, target_kind="plackett-luce", estimators=names,
                       propensity_marginal="propensity_marginal", value_per="list")
        for e in res.estimates:
            vals[e.estimator].append(e.estimate)
    for k in ok:
        v = np.array(vals[k])
        mc_se = v.std(ddof=1) / np.sqrt(v.size)
        # self-normalised ones carry an O(1/n) bias, far below the Monte Carlo error here
        assert abs(v.mean() - truth[0]) < 4 * mc_se, (k, v.mean(), truth[0], mc_se)
