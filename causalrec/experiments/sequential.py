"""Always-valid inference under continuous monitoring: confidence sequences and mSPRT.

Peeking at a fixed-horizon p-value every day and stopping at the first ``p < 0.05``
inflates the false-positive rate far above 5% (``analyses/ab_sequential.py`` measures
it). Two always-valid methods are here; group-sequential designs with alpha spending
for *planned* looks are in :mod:`causalrec.experiments.groupseq`.

**Asymptotic confidence sequence** (Waudby-Smith, Arnold, Wu, Howard & Ramdas 2023,
"Time-uniform central limit theory and asymptotic confidence sequences", eq. 9 with the
normal-mixture boundary; the construction of gbstats and Eppo). After ``N`` units in
total with estimate ``Delta_hat`` and estimated variance ``V`` of that estimate
(``s^2 = N V``)::

    Delta_hat +/- sqrt(s^2) * sqrt( 2 (N rho^2 + 1) / (N rho)^2 * log( sqrt(N rho^2 + 1) / alpha ) )

holds for all ``N`` simultaneously with probability ``>= 1 - alpha`` asymptotically.
The mixing parameter ``rho`` is set so the boundary is tightest at ``N = tau``
(the *tuning parameter*, Waudby-Smith et al. eq. 161, gbstats' ``sequential_tuning_parameter``,
default 5,000 units: set it to the planned sample size)::

    rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / tau

The matching always-valid p-value is ``min(1, 1 / E)`` with the e-value
``E = exp(rho^2 N Delta_hat^2 / V / (2 (N rho^2 + 1))) / sqrt(N rho^2 + 1)``
(eq. 155); the interval excludes 0 exactly when ``p < alpha``. Because the guarantee
is time-uniform, the running intersection of the intervals (and running minimum of
the p-values) over the looks is also valid: causalrec reports those as the
sequence's current interval and p-value, and the at-look values beside them (what
gbstats prints).

**mSPRT** (Robbins 1970; Johari, Pekelis & Walsh 2017, "Always valid inference").
With a normal mixing distribution ``N(0, tau^2)`` over the effect, the mixture
likelihood ratio against ``H0: Delta = 0`` is::

    Lambda_n = sqrt(V_n / (V_n + tau^2)) * exp( tau^2 Delta_hat_n^2 / (2 V_n (V_n + tau^2)) )

``p_n = min(1, min_{m <= n} 1 / Lambda_m)`` and the confidence sequence is
``Delta_hat_n +/- sqrt( V_n (V_n + tau^2) / tau^2 * (log((V_n + tau^2) / V_n) + 2 log(1/alpha)) )``
(intersected over looks). ``tau`` should be of the order of the hoped-for effect; the
default is a tenth of the metric's standard deviation *at the first look* (data
available then), stated in every result.

Both are valid whenever one looks, so they are wider than fixed-horizon intervals:
the price of being allowed to peek. Assumptions: those of the fixed-horizon test at
every look (independent units, approximately normal estimates), plus a variance
estimate that converges.
"""

from __future__ import annotations

import numpy as np

DEFAULT_CS_TUNING = 5000.0


def cs_rho2(alpha: float, tuning: float) -> float:
    """Squared mixing parameter of the normal-mixture boundary tightest at ``tuning`` units."""
    la = -2.0 * np.log(alpha)
    return float((la + np.log(la + 1.0)) / tuning)


def confidence_sequence(estimate: np.ndarray, var: np.ndarray, n: np.ndarray, alpha: float = 0.05,
                        tuning: float = DEFAULT_CS_TUNING) -> dict[str, np.ndarray]:
    """Asymptotic confidence sequence over looks.

    ``estimate`` / ``var``: the estimate and its variance at each look; ``n``: total units
    at each look. Returns at-look ``low``, ``high``, ``p`` and the running (intersected)
    ``low_running``, ``high_running``, ``p_running``.
    """
    est = np.atleast_1d(np.asarray(estimate, dtype=float))
    var = np.atleast_1d(np.asarray(var, dtype=float))
    N = np.atleast_1d(np.asarray(n, dtype=float))
    r2 = cs_rho2(alpha, tuning)
    tr = N * r2 + 1.0
    s2 = var * N
    half = np.sqrt(s2) * np.sqrt(2.0 * tr * np.log(np.sqrt(tr) / alpha) / (N**2 * r2))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        st2 = est**2 * N / var
        log_e = r2 * st2 / (2.0 * tr) - 0.5 * np.log(tr)
        p = np.minimum(1.0, np.exp(-log_e))
    lo, hi = est - half, est + half
    return {"low": lo, "high": hi, "p": p, "low_running": np.maximum.accumulate(lo),
            "high_running": np.minimum.accumulate(hi), "p_running": np.minimum.accumulate(p)}


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
