"""Always-valid p-values and confidence sequences (mixture SPRT).

Peeking at a fixed-horizon p-value every day and stopping at the first
``p < 0.05`` inflates the false-positive rate far above 5%. The mixture
sequential probability ratio test (mSPRT; Robbins 1970, Johari, Pekelis &
Walsh 2017, "Always valid inference") gives p-values that stay valid under
continuous monitoring.

For the difference in means ``Delta_hat_n`` after ``n`` looks' worth of
data, with (estimated) variance ``V_n = s_t^2/n_t + s_c^2/n_c`` and a normal
mixing distribution ``theta ~ N(0, tau^2)`` over the effect under the
alternative, the mixture likelihood ratio against ``H0: Delta = 0`` is::

    Lambda_n = sqrt(V_n / (V_n + tau^2)) * exp( tau^2 Delta_hat_n^2 / (2 V_n (V_n + tau^2)) )

the always-valid p-value is ``p_n = min(1, min_{m <= n} 1 / Lambda_m)`` and
the always-valid ``1 - alpha`` confidence sequence is::

    Delta_hat_n +/- sqrt( V_n (V_n + tau^2) / tau^2 * (log((V_n + tau^2) / V_n) + 2 log(1/alpha)) )

(intersected over looks). ``tau`` (the mixing standard deviation) should be
of the order of the effects one hopes to detect; the default here is
``tau = 0.1 * sigma_pooled`` (a tenth of a standard deviation of the unit
metric), stated in every result. These are wider than fixed-horizon
intervals: that is the price of being allowed to peek.
"""

from __future__ import annotations

import numpy as np


def msprt(diff: np.ndarray, var: np.ndarray, tau: float, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Running always-valid ``(p, ci_low, ci_high)`` over a sequence of looks."""
    diff = np.atleast_1d(np.asarray(diff, dtype=float))
    var = np.atleast_1d(np.asarray(var, dtype=float))
    t2 = float(tau) ** 2
    log_lr = 0.5 * np.log(var / (var + t2)) + t2 * diff**2 / (2.0 * var * (var + t2))
    p = np.minimum.accumulate(np.minimum(1.0, np.exp(-log_lr)))
    half = np.sqrt(var * (var + t2) / t2 * (np.log((var + t2) / var) + 2.0 * np.log(1.0 / alpha)))
    lo = np.maximum.accumulate(diff - half)
    hi = np.minimum.accumulate(diff + half)
    return p, lo, hi
