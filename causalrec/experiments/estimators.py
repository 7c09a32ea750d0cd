"""Two-arm comparison of means, proportions and ratios, on unit-level values.

Every comparison here takes one array per arm, already aggregated to the
randomisation unit (one value per user), so units are independent by design.

**Mean metrics (Welch).** For arms ``c`` and ``t`` with ``n_k`` units, means
``ybar_k`` and sample variances ``s_k^2`` (``n - 1`` denominator)::

    diff = ybar_t - ybar_c,   se = sqrt(s_t^2 / n_t + s_c^2 / n_c)
    df   = se^4 / ((s_t^2/n_t)^2 / (n_t - 1) + (s_c^2/n_c)^2 / (n_c - 1))

with a Student-t interval and p-value on ``df`` degrees of freedom (Welch
1947). This is exactly statsmodels' ``ttest_ind(usevar="unequal")`` and
``CompareMeans.tconfint_diff(usevar="unequal")``; it is written out rather
than called because the same arm moments feed the lift, the ratio and the
CUPED estimators below, and statsmodels' weightstats import alone costs
about half a second of ``causalrec ab``'s start-up.

**Proportions (Wald).** For a 0/1 metric, ``p_k = ybar_k`` and
``se = sqrt(p_t (1 - p_t) / n_t + p_c (1 - p_c) / n_c)`` with a normal
interval and p-value: statsmodels' ``test_proportions_2indep`` and
``confint_proportions_2indep`` with ``method="wald"``.

**Ratio metrics (delta method).** A ratio such as clicks per session is
``R_k = sum(num) / sum(den)`` over the units of arm ``k``. Its linearisation
(influence value) per unit is ``psi_i = (num_i - R_k den_i) / dbar_k``, so
``Var(R_k) ~= Var(psi) / n_k`` (Deng, Knoblich & Lu 2018, "Applying the delta
method in metric analytics"). A mean metric is the special case ``den = 1``,
``psi_i = y_i - ybar``.

**Relative lift (delta method).** ``lift = m_t / m_c - 1`` with independent
arms has ``Var(lift) ~= V_t / m_c^2 + m_t^2 V_c / m_c^4``, where ``V_k`` is the
variance of arm ``k``'s mean.

Assumptions: units are independent (randomised at the unit, analysed at the
unit), arms are independent, and ``n`` is large enough for the normal / t
approximation of the mean of each arm's influence values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Comparison:
    """One treatment-vs-control comparison of a metric.

    ``m_c``/``m_t`` are the arms' (possibly adjusted) metric values, ``v_c``/
    ``v_t`` the variances of those means; ``df`` is ``inf`` for normal-theory
    estimators.
    """

    estimator: str
    m_c: float
    m_t: float
    v_c: float
    v_t: float
    n_c: int
    n_t: int
    df: float = float("inf")

    @property
    def diff(self) -> float:
        return self.m_t - self.m_c

    @property
    def se(self) -> float:
        return float(np.sqrt(self.v_c + self.v_t))

    def critical(self, ci_level: float) -> float:
        q = 0.5 + ci_level / 2.0
        return float(stats.norm.ppf(q) if not np.isfinite(self.df) else stats.t.ppf(q, self.df))

    def diff_test(self, ci_level: float = 0.95) -> tuple[float, float, float, float, float]:
        """``(diff, se, ci_low, ci_high, p_value)`` for the difference."""
        d, se = self.diff, self.se
        crit = self.critical(ci_level)
        if not np.isfinite(se) or se <= 0:
            return d, se, float("nan"), float("nan"), float("nan")
        stat = d / se
        if np.isfinite(self.df):
            p = float(2.0 * stats.t.sf(abs(stat), self.df))
        else:
            p = float(2.0 * stats.norm.sf(abs(stat)))
        return d, se, d - crit * se, d + crit * se, p

    def lift_test(self, ci_level: float = 0.95) -> tuple[float, float, float, float, float]:
        """``(lift, se, ci_low, ci_high, p_value)`` for ``m_t / m_c - 1`` (delta method, normal)."""
        if self.m_c == 0:
            nan = float("nan")
            return nan, nan, nan, nan, nan
        lift = self.m_t / self.m_c - 1.0
        var = self.v_t / self.m_c**2 + self.m_t**2 * self.v_c / self.m_c**4
        se = float(np.sqrt(var))
        z = float(stats.norm.ppf(0.5 + ci_level / 2.0))
        p = float(2.0 * stats.norm.sf(abs(lift) / se)) if se > 0 else float("nan")
        return lift, se, lift - z * se, lift + z * se, p


def arm_moments(values: np.ndarray) -> tuple[float, float, int]:
    """``(mean, variance of the mean (ddof=1), n)`` of one arm's unit values."""
    n = values.shape[0]
    mean = float(values.mean())
    var = float(values.var(ddof=1)) / n if n > 1 else float("nan")
    return mean, var, n


def welch(y_c: np.ndarray, y_t: np.ndarray, estimator: str = "welch") -> Comparison:
    """Welch's unequal-variance comparison of two arms' unit-level means."""
    m_c, v_c, n_c = arm_moments(y_c)
    m_t, v_t, n_t = arm_moments(y_t)
    denom = v_t**2 / (n_t - 1) + v_c**2 / (n_c - 1)
    df = (v_c + v_t) ** 2 / denom if denom > 0 else float("inf")
    return Comparison(estimator, m_c, m_t, v_c, v_t, n_c, n_t, float(df))


def proportion(y_c: np.ndarray, y_t: np.ndarray) -> Comparison:
    """Wald comparison of two proportions (unpooled variance, ``n`` denominator)."""
    n_c, n_t = y_c.shape[0], y_t.shape[0]
    p_c, p_t = float(y_c.mean()), float(y_t.mean())
    return Comparison("proportion", p_c, p_t, p_c * (1 - p_c) / n_c, p_t * (1 - p_t) / n_t, n_c, n_t)


def ratio_linearize(num: np.ndarray, den: np.ndarray) -> tuple[float, np.ndarray]:
    """``(R, psi)``: the arm's ratio of sums and each unit's influence value."""
    dbar = float(den.mean())
    r = float(num.sum() / den.sum())
    return r, (num - r * den) / dbar


def ratio(num_c: np.ndarray, den_c: np.ndarray, num_t: np.ndarray, den_t: np.ndarray) -> Comparison:
    """Delta-method comparison of two ratios of unit-level sums."""
    r_c, psi_c = ratio_linearize(num_c, den_c)
    r_t, psi_t = ratio_linearize(num_t, den_t)
    _, v_c, n_c = arm_moments(psi_c)
    _, v_t, n_t = arm_moments(psi_t)
    return Comparison("delta", r_c, r_t, v_c, v_t, n_c, n_t)


def is_binary(values: np.ndarray) -> bool:
    """True when every value is 0 or 1 (a proportion metric)."""
    return bool(np.isin(values, (0.0, 1.0)).all())
