"""Shared inference helpers: normal intervals, influence-function standard
errors and the percentile bootstrap.

Every estimator in causalrec that is a mean of per-row terms
(IPS, SNIPS, DR, AIPW, ...) is asymptotically linear:
``sqrt(n) (theta_hat - theta) = n^{-1/2} sum_i psi_i + o_p(1)``, so its
variance is estimated by ``Var(psi) / n`` (the sandwich / influence-function
variance). Estimators compute their own ``psi``; this module turns it into a
standard error and an interval, so the convention lives in one place.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# scipy.special, not scipy.stats: the latter adds ~0.4 s to every command's start-up
from scipy.special import ndtr, ndtri

from causalrec.errors import InputError


def z_value(level: float = 0.95) -> float:
    """Two-sided normal critical value for a ``level`` interval."""
    if not 0.0 < level < 1.0:
        # an InputError (a ValueError too): a bad level is the user's input, not a bug
        raise InputError(f"ci_level must be in (0, 1), got {level}", column="ci_level")
    return float(ndtri(0.5 + level / 2.0))


def normal_ci(estimate: float, se: float, level: float = 0.95) -> tuple[float, float]:
    """``estimate -/+ z * se``."""
    z = z_value(level)
    return float(estimate - z * se), float(estimate + z * se)


def influence_se(psi: np.ndarray) -> float:
    """Standard error of a mean from its influence values ``psi`` (any centring):
    ``se = sd(psi) / sqrt(n)`` with the ``n - 1`` denominator."""
    psi = np.asarray(psi, dtype=float)
    n = psi.shape[0]
    if n < 2:
        return float("nan")
    return float(np.std(psi, ddof=1) / np.sqrt(n))


def check_clusters(column: str, n_missing: int, n_clusters: int | None = None) -> None:
    """Raise a clear :class:`InputError` for a cluster column no cluster-robust error can use."""
    if n_missing:
        raise InputError(f"cluster column '{column}' has {n_missing} missing value(s)", column=column,
                         fix="fill them (e.g. one cluster per such row) or choose another column")
    if n_clusters is not None and n_clusters < 2:
        raise InputError(f"cluster column '{column}' has fewer than 2 distinct values; no cluster-robust "
                         "standard error exists", column=column, fix="cluster by a finer unit, or drop --cluster")


def cluster_codes(keys, column: str) -> np.ndarray:
    """Integer codes ``0..G-1`` of a cluster column (any hashable values), checked."""
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(keys) if not isinstance(keys, pd.Series) else keys, sort=False)
    check_clusters(column, int((codes < 0).sum()), len(uniques))
    return codes.astype(np.int64)


def cluster_se(psi: np.ndarray, groups: np.ndarray) -> float:
    """Cluster-robust standard error of a mean from its influence values.

    ``se^2 = G / (G - 1) * sum_g (sum_{i in g} (psi_i - mean psi))^2 / n^2`` over the
    ``G`` clusters coded ``0..G-1`` in ``groups`` (Liang & Zeger 1986, with the usual
    ``G / (G - 1)`` small-sample factor). With one row per cluster it equals
    :func:`influence_se`. Valid when clusters are independent of each other, whatever
    the dependence inside a cluster; it needs many clusters, not many rows.
    """
    psi = np.asarray(psi, dtype=float)
    groups = np.asarray(groups)
    n = psi.shape[0]
    g = int(groups.max()) + 1 if n else 0
    if g < 2:
        return float("nan")
    sums = np.bincount(groups, weights=psi, minlength=g)
    return cluster_se_from_sums(sums, np.bincount(groups, minlength=g), n)


def cluster_se_from_sums(sums: np.ndarray, sizes: np.ndarray, n: int) -> float:
    """:func:`cluster_se` from the per-cluster sums ``S_g`` of the influence values and the cluster
    sizes ``n_g`` (``n`` rows in all): ``se^2 = G / (G - 1) * sum_g (S_g - n_g mean psi)^2 / n^2``.
    For callers that already hold cluster totals (streamed evaluations, SLOPE's paired differences)."""
    sums = np.asarray(sums, dtype=float)
    sizes = np.asarray(sizes, dtype=float)
    g = sums.size
    if g < 2 or n <= 0:
        return float("nan")
    centred = sums - sizes * (sums.sum() / n)
    return float(np.sqrt(g / (g - 1) * np.dot(centred, centred)) / n)


def two_sided_p(estimate: float, se: float, null: float = 0.0) -> float:
    """Normal two-sided p-value of ``estimate`` against ``null``."""
    if not np.isfinite(se) or se <= 0:
        return float("nan")
    return float(2.0 * ndtr(-abs(estimate - null) / se))


def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray | float],
    n: int,
    n_boot: int,
    level: float = 0.95,
    seed: int | None = 0,
    batch: int = 64,
    groups: np.ndarray | None = None,
) -> tuple[float, float, float, np.ndarray]:
    """Percentile bootstrap over rows, or over clusters of rows.

    ``statistic(counts)`` receives a ``(b, n)`` array of multinomial resampling
    counts (row multiplicities) and returns ``b`` replicates; passing counts
    rather than resampled indices lets estimators stay vectorised (a weighted
    mean per replicate is one matrix product). With ``groups`` (cluster codes
    ``0..G-1``, one per row) whole clusters are resampled: each row takes its
    cluster's multiplicity.

    Returns ``(ci_low, ci_high, se_boot, replicates)``.
    """
    if n_boot < 2:
        raise ValueError("n_boot must be >= 2")
    rng = np.random.default_rng(seed)
    reps: list[np.ndarray] = []
    units = n if groups is None else int(np.max(groups)) + 1
    p = np.full(units, 1.0 / units)
    done = 0
    while done < n_boot:
        b = min(batch, n_boot - done)
        counts = rng.multinomial(units, p, size=b).astype(np.float64)
        if groups is not None:
            counts = counts[:, groups]
        reps.append(np.atleast_1d(np.asarray(statistic(counts), dtype=float)))
        done += b
    r = np.concatenate(reps)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(r, [alpha, 1.0 - alpha])
    return float(lo), float(hi), float(np.std(r, ddof=1)), r
