"""Average effects of exposure: ATE and ATT by difference in means, IPW, AIPW and DML.

Notation: row ``i`` has treatment ``T_i`` in {0, 1} (exposed / recommended),
outcome ``Y_i``, propensity ``e_i = P(T = 1 | X_i)`` and outcome means
``mu_t(X_i) = E[Y | T = t, X_i]`` (cross-fitted, see :mod:`causalrec.uplift.estimate`).
Estimands: ``ATE = E[Y(1) - Y(0)]``, ``ATT = E[Y(1) - Y(0) | T = 1]``.
Assumptions for every adjusted estimator: no unmeasured confounding given ``X``
(``Y(t)`` independent of ``T`` given ``X``) and overlap (``0 < e(X) < 1``).

* ``naive``: ``mean(Y | T=1) - mean(Y | T=0)``, Welch standard error. Unbiased only
  when exposure is randomised; reported for both targets.
* ``ipw`` (Hajek, normalised weights; Hirano, Imbens & Ridder 2003):
  ``ATE = sum T Y / e / sum T / e - sum (1-T) Y / (1-e) / sum (1-T) / (1-e)``;
  ``ATT = mean(Y | T=1) - sum (1-T) w Y / sum (1-T) w`` with ``w = e / (1 - e)``.
* ``aipw`` (doubly robust; Robins, Rotnitzky & Zhao 1994):
  ``ATE = mean(psi)``, ``psi = mu1 - mu0 + T (Y - mu1) / e - (1-T) (Y - mu0) / (1-e)``;
  ``ATT = sum[T (Y - mu0) - (1-T) e / (1-e) (Y - mu0)] / sum T``.
  Consistent when either the propensity or the outcome model is right; with
  cross-fitted nuisances it is root-n normal (Chernozhukov et al. 2018).
* ``dml``: econml's ``LinearDML`` (partialling out with cross-fitted ``E[Y|W]`` and
  ``e(W)``, then a linear final stage ``theta(x) = b' [1, x]`` on low-dimensional
  effect modifiers ``x``; :mod:`causalrec.uplift.estimate` passes the out-of-fold
  ``mu1 - mu0`` and leading principal components); ATE is the mean of ``theta(x_i)``, ATT
  its mean over exposed rows. With no effect modifiers it estimates the overlap-weighted
  effect ``E[e(1-e) tau] / E[e(1-e)]``, which differs from the ATE when effects
  are heterogeneous. Its standard errors come from the final stage's scores (see ``dml``).

Standard errors of ipw/aipw are influence-function (sandwich) ones,
``sd(psi_i) / sqrt(n)`` (:func:`causalrec.inference.influence_se`), treating the
cross-fitted nuisances as known; clustered by user when ``groups`` is given.

What the intervals of aipw and dml cover (``ci_target``):

* ``"sample"`` (default): the effect on the analysed rows, the *conditional* ATE
  ``(1/n) sum_i tau(x_i)`` with ``tau(x) = E[Y(1) - Y(0) | X = x]`` (ATT:
  ``(1/n_1) sum_{T_i = 1} tau(x_i)``), i.e. the estimand "over all logged rows" that
  :func:`causalrec.uplift.estimate` states. Its variance holds the covariates fixed
  (Imbens 2004, "Nonparametric estimation of average treatment effects under
  exogeneity", section 3; econml's ``ate_inference().stderr_mean`` for LinearDML does
  the same): the influence value drops the spread of the fitted effect across rows,
  ``psi_i - (mu1_i - mu0_i)`` for AIPW (the residual terms, whose conditional variance
  is ``sigma_1^2(x) / e(x) + sigma_0^2(x) / (1 - e(x))`` plus the outcome-model misfit),
  and ``mean(phi)' J^{-1} s_i`` for DML.
  Only the covariates are held fixed: the treatment is random given them, so the
  nuisance misfit multiplied by ``T - e`` in these influence values is sampling error. A
  benchmark that reuses one treatment vector in every draw (IHDP) shows a smaller
  seed-to-seed spread than these SEs; with the treatment redrawn per draw DML's SE is as
  calibrated as AIPW's (``analyses/ihdp.py --assignment resampled``, ``reports/ihdp.md``).
* ``"population"``: ``E[tau(X)]`` over a population the rows are a random sample of; the
  influence value keeps the spread of ``tau_hat(x_i)`` (``sd(psi)`` for AIPW), so the
  interval is wider by about ``Var(tau(X)) / n``.

The two differ only when effects vary across rows. ipw has no effect model, so its
interval is always the population one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from causalrec.inference import cluster_codes, cluster_se, influence_se
from causalrec.results import Estimate

ESTIMATORS = ("naive", "ipw", "aipw", "dml")
CI_TARGETS = ("sample", "population")


def _check_ci_target(ci_target: str) -> None:
    if ci_target not in CI_TARGETS:
        from causalrec.errors import InputError

        raise InputError(f"unknown ci_target {ci_target!r}; use one of {CI_TARGETS}", column="--ci-target",
                         fix="'sample' (the effect on the analysed rows) or 'population'")


def _se(psi: np.ndarray, groups: np.ndarray | None) -> float:
    """Influence-function SE; with ``groups`` the cluster-robust version (sums of psi per cluster)."""
    if groups is None:
        return influence_se(psi)
    return cluster_se(psi, cluster_codes(groups, "groups (the user column)"))


def naive(t: np.ndarray, y: np.ndarray, *, ci_level: float = 0.95) -> list[Estimate]:
    """Difference in means with the Welch (unequal-variance) standard error."""
    t = t.astype(bool)
    y1, y0 = y[t], y[~t]
    est = float(y1.mean() - y0.mean())
    se = float(np.sqrt(y1.var(ddof=1) / y1.size + y0.var(ddof=1) / y0.size))
    return [Estimate.normal("naive", target, est, se, ci_level, null=0.0) for target in ("ate", "att")]


def ipw(t: np.ndarray, y: np.ndarray, e: np.ndarray, *, groups: np.ndarray | None = None,
        ci_level: float = 0.95) -> list[Estimate]:
    """Hajek (normalised) inverse-propensity weighting, ATE and ATT, with influence SEs."""
    tf = t.astype(float)
    w1 = tf / e
    w0 = (1.0 - tf) / (1.0 - e)
    m1 = (w1 * y).sum() / w1.sum()
    m0 = (w0 * y).sum() / w0.sum()
    psi_ate = w1 * (y - m1) / w1.mean() - w0 * (y - m0) / w0.mean()
    ate = m1 - m0
    p = tf.mean()
    wt = (1.0 - tf) * e / (1.0 - e)
    a1 = (tf * y).sum() / tf.sum()
    a0 = (wt * y).sum() / wt.sum()
    psi_att = (tf * (y - a1) - wt * (y - a0) * p / wt.mean()) / p
    att = a1 - a0
    return [
        Estimate.normal("ipw", "ate", ate, _se(psi_ate, groups), ci_level, null=0.0),
        Estimate.normal("ipw", "att", att, _se(psi_att, groups), ci_level, null=0.0),
    ]


def aipw_scores(t: np.ndarray, y: np.ndarray, e: np.ndarray, mu0: np.ndarray, mu1: np.ndarray) -> np.ndarray:
    """Per-row doubly robust scores ``psi_i`` whose mean is the AIPW ATE."""
    tf = t.astype(float)
    return mu1 - mu0 + tf * (y - mu1) / e - (1.0 - tf) * (y - mu0) / (1.0 - e)


AIPW_TERMS = ("n", "psi", "tau", "num", "t", "t_tau")


def aipw_terms(t: np.ndarray, y: np.ndarray, e: np.ndarray, mu0: np.ndarray, mu1: np.ndarray) -> np.ndarray:
    """The ``(6, n)`` per-row terms every AIPW estimate and influence value is linear in.

    Rows (:data:`AIPW_TERMS`): ``1``, ``psi`` (:func:`aipw_scores`), ``tau_hat = mu1 - mu0``,
    ``num = T (Y - mu0) - (1-T) e / (1-e) (Y - mu0)`` (the ATT's numerator), ``T`` and
    ``T tau_hat``. Summed per cluster (or per row) they are mergeable: the Spark engine sums
    them on the executors, the driver finishes with :func:`aipw_from_moments`.
    """
    tf = t.astype(float)
    tau = mu1 - mu0
    r0 = y - mu0
    num = tf * r0 - (1.0 - tf) * e / (1.0 - e) * r0
    return np.stack([np.ones_like(tf), aipw_scores(t, y, e, mu0, mu1), tau, num, tf, tf * tau])


def aipw_unit_totals(terms: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """The terms summed per unit: per cluster (``groups``: any keys) or, without groups, per row."""
    if groups is None:
        return terms
    codes = cluster_codes(groups, "groups (the user column)")
    g = int(codes.max()) + 1
    return np.stack([np.bincount(codes, weights=row, minlength=g) for row in terms])


def aipw_from_moments(m: Any, *, ci_level: float = 0.95, ci_target: str = "sample") -> list[Estimate]:
    """AIPW ATE and ATT from the moments (``Moments``: count ``G``, means ``m``, centred co-moments
    ``M2``) of the per-unit totals ``z_g`` of :func:`aipw_terms` (units: clusters, or rows).

    ``ATE = sum psi / n``, ``p = sum T / n``, ``ATT = sum num / sum T`` (``n = G m_n``). Each
    influence value is linear in the terms, ``S_g = a' z_g``: ATE ``psi - tau`` (sample) or
    ``psi`` (population); ATT ``(num - T tau) / p`` (sample) or ``(num - T ATT) / p``
    (population). :func:`causalrec.inference.cluster_se` of it is
    ``sqrt(G / (G - 1) u' M2 u) / n`` with ``u = a - (a'm / m_n) e_n`` (the centring by the row
    mean); with one row per unit this is :func:`causalrec.inference.influence_se`.
    """
    _check_ci_target(ci_target)
    idx = {k: j for j, k in enumerate(AIPW_TERMS)}
    G = int(m.n)
    mean = np.asarray(m.mean, dtype=float)
    n = G * mean[idx["n"]]
    ate = float(mean[idx["psi"]] / mean[idx["n"]])
    p = mean[idx["t"]] / mean[idx["n"]]
    att = float(mean[idx["num"]] / mean[idx["t"]])

    def se(a: dict[str, float]) -> float:
        if G < 2:
            return float("nan")
        vec = np.zeros(len(AIPW_TERMS))
        for k, v in a.items():
            vec[idx[k]] = v
        vec[idx["n"]] -= float(vec @ mean) / mean[idx["n"]]
        ss = float(vec @ np.asarray(m.m2, dtype=float) @ vec)
        return float(np.sqrt(G / (G - 1) * max(ss, 0.0)) / n)

    if ci_target == "sample":
        # the covariates are held fixed: the fitted effect's spread across rows is no error
        a_ate = {"psi": 1.0, "tau": -1.0}
        a_att = {"num": 1.0 / p, "t_tau": -1.0 / p}
    else:
        a_ate = {"psi": 1.0}
        a_att = {"num": 1.0 / p, "t": -att / p}
    return [
        Estimate.normal("aipw", "ate", ate, se(a_ate), ci_level, null=0.0),
        Estimate.normal("aipw", "att", att, se(a_att), ci_level, null=0.0),
    ]


def aipw(t: np.ndarray, y: np.ndarray, e: np.ndarray, mu0: np.ndarray, mu1: np.ndarray, *,
         groups: np.ndarray | None = None, ci_level: float = 0.95, ci_target: str = "sample") -> list[Estimate]:
    """Augmented IPW (doubly robust) ATE and ATT with influence-function SEs.

    ``ci_target="sample"``: intervals for the conditional (sample) ATE/ATT, influence values
    ``psi_i - tau_hat_i`` and ``(num_i - T_i tau_hat_i) / p`` with ``tau_hat = mu1 - mu0``;
    ``"population"``: ``psi_i`` and ``(num_i - T_i ATT) / p`` (see the module docstring).
    Computed from the moments of the per-unit totals of :func:`aipw_terms`
    (:func:`aipw_from_moments`), the statistic the Spark engine merges over partitions.
    """
    from causalrec.ope.estimators import Moments

    _check_ci_target(ci_target)
    z = aipw_unit_totals(aipw_terms(t, y, e, mu0, mu1), groups)
    return aipw_from_moments(Moments.of_array(z), ci_level=ci_level, ci_target=ci_target)


def dml_final_stage_scores(y_res: np.ndarray, t_res: np.ndarray, phi: np.ndarray, b: np.ndarray,
                           sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-row scores of DML's linear final stage and its Jacobian.

    The final stage solves ``sum_i w_i s_i(b) = 0`` with
    ``s_i(b) = w_i t~_i phi_i (y~_i - t~_i phi_i' b)`` (``y~ = Y - m(X)``,
    ``t~ = T - e(X)``, ``phi = [1, x]``); ``J = mean(w t~^2 phi phi')``. Then
    ``b_hat - b = J^{-1} mean(s_i) + o_p(n^{-1/2})``: ``J^{-1} s_i`` are ``b``'s influence
    values, which a cluster-robust variance sums within clusters.
    """
    w = np.ones(len(y_res)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    resid = y_res - t_res * (phi @ b)
    scores = (w * t_res * resid)[:, None] * phi
    jac = (phi * (w * t_res ** 2)[:, None]).T @ phi / len(y_res)
    return scores, jac


def dml(X: np.ndarray, t: np.ndarray, y: np.ndarray, *, model_y: Any, model_t: Any,
        effect_modifiers: np.ndarray | None = None, n_folds: int = 5,
        groups: np.ndarray | None = None, seed: int = 0, ci_level: float = 0.95,
        ci_target: str = "sample") -> tuple[list[Estimate], Any]:
    """ATE and ATT from econml's ``LinearDML`` with explicit nuisance models.

    ``X`` are the controls ``W`` (embeddings, covariates, or row numbers for
    ``Precomputed*`` nuisances); ``effect_modifiers`` the low-dimensional ``x`` of the final
    stage ``theta(x) = phi(x)' b``, ``phi = [1, x]`` (``None``: constant effect).
    Returns the estimates and the fitted econml estimator.

    Point estimates are econml's: ``ATE = mean_i theta(x_i)``, ``ATT`` its mean over the
    exposed rows. Standard errors come from the final stage's scores
    (:func:`dml_final_stage_scores`), not from econml's inference, for two reasons:
    econml 0.17's final stage is HC0 with ``groups`` driving only the folds, so rows of
    one user would count as independent. The influence value of the ATE is
    ``mean(phi)' J^{-1} s_i`` for ``ci_target="sample"`` (the covariates held fixed: the
    conditional ATE ``mean_i theta(x_i)`` of the analysed rows, as econml's
    ``ate_inference().stderr_mean``) and ``(theta(x_i) - ATE) + mean(phi)' J^{-1} s_i`` for
    ``"population"`` (ATT: ``mean_{T=1}(phi)' J^{-1} s_i``, plus ``T_i / p (theta(x_i) -
    ATT)`` for the population), clustered by ``groups`` when given
    (:func:`causalrec.inference.cluster_se`).
    """
    from causalrec.errors import require

    _check_ci_target(ci_target)
    econml_dml = require("econml.dml", "DML")
    est = econml_dml.LinearDML(model_y=model_y, model_t=model_t, discrete_treatment=True,
                               cv=n_folds, random_state=seed)
    Xm = effect_modifiers
    n = len(t)
    # econml's own interval machinery is not used (see the docstring): no inference, cached residuals
    est.fit(y.astype(float), t.astype(int), X=Xm, W=X, groups=groups, cache_values=True, inference=None)
    y_res, t_res, x_cached, _ = est.residuals_
    y_res, t_res = np.asarray(y_res, dtype=float).ravel(), np.asarray(t_res, dtype=float).reshape(n, -1)[:, 0]
    if Xm is not None and not np.allclose(np.asarray(x_cached, dtype=float), Xm):
        raise RuntimeError("econml returned the DML residuals in another row order")  # pragma: no cover
    phi = np.ones((n, 1)) if Xm is None else np.column_stack([np.ones(n), np.asarray(Xm, dtype=float)])
    b = np.concatenate([np.atleast_1d(np.squeeze(est.intercept_)),
                        np.atleast_1d(np.squeeze(est.coef_))]) if Xm is not None else \
        np.atleast_1d(np.squeeze(est.intercept_))
    scores, jac = dml_final_stage_scores(y_res, t_res, phi, b)
    infl_b = np.linalg.solve(jac, scores.T).T  # (n, k): influence values of b
    theta = phi @ b
    tf = t.astype(float)
    p = tf.mean()
    out = []
    for target, wts in (("ate", np.ones(n)), ("att", tf / p)):
        point = float(np.mean(wts * theta))
        lin = phi.T @ wts / n  # d point / d b
        psi = infl_b @ lin
        if ci_target == "population":  # the spread of theta(x_i) across rows is sampling error too
            psi = psi + wts * (theta - point)
        se = _se(psi, groups)
        out.append(Estimate.normal("dml", target, point, se, ci_level, null=0.0))
    return out, est
