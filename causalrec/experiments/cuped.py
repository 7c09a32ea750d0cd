"""Covariate adjustment: CUPED, CUPAC and Lin's interacted regression, from arm sums.

**CUPED** (Deng, Xu, Kohavi & Walker 2013). With pre-period covariates ``X`` (one row
per unit, unaffected by the treatment) and the metric's unit-level values ``y``::

    theta = argmin_b  sum_i ((y_i - ybar) - (X_i - Xbar) b)^2       (pooled over the two arms)
    m_k^cuped = ybar_k - (Xbar_k - Xbar) theta

compared with Welch's test on ``y - X theta``. Because ``X`` is independent of the
assignment, ``E[Xbar_t - Xbar_c] = 0`` and the adjusted difference is unbiased for the
same effect; its variance is ``(1 - R^2)`` times the unadjusted one (``rho^2`` for one
covariate). ``theta`` comes from the pooled sums (gbstats' ``compute_theta``); its
estimation error is ``O(1/n)`` and ignored.

Covariates and metrics may be ratios. Each is a smooth function of arm means with a
gradient (``estimators.value_grad``): a metric ``N/D`` is linearised as
``psi = (N - R D) / Dbar`` and a pre-period ratio covariate ``Np/Dp`` as
``phi = (Np - Rp Dp) / Dpbar`` ("CUPED for ratio metrics with pre-period ratios").
With ``a`` the metric's gradient and ``B`` the covariates' gradients at the pooled
means and ``C`` the pooled centred sums of products, ``theta = (B^T C B)^{-1} B^T C a``
and ``m_k^cuped = m_k - theta^T (h_k - h)``, ``h_k`` / ``h`` the covariate values in
arm ``k`` / pooled; the arm variance is ``(g_k - G_k theta)^T S_k (g_k - G_k theta) / n_k``.
For a mean metric and plain covariates this is exactly the formula above.

**CUPAC** (Tang et al. 2020) is CUPED whose covariate is a model's out-of-fold
prediction of the metric from pre-period features (``causalrec.experiments.cupac``).

**Lin (2013)**: the interacted regression ``y ~ 1 + T + (X - Xbar) + T (X - Xbar)``
fits one slope per arm, ``beta_k = S_k,XX^{-1} S_k,Xy``, and estimates
``m_k^lin = ybar_k - beta_k^T (Xbar_k - Xbar)``: the OLS coefficient of ``T`` (computed
here from the sums; a test checks it equals statsmodels' OLS). Unlike CUPED it cannot
lose precision when the arms' slopes differ. Its variance for i.i.d. sampling of units
is ``sum_k Var(e_k) / n_k + (beta_t - beta_c)^T S_XX (beta_t - beta_c) / N`` (``e_k``
the within-arm residuals; the second term is the sampling of ``Xbar``, which both arms
share: it enters as the covariance ``C_ct``). statsmodels' HC2 standard error of the
interacted OLS omits that term (it conditions on ``X``) and differs from this one by
``O(1/n)`` otherwise. Why not statsmodels' OLS itself: the same estimator must run on
the sufficient statistics of a stats file or of Spark partitions, which hold no rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from causalrec.experiments.estimators import Comparison, Metric, value_grad, welch_df
from causalrec.experiments.stats import SuffStats


@dataclass(frozen=True)
class Adjustment:
    """What a covariate adjustment did to one metric."""

    theta: np.ndarray
    r2: float  # share of the (linearised) metric variance the covariates explain
    rho: float | None  # correlation with the single covariate, when there is one

    def to_dict(self) -> dict:
        return {"theta": np.asarray(self.theta).tolist(), "r2": self.r2, "rho": self.rho}


def fit_theta(values: np.ndarray, X: np.ndarray) -> Adjustment:
    """Pooled least-squares slope of ``values`` on ``X`` (both centred), from row-level arrays."""
    X = np.asarray(X, dtype=float).reshape(len(values), -1)
    st = SuffStats.of_values(np.column_stack([values, X]), ["y", *[f"x{j}" for j in range(X.shape[1])]])
    covs = [Metric(f"x{j}", "mean", f"x{j}") for j in range(X.shape[1])]
    theta, r2, rho, _ = _pooled_fit(st, Metric("y", "mean", "y"), covs)
    return Adjustment(theta, r2, rho)


def _grads(st: SuffStats, covs: Sequence[Metric]) -> tuple[np.ndarray, np.ndarray]:
    vals, grads = zip(*(value_grad(st, c) for c in covs), strict=True)
    return np.asarray(vals, dtype=float), np.column_stack(grads)


def _solve(M: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(M, v, rcond=None)[0]


def _pooled_fit(pooled: SuffStats, m: Metric, covs: Sequence[Metric]):
    """``(theta, r2, rho, h_pooled)`` of the pooled regression of the metric's linearisation on the covariates'."""
    C = pooled.centred()
    _, a = value_grad(pooled, m)
    h, B = _grads(pooled, covs)
    q = B.shape[1]
    BCB = np.array([[pooled.quad(B[:, i], B[:, j], C) for j in range(q)] for i in range(q)])
    BCa = np.array([pooled.quad(B[:, i], a, C) for i in range(q)])
    aCa = pooled.quad(a, a, C)
    theta = _solve(BCB, BCa)
    r2 = float(theta @ BCa / aCa) if aCa > 0 else 0.0
    rho = None
    if q == 1:
        rho = float(BCa[0] / np.sqrt(BCB[0, 0] * aCa)) if BCB[0, 0] > 0 and aCa > 0 else 0.0
    return theta, r2, rho, h


def compare_cuped(st_c: SuffStats, st_t: SuffStats, m: Metric, covs: Sequence[Metric],
                  estimator: str = "cuped") -> tuple[Comparison, Adjustment]:
    """CUPED (or CUPAC) comparison of a mean or ratio metric from the two arms' sums."""
    theta, r2, rho, h = _pooled_fit(st_c + st_t, m, covs)
    vals, vars_ = [], []
    for st in (st_c, st_t):
        mk, gk = value_grad(st, m)
        hk, Gk = _grads(st, covs)
        vals.append(mk - float(theta @ (hk - h)))
        vars_.append(st.quad(gk - Gk @ theta) / (st.n - 1) / st.n)
    df = welch_df(vars_[0], vars_[1], st_c.n, st_t.n) if m.kind == "mean" else float("inf")
    comp = Comparison(estimator, vals[0], vals[1], vars_[0], vars_[1], int(st_c.n), int(st_t.n), df)
    return comp, Adjustment(theta, r2, rho)


def compare_lin(st_c: SuffStats, st_t: SuffStats, m: Metric, covs: Sequence[Metric],
                estimator: str = "lin") -> tuple[Comparison, Adjustment]:
    """Lin's (2013) interacted regression adjustment from the two arms' sums (see the module docstring)."""
    pooled = st_c + st_t
    Cp = pooled.centred()
    h, B = _grads(pooled, covs)
    q = B.shape[1]
    V_h = np.array([[pooled.quad(B[:, i], B[:, j], Cp) for j in range(q)] for i in range(q)]) / (pooled.n - 1) / pooled.n
    vals, vars_, betas, res, tot = [], [], [], 0.0, 0.0
    for st in (st_c, st_t):
        C = st.centred()
        mk, gk = value_grad(st, m)
        hk, Gk = _grads(st, covs)
        GCG = np.array([[st.quad(Gk[:, i], Gk[:, j], C) for j in range(q)] for i in range(q)])
        GCg = np.array([st.quad(Gk[:, i], gk, C) for i in range(q)])
        beta = _solve(GCG, GCg)
        e = gk - Gk @ beta
        ss = st.quad(e, e, C)
        res += ss
        tot += st.quad(gk, gk, C)
        vals.append(mk - float(beta @ (hk - h)))
        vars_.append(ss / (st.n - 1) / st.n)
        betas.append(beta)
    shared = np.array([[bi @ V_h @ bj for bj in betas] for bi in betas])
    comp = Comparison(estimator, vals[0], vals[1], vars_[0] + shared[0, 0], vars_[1] + shared[1, 1],
                      int(st_c.n), int(st_t.n), float("inf"), float(shared[0, 1]))
    r2 = 1.0 - res / tot if tot > 0 else 0.0
    return comp, Adjustment(np.concatenate(betas), float(r2), None)


# -- row-level entry points (same code) ---------------------------------------------

def _xstats(y: np.ndarray, X: np.ndarray, extra: dict | None = None) -> tuple[SuffStats, list[Metric]]:
    X = np.asarray(X, dtype=float).reshape(len(y), -1)
    cols = {"y": y, **(extra or {}), **{f"x{j}": X[:, j] for j in range(X.shape[1])}}
    return SuffStats.of_arrays(**cols), [Metric(f"x{j}", "mean", f"x{j}") for j in range(X.shape[1])]


def cuped_mean(y_c: np.ndarray, y_t: np.ndarray, X_c: np.ndarray, X_t: np.ndarray,
               estimator: str = "cuped") -> tuple[Comparison, Adjustment]:
    """CUPED-adjusted Welch comparison of a mean metric (row-level arrays)."""
    (st_c, covs), (st_t, _) = _xstats(y_c, X_c), _xstats(y_t, X_t)
    return compare_cuped(st_c, st_t, Metric("y", "mean", "y"), covs, estimator)


def cuped_ratio(num_c: np.ndarray, den_c: np.ndarray, num_t: np.ndarray, den_t: np.ndarray,
                X_c: np.ndarray, X_t: np.ndarray, estimator: str = "cuped") -> tuple[Comparison, Adjustment]:
    """CUPED-adjusted delta-method comparison of a ratio metric (row-level arrays)."""
    st_c, covs = _xstats(num_c, X_c, {"den": den_c})
    st_t, _ = _xstats(num_t, X_t, {"den": den_t})
    return compare_cuped(st_c, st_t, Metric("y/den", "ratio", "y", "den"), covs, estimator)


def lin_mean(y_c: np.ndarray, y_t: np.ndarray, X_c: np.ndarray, X_t: np.ndarray) -> tuple[Comparison, Adjustment]:
    """Lin's interacted adjustment of a mean metric (row-level arrays)."""
    (st_c, covs), (st_t, _) = _xstats(y_c, X_c), _xstats(y_t, X_t)
    return compare_lin(st_c, st_t, Metric("y", "mean", "y"), covs)
