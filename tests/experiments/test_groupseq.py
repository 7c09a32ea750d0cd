"""Group-sequential boundaries: exact against independent computations, and the stage-wise p-value."""

import numpy as np
import pytest
from scipy import stats

import causalrec.experiments.groupseq as gs
from causalrec.errors import InputError
from causalrec.experiments import boundaries, spending
from causalrec.experiments.groupseq import crossing_probabilities

T5 = np.arange(1, 6) / 5


def test_one_look_is_the_fixed_test():
    for kind in ("obf", "pocock", "power"):
        d = boundaries([1.0], 0.05, kind)
        assert d.z[0] == pytest.approx(stats.norm.ppf(0.975), abs=1e-12)
        assert boundaries([1.0], 0.05, kind, sides=1).z[0] == pytest.approx(stats.norm.ppf(0.95), abs=1e-12)


def test_spending_functions_end_at_alpha_and_increase():
    t = np.linspace(0.01, 1, 50)
    for kind in gs.SPENDING:
        a = spending(t, 0.025, kind)
        assert a[-1] == pytest.approx(0.025, abs=1e-15) and np.all(np.diff(a) > 0)
    # O'Brien-Fleming type spends almost nothing early, Pocock type a lot
    assert spending([0.2], 0.025, "obf")[0] < 1e-6 < spending([0.2], 0.025, "pocock")[0]


def test_two_looks_match_the_bivariate_normal():
    """P(|Z1| >= b1) and P(|Z1| < b1, |Z2| >= b2) from scipy's bivariate normal CDF."""
    t = np.array([0.4, 1.0])
    for kind in ("obf", "pocock"):
        d = boundaries(t, 0.05, kind)
        b1, b2 = d.z
        r = np.sqrt(t[0] / t[1])
        mvn = stats.multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]])
        inside = (mvn.cdf([b1, b2]) - mvn.cdf([-b1, b2]) - mvn.cdf([b1, -b2]) + mvn.cdf([-b1, -b2]))
        first = 2 * stats.norm.sf(b1)
        target = spending(t, 0.025, kind) * 2
        assert first == pytest.approx(target[0], abs=1e-12)
        assert 1 - first - inside == pytest.approx(target[1] - target[0], abs=1e-7)  # scipy's cdf is ~1e-8 accurate


def test_published_five_look_boundaries():
    """Lan-DeMets O'Brien-Fleming type, 5 equally spaced looks, two-sided 0.05 (gsDesign sfLDOF: 4.88 3.36 2.68
    2.29 2.03; Jennison & Turnbull's tables to two decimals)."""
    d = boundaries(T5, 0.05, "obf")
    np.testing.assert_allclose(d.z, [4.877, 3.357, 2.680, 2.290, 2.031], atol=5e-3)
    assert d.spent.sum() == pytest.approx(0.05, abs=1e-13)


def test_monte_carlo_crossing_rates():
    rng = np.random.default_rng(3)
    t = np.array([0.15, 0.35, 0.5, 0.8, 1.0])
    inc = rng.normal(size=(400_000, len(t))) * np.sqrt(np.diff(np.r_[0, t]))
    z = np.cumsum(inc, axis=1) / np.sqrt(t)
    for kind in ("obf", "pocock"):
        d = boundaries(t, 0.05, kind)
        crossed = np.abs(z) >= d.z
        first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
        rates = np.array([(first == k).mean() for k in range(len(t))])
        se = np.sqrt(d.spent * (1 - d.spent) / len(z))
        assert np.all(np.abs(rates - d.spent) <= 4 * se + 1e-6), (kind, rates, d.spent)
        assert crossed.any(axis=1).mean() == pytest.approx(0.05, abs=0.0015)


def test_quadrature_is_converged(monkeypatch):
    t = np.cumsum(np.r_[0.05, np.random.default_rng(0).uniform(0.02, 0.09, 14)])
    t = t / t[-1]
    ref = boundaries(t, 0.05, "pocock").z
    monkeypatch.setattr(gs, "_GL_NODES", np.polynomial.legendre.leggauss(20)[0])
    monkeypatch.setattr(gs, "_GL_WEIGHTS", np.polynomial.legendre.leggauss(20)[1])
    orig = gs._grid
    monkeypatch.setattr(gs, "_grid", lambda lo, hi, h: orig(lo, hi, h / 2))
    fine = boundaries(t, 0.05, "pocock").z
    assert np.abs(fine - ref).max() < 1e-11


def test_crossing_probabilities_of_own_boundaries_are_the_spending():
    t = np.arange(1, 21) / 20
    d = boundaries(t, 0.05, "obf")
    np.testing.assert_allclose(crossing_probabilities(t, d.z), d.spent, atol=1e-13)
    d1 = boundaries(t, 0.025, "power", 2.0, sides=1)
    target = np.diff(np.r_[0, spending(t, 0.025, "power", 2.0)])
    np.testing.assert_allclose(crossing_probabilities(t, d1.z, sides=1), target, atol=1e-13)


def test_stagewise_p_value():
    d = boundaries(T5, 0.05, "obf")
    assert d.stagewise_p(0, 2.0) == pytest.approx(2 * stats.norm.sf(2.0))
    # exactly on the boundary at look k, p equals the alpha spent up to and including k
    for k in range(1, 5):
        assert d.stagewise_p(k, d.z[k]) == pytest.approx(d.spent[: k + 1].sum(), abs=1e-12)
    # more extreme statistics give smaller p; reaching the end without crossing gives p > alpha
    assert d.stagewise_p(4, 3.0) < d.stagewise_p(4, 2.5)
    assert d.stagewise_p(4, 1.5) > 0.05


def test_truncation_carries_unspent_alpha_forward():
    d = boundaries([0.001, 0.5, 1.0], 0.05, "obf")
    assert d.z[0] == 8.0 and d.spent.sum() == pytest.approx(0.05, abs=1e-12)


def test_bad_information_is_an_input_error():
    with pytest.raises(InputError, match="out of order"):
        boundaries([0.5, 0.4, 1.0])
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        boundaries([0.5, 1.2])
    with pytest.raises(InputError, match="unknown spending"):
        boundaries([1.0], kind="haybittle")
