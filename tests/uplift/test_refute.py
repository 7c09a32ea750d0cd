"""Refutation suite through dowhy (econml instance) and econml's sensitivity."""

import numpy as np
import pytest

from causalrec.errors import InputError
from causalrec.uplift.refute import refute


def _data(effect, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, 4))
    e = 1 / (1 + np.exp(-W[:, 0]))
    t = (rng.random(n) < e).astype(int)
    y = W[:, 0] + effect * t + rng.normal(size=n)
    return y, t, W


def test_suite_passes_on_a_clean_design():
    y, t, W = _data(0.5)
    s = refute(y, t, W, num_simulations=2, cv=2)
    names = [r.test for r in s.refutations]
    assert names == ["placebo", "random_common_cause", "data_subset", "unobserved_confounder"]
    assert abs(s.estimate - 0.5) < 4 * s.se
    assert s.all_passed, s.summary()
    placebo = s.refutations[0]
    assert abs(placebo.new_effect) < 3 * s.se
    assert 0 < s.sensitivity["robustness_value"] < 1
    frame = s.to_frame()
    assert set(frame["reading"]) == {"pass"} and frame["rule"].str.len().min() > 5


def test_sensitivity_fails_for_a_fragile_effect():
    y, t, W = _data(0.03, seed=1)
    s = refute(y, t, W, tests=("sensitivity",), num_simulations=1, cv=2)
    (r,) = s.refutations
    assert r.passed is False and "robustness value" in r.detail


def test_options_checked():
    y, t, W = _data(0.5, n=200)
    with pytest.raises(InputError):
        refute(y, t, W, tests=("bootstrap",))
    with pytest.raises(InputError):
        refute(y, t, W, num_simulations=0)
    with pytest.raises(InputError):
        refute(y, t[:-1], W)
