"""Power and minimum detectable effect (MDE) for planning.

For a difference in means with per-unit standard deviation ``sigma``,
``n_c`` control and ``n_t = r n_c`` treatment units, a two-sided level
``alpha`` test has power ``1 - beta`` against an effect ``delta`` when::

    delta = (z_{1 - alpha/2} + z_{1 - beta}) * sigma * sqrt(1/n_c + 1/n_t)

(normal approximation; statsmodels also counts the tiny probability of
rejecting in the wrong tail, so its exact MDE is a hair smaller). statsmodels' ``NormalIndPower`` solves this for the
standardised effect ``delta / sigma`` (or for ``n_c``); we scale by
``sigma``. With CUPED, ``sigma`` is the standard deviation of the adjusted
metric, so the MDE shrinks by ``sqrt(1 - R^2)``. For a ratio metric,
``sigma`` is the standard deviation of its linearised values.
"""

from __future__ import annotations

import math


def mde(sigma: float, n_control: float, n_treatment: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest absolute effect detected with probability ``power``."""
    from statsmodels.stats.power import NormalIndPower

    if not (sigma > 0 and n_control > 1 and n_treatment > 1):
        return float("nan")
    es = NormalIndPower().solve_power(effect_size=None, nobs1=n_control, alpha=alpha, power=power,
                                      ratio=n_treatment / n_control, alternative="two-sided")
    return float(es) * sigma


def sample_size(sigma: float, effect: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0) -> int:
    """Control-arm units needed to detect ``effect`` (treatment arm: ``ratio`` times that)."""
    from statsmodels.stats.power import NormalIndPower

    if not (sigma > 0 and effect != 0):
        return -1
    n = NormalIndPower().solve_power(effect_size=abs(effect) / sigma, nobs1=None, alpha=alpha,
                                     power=power, ratio=ratio, alternative="two-sided")
    return int(math.ceil(float(n)))


def achieved_power(sigma: float, effect: float, n_control: float, n_treatment: float, alpha: float = 0.05) -> float:
    """Power of the test against a stated (planned, not observed) effect."""
    from statsmodels.stats.power import NormalIndPower

    if not (sigma > 0):
        return float("nan")
    return float(NormalIndPower().power(effect_size=abs(effect) / sigma, nobs1=n_control, alpha=alpha,
                                        ratio=n_treatment / n_control, alternative="two-sided"))
