"""Overlap, weights / ESS and covariate balance."""

import numpy as np
import pytest

from causalrec.diagnostics import (
    covariate_balance,
    effective_sample_size,
    handle_overlap,
    overlap,
    weight_diagnostics,
)
from causalrec.diagnostics.weights import ipw_weights
from causalrec.errors import InputError


def _confounded(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    e = 1 / (1 + np.exp(-0.8 * X[:, 0]))
    t = (rng.random(n) < e).astype(int)
    return X, e, t


def test_ess_known_values():
    assert effective_sample_size(np.ones(10)) == pytest.approx(10)
    # one weight of 9 among nine weights of 1: (18)^2 / (81 + 9) = 3.6
    assert effective_sample_size(np.r_[9.0, np.ones(9)]) == pytest.approx(3.6)


def test_weights_and_diagnostics():
    X, e, t = _confounded()
    w = ipw_weights(t, e, "ate")
    np.testing.assert_allclose(w[t == 1], 1 / e[t == 1])
    watt = ipw_weights(t, e, "att")
    np.testing.assert_allclose(watt[t == 1], 1.0)
    np.testing.assert_allclose(watt[t == 0], e[t == 0] / (1 - e[t == 0]))
    d = weight_diagnostics(t, e)
    assert 0 < d.ess_treated < d.n_treated and 0 < d.ess_control < d.n_control
    assert d.max_weight == pytest.approx(w.max())
    with pytest.raises(InputError):
        ipw_weights(t, e, "atc")


def test_overlap_summary():
    X, e, t = _confounded()
    ov = overlap(t, e, clip=0.05)
    assert ov.n_treated == t.sum() and ov.n_control == (1 - t).sum()
    assert ov.share_below == pytest.approx(np.mean(e < 0.05))
    assert ov.share_above == pytest.approx(np.mean(e > 0.95))
    # treated propensities sit higher than control ones under this design
    assert ov.quantiles.loc["treated", "q50"] > ov.quantiles.loc["control", "q50"]
    width = np.diff(ov.hist_edges)
    assert np.sum(ov.hist_treated * width) == pytest.approx(1.0)
    assert "propensity_quantiles" in ov.to_dict()
    with pytest.raises(InputError):
        overlap(t, e[:-1])
    with pytest.raises(InputError):
        overlap(t, np.where(np.arange(e.size) == 0, np.nan, e))


def test_handle_overlap_modes():
    e = np.array([0.001, 0.2, 0.5, 0.999])
    c = handle_overlap(e, "clip", 0.01)
    np.testing.assert_allclose(c.e_used, [0.01, 0.2, 0.5, 0.99])
    assert c.keep.all() and c.share_clipped == 0.5 and "population" in c.estimand_note
    tr = handle_overlap(e, "trim", 0.01)
    assert tr.keep.tolist() == [False, True, True, False] and tr.share_trimmed == 0.5
    assert "overlap population" in tr.estimand_note
    assert e[0] == 0.001  # input not mutated
    with pytest.raises(InputError):
        handle_overlap(e, "winsor")


def test_balance_improves_after_weighting():
    X, e, t = _confounded()
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(X.shape[0], 16)) + 2 * X[:, :1]  # confounder shows up in PC1
    b = covariate_balance(t, e, X, names=["a", "b", "c"], embeddings={"user_text": emb}, n_components=3)
    tab = b.table.set_index("covariate")
    assert abs(tab.loc["a", "smd_before"]) > 0.5
    assert abs(tab.loc["a", "smd_after"]) < 0.1
    assert abs(tab.loc["user_text PC1", "smd_before"]) > 0.5
    assert abs(tab.loc["user_text PC1", "smd_after"]) < 0.1
    assert b.max_abs_after < b.max_abs_before
    assert list(tab["kind"]).count("embedding PC") == 3


def test_balance_wrong_weights_stay_imbalanced():
    X, e, t = _confounded()
    b = covariate_balance(t, np.full_like(e, t.mean()), X)  # constant propensity: no correction
    assert b.n_imbalanced_after >= 1
    with pytest.raises(InputError):
        covariate_balance(np.ones_like(t), e, X)
