"""Position-bias estimation recovers known examination curves."""

import numpy as np
import pytest

from causalrec.debias import examination_from_randomized, position_bias_from_curve, regression_em
from causalrec.errors import InputError


@pytest.fixture(scope="module")
def randomized_sim():
    from causalrec.simulate import simulate_logs

    sim = simulate_logs(16_000, seed=7, n_positions=5, random_share=1.0, n_users=300, n_items=100)
    shown = sim.logs[sim.logs.treatment == 1]
    return shown, np.asarray(sim.truth["examination"], dtype=float)


def test_randomized_ctr_ratio_recovers_simulator_curve(randomized_sim):
    shown, truth = randomized_sim
    pb = examination_from_randomized(shown.click.to_numpy(), shown.position.to_numpy(), n_positions=5,
                                     ci_level=0.99)
    rel = truth / truth[0]
    assert pb.examination[0] == 1.0
    # the simulator's curve (1 + k)^-1 lies inside every 99% interval, and the estimates are close
    assert np.all(pb.ci_low <= rel + 1e-12) and np.all(rel <= pb.ci_high + 1e-12), (pb.summary(), rel)
    assert np.max(np.abs(pb.examination - rel)) < 0.08
    # the curve is decreasing as in the truth
    assert np.all(np.diff(pb.examination) < 0)


def test_bootstrap_and_delta_intervals_agree(randomized_sim):
    shown, _ = randomized_sim
    c, p = shown.click.to_numpy(), shown.position.to_numpy()
    delta = examination_from_randomized(c, p)
    boot = examination_from_randomized(c, p, bootstrap=300, seed=1)
    np.testing.assert_allclose(boot.examination, delta.examination)
    np.testing.assert_allclose(boot.se[1:], delta.se[1:], rtol=0.3)


def _biased_logs(seed=0, n=40_000, K=5, n_items=40):
    """A logging ranker places relevant items higher: naive CTR ratios overstate position bias."""
    rng = np.random.default_rng(seed)
    theta = 1.0 / (np.arange(K) + 1.0) ** 0.8
    gamma = rng.beta(1.0, 3.0, size=n_items)
    items = rng.integers(0, n_items, n)
    score = gamma[items] + rng.normal(0, 0.25, n)
    pos = np.minimum((K * (1 - np.argsort(np.argsort(score)) / n)).astype(int), K - 1)
    clicks = rng.binomial(1, theta[pos] * gamma[items])
    return clicks, pos, items, theta / theta[0]


def test_regression_em_recovers_known_curve_without_randomisation():
    clicks, pos, items, rel = _biased_logs()
    pb = regression_em(clicks, pos, groups=items, bootstrap=8, seed=0)
    assert np.max(np.abs(pb.examination - rel)) < 0.05, (pb.summary(), rel)
    naive = np.bincount(pos, weights=clicks) / np.bincount(pos)
    naive = naive / naive[0]
    # the naive CTR ratio is far off (relevance confounds position); EM removes most of it
    assert np.max(np.abs(naive - rel)) > 3 * np.max(np.abs(pb.examination - rel))
    assert np.all(pb.ci_low <= pb.examination) and np.all(pb.examination <= pb.ci_high)
    assert np.all(pb.se[1:] > 0)


def test_regression_em_with_features_matches_grouped_em():
    """One-hot features make the regression M-step the per-group mean: both EMs must agree."""
    clicks, pos, items, _ = _biased_logs(seed=1, n=8_000, n_items=12)
    grouped = regression_em(clicks, pos, groups=items, bootstrap=0, max_iter=150, tol=1e-6)
    regressed = regression_em(clicks, pos, features=np.eye(12)[items], bootstrap=0, max_iter=150, tol=1e-6)
    assert regressed.extra["relevance_model"] == "logistic_regression"
    np.testing.assert_allclose(regressed.examination, grouped.examination, atol=0.01)


def test_bad_inputs():
    with pytest.raises(InputError, match="outside"):
        examination_from_randomized(np.array([0, 1, 1]), np.array([0, 1, 3]), n_positions=3)
    with pytest.raises(InputError, match="no rows at position"):
        examination_from_randomized(np.array([0, 1, 1]), np.array([0, 0, 2]), n_positions=3)
    with pytest.raises(InputError, match="exactly one"):
        regression_em(np.array([0, 1]), np.array([0, 1]))
    with pytest.raises(InputError, match="0/1"):
        regression_em(np.array([0, 2]), np.array([0, 1]), groups=np.array([1, 1]))
    with pytest.raises(InputError):
        position_bias_from_curve([1.0, 0.0])
    pb = position_bias_from_curve([2.0, 1.0])
    with pytest.raises(InputError, match="no examination estimate"):
        pb.at(np.array([0, 2]))


def test_regression_em_that_stops_at_max_iter_is_flagged_not_converged():
    from causalrec.debias.position import examination_verdict

    clicks, pos, items, _ = _biased_logs()
    done = regression_em(clicks, pos, groups=items, bootstrap=0, seed=0)
    assert done.extra["converged"] is True and done.extra["iterations"] < done.extra["max_iter"]
    assert not any(i.startswith("not converged") for i in examination_verdict(done, half_width=np.zeros(5)).extra["issues"])
    cut = regression_em(clicks, pos, groups=items, bootstrap=0, seed=0, max_iter=3)
    assert cut.extra["converged"] is False and cut.extra["iterations"] == 3
    issues = examination_verdict(cut, half_width=np.zeros(5)).extra["issues"]
    assert cut.extra["trusted"] is False
    assert any(i.startswith("not converged") and "max_iter=3" in i for i in issues), issues
