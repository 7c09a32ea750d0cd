"""Warnings for estimates that rest on a few rows: heavy-tailed influence values and poorly
calibrated propensities, each naming the rows responsible (DESIGN.md section 5: nothing
absurd is printed silently).

* Influence tail: for per-row influence values ``psi_i`` of a mean-type estimator (AIPW,
  IPW), the share of ``sum_i (psi_i - mean psi)^2`` carried by the ``ceil(top * n)`` rows
  with the largest squared deviations. With light tails the top 1% carry a few percent;
  above ``INFLUENCE_TAIL_WARN`` (half the variance) the estimate and its standard error
  are driven by those rows, whose propensities are near 0 or 1 or whose outcome residuals
  are extreme.
* Calibration: binary expected calibration error of the cross-fitted propensities
  (:func:`causalrec.models.calibration.expected_calibration_error`); above
  ``CALIBRATION_WARN`` the weights ``1/e`` are off by more than the usual noise, and the
  rows of the worst bin are named.
"""

from __future__ import annotations

import numpy as np

#: share of the influence variance carried by the top 1% of rows above which a run warns
INFLUENCE_TAIL_WARN = 0.5
#: expected calibration error of the propensities above which a run warns
CALIBRATION_WARN = 0.05


def influence_tail(psi: np.ndarray, top: float = 0.01) -> tuple[float, np.ndarray]:
    """``(share of sum (psi - mean)^2 carried by the top rows, their positions by size)``."""
    psi = np.asarray(psi, dtype=float)
    d2 = (psi - psi.mean()) ** 2
    total = d2.sum()
    k = max(1, int(np.ceil(top * psi.shape[0])))
    idx = np.argsort(-d2, kind="stable")[:k]
    return (float(d2[idx].sum() / total) if total > 0 else 0.0), idx


def calibration_gap(t: np.ndarray, e: np.ndarray, n_bins: int = 10) -> tuple[float, np.ndarray, tuple]:
    """``(ECE, rows of the worst bin, (bin low, bin high, mean e, treated share) of that bin)``."""
    from causalrec.models.calibration import expected_calibration_error

    t = np.asarray(t, dtype=float)
    e = np.asarray(e, dtype=float)
    ece = expected_calibration_error(t, e, n_bins=n_bins)
    bins = np.minimum((e * n_bins).astype(int), n_bins - 1)
    cnt = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, weights=t, minlength=n_bins) - np.bincount(bins, weights=e, minlength=n_bins))
    worst = int(np.argmax(gap))  # the bin with the largest absolute excess of treated rows (count-weighted)
    rows = np.flatnonzero(bins == worst)
    info = (worst / n_bins, (worst + 1) / n_bins, float(e[rows].mean()) if cnt[worst] else float("nan"),
            float(t[rows].mean()) if cnt[worst] else float("nan"))
    return ece, rows, info


def row_list(rows: np.ndarray, k: int = 5) -> str:
    """``"3, 17, 42 and 12 more"``: the first ``k`` entries of a set -- row positions, or the
    values shown beside them (propensities, weights), which keep their digits (``"0.02"``,
    not ``"0"``: an ``int`` cast would print every propensity as 0)."""
    rows = np.asarray(rows)
    if np.issubdtype(rows.dtype, np.integer):
        head = ", ".join(str(int(r)) for r in rows[:k])
    else:
        head = ", ".join(f"{float(r):.4g}" for r in rows[:k])
    return head + (f" and {len(rows) - k} more" if len(rows) > k else "")
