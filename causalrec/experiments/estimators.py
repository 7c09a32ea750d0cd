"""Two-arm comparison of means, proportions and ratios, from arm sufficient statistics.

Every comparison takes the :class:`~causalrec.experiments.stats.SuffStats` of two arms
(counts, sums and sums of products of unit-level variables), so it runs the same on
row-level logs (reduced to those sums first), on a warehouse's ``GROUP BY`` output and
on Spark partial aggregates. Units are the randomisation units, independent by design.
The row-level functions :func:`welch`, :func:`proportion` and :func:`ratio` build the
sums and call the same code.

**Mean metrics (Welch).** For arms ``c`` and ``t`` with ``n_k`` units, means
``ybar_k`` and sample variances ``s_k^2`` (``n - 1`` denominator)::

    diff = ybar_t - ybar_c,   se = sqrt(s_t^2 / n_t + s_c^2 / n_c)
    df   = se^4 / ((s_t^2/n_t)^2 / (n_t - 1) + (s_c^2/n_c)^2 / (n_c - 1))

with a Student-t interval and p-value on ``df`` degrees of freedom (Welch 1947):
statsmodels' ``ttest_ind(usevar="unequal")`` and gbstats' frequentist t-test. Written
out because the same arm sums feed the lift, the ratio and the CUPED estimators, and
statsmodels' weightstats import alone costs half a second of ``causalrec ab``'s start-up.

**Proportions (Wald).** For a 0/1 metric (``sum v^2 = sum v``, see
:meth:`SuffStats.is_binary`), ``p_k = ybar_k`` and
``se = sqrt(p_t (1 - p_t) / n_t + p_c (1 - p_c) / n_c)`` with a normal interval:
statsmodels' ``test_proportions_2indep(method="wald")`` and spotify-confidence's z-test.

**Ratio metrics (delta method).** ``R_k = sum(num) / sum(den)`` over the units of arm
``k``; its linearisation is ``psi_i = (num_i - R_k den_i) / dbar_k``, so
``Var(R_k) ~= Var(psi) / n_k = (s_N^2 - 2 R_k s_ND + R_k^2 s_D^2) / (n_k dbar_k^2)``
(Deng, Knoblich & Lu 2018). A mean is the case ``den = 1``. In general every metric
value here is a smooth function of the arm's mean vector with gradient ``g``, and its
variance is ``g^T S g / n`` (``S`` the arm's covariance matrix): :func:`value_grad`.

**Relative lift.** ``lift = m_t / m_c - 1``. *Delta method*:
``Var(lift) ~= V_t / m_c^2 + m_t^2 V_c / m_c^4 - 2 m_t C_ct / m_c^3`` (``C_ct`` is zero
for independent arms, non-zero only for estimators sharing a pooled quantity, e.g. Lin's
adjustment). *Fieller* (1954): the set of ``rho`` with
``(m_t - rho m_c)^2 <= z^2 (V_t - 2 rho C_ct + rho^2 V_c)``, an interval when the control
mean is significantly non-zero (``m_c^2 > z^2 V_c``); it is exact for normal arm means
and, unlike the delta interval, asymmetric, which matters when ``V_c / m_c^2`` is not
small (small arms, rare events).

Assumptions: units independent (randomised and analysed at the unit), arms
independent, each arm's mean approximately normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri, stdtr, stdtrit

from causalrec.experiments.stats import SuffStats

LIFT_CI_METHODS = ("delta", "fieller")


@dataclass(frozen=True)
class Metric:
    """A metric on the unit frame: a mean of ``num`` or a ratio ``num / den`` of arm means."""

    name: str
    kind: str  # "mean" | "ratio"
    num: str
    den: str | None = None

    @property
    def variables(self) -> list[str]:
        return [self.num] + ([self.den] if self.den else [])


@dataclass(frozen=True)
class Comparison:
    """One treatment-vs-control comparison of a metric.

    ``m_c``/``m_t`` are the arms' (possibly adjusted) metric values, ``v_c``/``v_t`` the
    variances of those values and ``cov_ct`` their covariance (0 for independent arms);
    ``df`` is ``inf`` for normal-theory estimators.
    """

    estimator: str
    m_c: float
    m_t: float
    v_c: float
    v_t: float
    n_c: int
    n_t: int
    df: float = float("inf")
    cov_ct: float = 0.0

    @property
    def diff(self) -> float:
        return self.m_t - self.m_c

    @property
    def var(self) -> float:
        return float(self.v_c + self.v_t - 2.0 * self.cov_ct)

    @property
    def se(self) -> float:
        return float(np.sqrt(self.var)) if self.var >= 0 else float("nan")

    def critical(self, ci_level: float) -> float:
        q = 0.5 + ci_level / 2.0
        return float(ndtri(q) if not np.isfinite(self.df) else stdtrit(self.df, q))

    def diff_test(self, ci_level: float = 0.95) -> tuple[float, float, float, float, float]:
        """``(diff, se, ci_low, ci_high, p_value)`` for the difference."""
        d, se = self.diff, self.se
        if not np.isfinite(se) or se <= 0:
            return d, se, float("nan"), float("nan"), float("nan")
        crit = self.critical(ci_level)
        stat = abs(d / se)
        p = float(2.0 * stdtr(self.df, -stat)) if np.isfinite(self.df) else float(2.0 * ndtr(-stat))
        return d, se, d - crit * se, d + crit * se, p

    def lift_var(self) -> float:
        m_c, m_t = self.m_c, self.m_t
        return float(self.v_t / m_c**2 + m_t**2 * self.v_c / m_c**4 - 2.0 * m_t * self.cov_ct / m_c**3)

    def lift_test(self, ci_level: float = 0.95, method: str = "delta") -> tuple[float, float, float, float, float]:
        """``(lift, se, ci_low, ci_high, p_value)`` for ``m_t / m_c - 1``; the interval by ``method``
        (``"delta"``: normal on the delta-method SE; ``"fieller"``: Fieller's interval)."""
        nan = float("nan")
        if self.m_c == 0:
            return nan, nan, nan, nan, nan
        lift = self.m_t / self.m_c - 1.0
        var = self.lift_var()
        se = float(np.sqrt(var)) if var >= 0 else nan
        p = float(2.0 * ndtr(-abs(lift) / se)) if se > 0 else nan
        if method == "fieller":
            lo, hi = self.fieller(ci_level)
            return lift, se, lo, hi, p
        z = float(ndtri(0.5 + ci_level / 2.0))
        return lift, se, lift - z * se, lift + z * se, p

    def fieller(self, ci_level: float = 0.95) -> tuple[float, float]:
        """Fieller's interval for ``m_t / m_c - 1``; ``(nan, nan)`` when it is unbounded."""
        z2 = float(ndtri(0.5 + ci_level / 2.0)) ** 2
        a = self.m_c**2 - z2 * self.v_c
        b = self.m_t * self.m_c - z2 * self.cov_ct
        c = self.m_t**2 - z2 * self.v_t
        disc = b * b - a * c
        if a <= 0 or disc < 0:
            return float("nan"), float("nan")
        root = math.sqrt(disc)
        return (b - root) / a - 1.0, (b + root) / a - 1.0


# -- from sufficient statistics ------------------------------------------------------

def value_grad(st: SuffStats, m: Metric) -> tuple[float, np.ndarray]:
    """The metric's value on one group and its gradient with respect to the group's mean vector."""
    g = np.zeros(len(st.names))
    i = st.index(m.num)
    if m.kind == "mean":
        g[i] = 1.0
        return float(st.sums[i] / st.n), g
    j = st.index(m.den)
    dbar = st.sums[j] / st.n
    r = float(st.sums[i] / st.sums[j])
    g[i], g[j] = 1.0 / dbar, -r / dbar
    return r, g


def welch_df(v_c: float, v_t: float, n_c: float, n_t: float) -> float:
    denom = v_t**2 / (n_t - 1) + v_c**2 / (n_c - 1)
    return float((v_c + v_t) ** 2 / denom) if denom > 0 else float("inf")


def compare_unadjusted(st_c: SuffStats, st_t: SuffStats, m: Metric) -> Comparison:
    """Welch (means), Wald (0/1 means) or delta method (ratios) from the two arms' sums."""
    if m.kind == "ratio":
        if st_c.sums[st_c.index(m.den)] == 0 or st_t.sums[st_t.index(m.den)] == 0:
            from causalrec.errors import InputError

            raise InputError(f"ratio '{m.name}': the denominator sums to 0 in an arm", column=m.den,
                             fix="choose a denominator that is positive for the units of every arm")
        (r_c, g_c), (r_t, g_t) = value_grad(st_c, m), value_grad(st_t, m)
        v_c = st_c.quad(g_c) / (st_c.n - 1) / st_c.n
        v_t = st_t.quad(g_t) / (st_t.n - 1) / st_t.n
        return Comparison("delta", r_c, r_t, v_c, v_t, int(st_c.n), int(st_t.n))
    if st_c.is_binary(m.num) and st_t.is_binary(m.num):
        p_c, p_t = value_grad(st_c, m)[0], value_grad(st_t, m)[0]
        return Comparison("proportion", p_c, p_t, p_c * (1 - p_c) / st_c.n, p_t * (1 - p_t) / st_t.n,
                          int(st_c.n), int(st_t.n))
    return welch_from_stats(st_c, st_t, m)


def welch_from_stats(st_c: SuffStats, st_t: SuffStats, m: Metric, estimator: str = "welch") -> Comparison:
    (m_c, g_c), (m_t, g_t) = value_grad(st_c, m), value_grad(st_t, m)
    v_c = st_c.quad(g_c) / (st_c.n - 1) / st_c.n if st_c.n > 1 else float("nan")
    v_t = st_t.quad(g_t) / (st_t.n - 1) / st_t.n if st_t.n > 1 else float("nan")
    return Comparison(estimator, m_c, m_t, v_c, v_t, int(st_c.n), int(st_t.n), welch_df(v_c, v_t, st_c.n, st_t.n))


# -- row-level entry points (same code) ---------------------------------------------

_Y = Metric("y", "mean", "y")
_R = Metric("num/den", "ratio", "num", "den")


def welch(y_c: np.ndarray, y_t: np.ndarray, estimator: str = "welch") -> Comparison:
    """Welch's unequal-variance comparison of two arms' unit-level means."""
    return welch_from_stats(SuffStats.of_arrays(y=y_c), SuffStats.of_arrays(y=y_t), _Y, estimator)


def proportion(y_c: np.ndarray, y_t: np.ndarray) -> Comparison:
    """Wald comparison of two proportions (unpooled variance, ``n`` denominator)."""
    n_c, n_t = y_c.shape[0], y_t.shape[0]
    p_c, p_t = float(np.mean(y_c)), float(np.mean(y_t))
    return Comparison("proportion", p_c, p_t, p_c * (1 - p_c) / n_c, p_t * (1 - p_t) / n_t, n_c, n_t)


def ratio(num_c: np.ndarray, den_c: np.ndarray, num_t: np.ndarray, den_t: np.ndarray) -> Comparison:
    """Delta-method comparison of two ratios of unit-level sums."""
    return compare_unadjusted(SuffStats.of_arrays(num=num_c, den=den_c), SuffStats.of_arrays(num=num_t, den=den_t), _R)


def ratio_linearize(num: np.ndarray, den: np.ndarray) -> tuple[float, np.ndarray]:
    """``(R, psi)``: the arm's ratio of sums and each unit's influence value."""
    dbar = float(den.mean())
    r = float(num.sum() / den.sum())
    return r, (num - r * den) / dbar


def arm_moments(values: np.ndarray) -> tuple[float, float, int]:
    """``(mean, variance of the mean (ddof=1), n)`` of one arm's unit values."""
    n = values.shape[0]
    mean = float(values.mean())
    var = float(values.var(ddof=1)) / n if n > 1 else float("nan")
    return mean, var, n


def is_binary(values: np.ndarray) -> bool:
    """True when every value is 0 or 1 (a proportion metric)."""
    return bool(np.isin(values, (0.0, 1.0)).all())
