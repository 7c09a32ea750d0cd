"""Quantile metrics (median, p90, p99) with a valid variance for i.i.d. units and clustered rows.

The ``p``-quantile of an arm is the inverse empirical CDF of its values,
``q_hat = min{y : F_hat(y) >= p}`` (the order statistic of rank ``ceil(n p)``).
Its variance comes from **Woodruff's (1952) interval**: the proportion of values at or
below the quantile, ``F_hat(q)``, is a mean with a standard error ``se_F`` one can
estimate, and inverting its interval through the empirical quantile function gives
``[Q_hat(p - z se_F), Q_hat(p + z se_F)]``, so::

    se(q_hat) = (Q_hat(p + z se_F) - Q_hat(p - z se_F)) / (2 z)

i.e. ``se_F`` divided by a difference-quotient estimate of the density at ``q`` (the
asymptotic variance is ``p (1 - p) / (n f(q)^2)``; Francisco & Fuller 1991 show the
interval is valid for clustered designs too). ``se_F`` is:

- i.i.d. units (one row per unit): ``sqrt(p (1 - p) / n)``;
- rows clustered in units (impressions of a user, ``--unit``): the cluster-robust
  standard error of the mean of the indicators ``1(y_i <= q_hat)`` over rows
  (:func:`causalrec.inference.cluster_se`, the delta method for a ratio of cluster
  sums), so within-unit correlation widens the interval. This is the construction
  of gbstats' clustered quantile statistic (the i.i.d. Woodruff variance scaled by the
  ratio of the clustered to the i.i.d. variance of ``F_hat``).

The arms are independent, so the difference of two quantiles has variance
``se_c^2 + se_t^2`` and a normal interval. Coverage is checked by simulation
(``analyses/ab_sequential.py``: 93-97% for the median and p90, i.i.d. and clustered).
Quantiles are not sums, so they need row-level logs (not a ``--stats`` file).
"""

from __future__ import annotations

import math
import re

import numpy as np
from scipy.special import ndtri

from causalrec.errors import InputError
from causalrec.experiments.estimators import Comparison
from causalrec.inference import cluster_se

NAMED = {"median": 0.5}
_Z_STEP = float(ndtri(0.975))


def parse_quantile(spec: str) -> tuple[str, float]:
    """``"latency:0.9"``, ``"latency:p90"``, ``"latency:median"`` -> ``("latency", 0.9)``."""
    text = str(spec).strip()
    if ":" not in text:
        raise InputError(f"quantile metric {spec!r} is not of the form COLUMN:LEVEL", column="--quantile",
                         fix="e.g. --quantile revenue:0.9, --quantile revenue:p99 or --quantile revenue:median")
    col, level = (p.strip() for p in text.rsplit(":", 1))
    lev = level.lower()
    try:
        if lev in NAMED:
            p = NAMED[lev]
        elif re.fullmatch(r"p\d+(\.\d+)?", lev):
            p = float(lev[1:]) / 100.0
        else:
            p = float(lev)
    except ValueError:
        raise InputError(f"quantile level {level!r} in {spec!r} is not a number", column="--quantile",
                         fix="write it as 0.9, p90 or median") from None
    if not col or not 0.0 < p < 1.0:
        raise InputError(f"quantile level {level!r} in {spec!r} must lie strictly between 0 and 1", column="--quantile",
                         fix="e.g. 0.5 (median), 0.9 or p99; 0 and 1 are the minimum and maximum, which have no "
                         "useful variance")
    return col, p


def quantile_label(col: str, p: float) -> str:
    pct = 100.0 * p
    return f"{col}:p{pct:.10g}"


def _inverse_cdf(sorted_y: np.ndarray, p: float) -> float:
    n = sorted_y.shape[0]
    k = min(max(math.ceil(n * min(max(p, 0.0), 1.0) - 1e-12), 1), n)
    return float(sorted_y[k - 1])


def arm_quantile(y: np.ndarray, p: float, groups: np.ndarray | None = None) -> dict:
    """The quantile of one arm, its Woodruff standard error and 95% interval (clustered by ``groups`` if given)."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(y, kind="stable")
    ys = y[order]
    n = ys.shape[0]
    q = _inverse_cdf(ys, p)
    if groups is None:
        se_f = math.sqrt(p * (1.0 - p) / n)
        n_units = n
    else:
        codes = np.unique(groups, return_inverse=True)[1]
        se_f = cluster_se((y <= q).astype(float), codes)
        n_units = int(codes.max()) + 1
    z = _Z_STEP  # the density's difference quotient uses a fixed 95% step, so se does not depend on ci_level
    lo, hi = _inverse_cdf(ys, p - z * se_f), _inverse_cdf(ys, p + z * se_f)
    return {"q": q, "se": (hi - lo) / (2.0 * z), "lo": lo, "hi": hi, "se_f": se_f, "n_rows": n, "n_units": n_units}


def compare_quantile(y_c: np.ndarray, y_t: np.ndarray, p: float, groups_c: np.ndarray | None = None,
                     groups_t: np.ndarray | None = None) -> tuple[Comparison, dict]:
    """Difference of the arms' ``p``-quantiles (independent arms, normal interval)."""
    a, b = arm_quantile(y_c, p, groups_c), arm_quantile(y_t, p, groups_t)
    comp = Comparison("quantile", a["q"], b["q"], a["se"] ** 2, b["se"] ** 2, a["n_units"], b["n_units"])
    return comp, {"control": a, "treatment": b}
