"""CUPED and CUPAC: variance reduction with pre-period covariates.

**CUPED** (Deng, Xu, Kohavi & Walker 2013). With pre-period covariates
``X`` (one row per unit, unaffected by the treatment) and the metric's
unit-level values ``y``::

    theta = argmin_b  sum_i ((y_i - ybar) - (X_i - Xbar) b)^2       (pooled over arms)
    y_i^cuped = y_i - (X_i - Xbar) theta

and the arms are compared on ``y^cuped`` with Welch's test. Because ``X`` is
independent of the assignment, ``E[Xbar_t - Xbar_c] = 0`` and the adjusted
difference is unbiased for the same effect; its variance is
``(1 - R^2)`` times the unadjusted one, ``R^2`` being the share of the
metric's variance the covariates explain (``rho^2`` for one covariate).
``theta`` is estimated on the pooled data of all arms, which keeps it the
same for every comparison; its estimation error is ``O(1/n)`` and ignored.

Ratio metrics are adjusted through their linearisation (influence values)
``psi_i = (num_i - R_k den_i) / dbar_k`` (see ``estimators``): ``theta``
regresses ``psi`` on ``X`` and ``R_k^cuped = R_k - (Xbar_k - Xbar) theta``,
with normal-theory inference on the adjusted influence values.

**CUPAC** (Tang et al. 2020, DoorDash) is CUPED whose covariate is a model's
out-of-fold prediction of the metric from pre-period features (see
``causalrec.experiments.cupac``); this module treats it like any covariate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalrec.experiments.estimators import Comparison, arm_moments, ratio_linearize, welch


@dataclass(frozen=True)
class Adjustment:
    """What a CUPED adjustment did to one metric."""

    theta: np.ndarray
    r2: float  # share of the pooled (linearised) metric variance explained by the covariates
    rho: float | None  # correlation with the single covariate, when there is one

    def to_dict(self) -> dict:
        return {"theta": self.theta.tolist(), "r2": self.r2, "rho": self.rho}


def fit_theta(values: np.ndarray, X: np.ndarray) -> Adjustment:
    """Pooled least-squares slope of ``values`` on ``X`` (both centred)."""
    X = np.asarray(X, dtype=float).reshape(len(values), -1)
    Xc = X - X.mean(axis=0)
    yc = values - values.mean()
    theta, *_ = np.linalg.lstsq(Xc, yc, rcond=None)
    fitted = Xc @ theta
    ss = float(yc @ yc)
    r2 = float(fitted @ fitted / ss) if ss > 0 else 0.0
    rho = None
    if X.shape[1] == 1:
        sx = float(np.sqrt(Xc[:, 0] @ Xc[:, 0]))
        rho = float(Xc[:, 0] @ yc / (sx * np.sqrt(ss))) if sx > 0 and ss > 0 else 0.0
    return Adjustment(theta, r2, rho)


def cuped_mean(
    y_c: np.ndarray, y_t: np.ndarray, X_c: np.ndarray, X_t: np.ndarray, estimator: str = "cuped"
) -> tuple[Comparison, Adjustment]:
    """CUPED-adjusted Welch comparison of a mean metric."""
    X_c = np.asarray(X_c, dtype=float).reshape(len(y_c), -1)
    X_t = np.asarray(X_t, dtype=float).reshape(len(y_t), -1)
    X = np.vstack([X_c, X_t])
    adj = fit_theta(np.concatenate([y_c, y_t]), X)
    xbar = X.mean(axis=0)
    comp = welch(y_c - (X_c - xbar) @ adj.theta, y_t - (X_t - xbar) @ adj.theta, estimator=estimator)
    return comp, adj


def cuped_ratio(
    num_c: np.ndarray, den_c: np.ndarray, num_t: np.ndarray, den_t: np.ndarray,
    X_c: np.ndarray, X_t: np.ndarray, estimator: str = "cuped",
) -> tuple[Comparison, Adjustment]:
    """CUPED-adjusted delta-method comparison of a ratio metric."""
    r_c, psi_c = ratio_linearize(num_c, den_c)
    r_t, psi_t = ratio_linearize(num_t, den_t)
    X_c = np.asarray(X_c, dtype=float).reshape(len(num_c), -1)
    X_t = np.asarray(X_t, dtype=float).reshape(len(num_t), -1)
    X = np.vstack([X_c, X_t])
    adj = fit_theta(np.concatenate([psi_c, psi_t]), X)
    xbar = X.mean(axis=0)
    a_c = psi_c - (X_c - xbar) @ adj.theta
    a_t = psi_t - (X_t - xbar) @ adj.theta
    m_c = r_c - float((X_c.mean(axis=0) - xbar) @ adj.theta)
    m_t = r_t - float((X_t.mean(axis=0) - xbar) @ adj.theta)
    _, v_c, n_c = arm_moments(a_c)
    _, v_t, n_t = arm_moments(a_t)
    return Comparison(estimator, m_c, m_t, v_c, v_t, n_c, n_t), adj
