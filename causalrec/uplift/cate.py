"""Conditional average treatment effects (CATE) through econml, with causalrec's
nuisance models.

``tau(x) = E[Y(1) - Y(0) | X = x]`` under unconfoundedness given ``(X, W)``
and overlap. Three econml estimators share one cross-fitting engine and differ
only in their final stage:

* ``linear_dml`` -- :class:`econml.dml.LinearDML`: residualise ``Y`` and ``T`` on
  ``(X, W)`` with cross-fitted nuisances, then regress ``Y - m(X,W)`` on
  ``(T - e(X,W)) * [1, X]``: ``tau(x) = theta' [1, x]`` with OLS intervals.
* ``causal_forest`` -- :class:`econml.dml.CausalForestDML`: same residuals, a
  generalised random forest as final stage (non-linear ``tau``; intervals from
  the bootstrap of little bags).
* ``dr_learner`` -- :class:`econml.dr.LinearDRLearner`: regress the doubly robust
  pseudo-outcome ``mu1 - mu0 + T(Y-mu1)/e - (1-T)(Y-mu0)/(1-e)`` on ``[1, X]``.

The nuisance models are always explicit: by default causalrec's
``OutcomeModel`` / ``PropensityModel`` (torch MLPs, calibrated and clipped
propensities), never econml's ``'auto'`` model selection, which is orders of
magnitude slower on large data (DESIGN.md section 7). Effect modifiers ``X``
should be low-dimensional (a few covariates or leading principal components of
the embeddings); high-dimensional embeddings go to the controls ``W``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causalrec.errors import InputError, require
from causalrec.results import jsonable

METHODS = ("linear_dml", "causal_forest", "dr_learner")


@dataclass
class CateResult:
    """Per-row CATE predictions with intervals, and the fitted econml estimator."""

    method: str
    ci_level: float
    tau: np.ndarray = field(repr=False)
    tau_low: np.ndarray | None = field(default=None, repr=False)
    tau_high: np.ndarray | None = field(default=None, repr=False)
    ate: float = float("nan")
    ate_se: float = float("nan")
    ate_ci: tuple[float, float] = (float("nan"), float("nan"))
    feature_names: list[str] = field(default_factory=list)
    estimator: Any = field(default=None, repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.tau.shape[0])

    @property
    def share_significant(self) -> float:
        """Share of rows whose CATE interval excludes zero (unadjusted, pointwise)."""
        if self.tau_low is None:
            return float("nan")
        return float(np.mean((self.tau_low > 0) | (self.tau_high < 0)))

    def distribution(self) -> pd.DataFrame:
        q = [0.05, 0.25, 0.5, 0.75, 0.95]
        return pd.DataFrame({"quantile": q, "cate": np.quantile(self.tau, q)})

    def to_dict(self) -> dict:
        return jsonable({
            "method": self.method, "ci_level": self.ci_level, "n_rows": self.n_rows,
            "ate": self.ate, "ate_se": self.ate_se, "ate_ci": list(self.ate_ci),
            "cate_sd": float(np.std(self.tau)), "share_ci_excludes_zero": self.share_significant,
            "cate_quantiles": self.distribution().to_dict(orient="list"), "effect_modifiers": self.feature_names,
        })

    def summary(self) -> str:
        q = np.quantile(self.tau, [0.05, 0.5, 0.95])
        return (f"CATE ({self.method}, n={self.n_rows:,}): ATE {self.ate:.4g} "
                f"[{self.ate_ci[0]:.4g}, {self.ate_ci[1]:.4g}]; tau p05/p50/p95 = "
                f"{q[0]:.4g}/{q[1]:.4g}/{q[2]:.4g}; {self.share_significant:.1%} of rows with CI excluding 0")


def default_nuisances() -> tuple[Any, Any]:
    """causalrec's outcome and propensity models (torch MLPs)."""
    models = require("causalrec.models", "CATE with causalrec's nuisance models")
    return models.OutcomeModel(), models.PropensityModel()


def make_cate_estimator(method: str = "linear_dml", *, model_y=None, model_t=None, cv: int = 5,
                        random_state: int = 0, n_estimators: int = 200, min_samples_leaf: int = 20):
    """An unfitted econml estimator with explicit nuisance models (``model_y``
    regressor for the outcome, ``model_t`` classifier for the treatment)."""
    if method not in METHODS:
        raise InputError(f"unknown CATE method {method!r}", column="cate", fix=f"use one of {', '.join(METHODS)}")
    if model_y is None or model_t is None:
        dy, dt = default_nuisances()
        model_y = dy if model_y is None else model_y
        model_t = dt if model_t is None else model_t
    if hasattr(model_y, "predict_proba"):
        raise InputError("the outcome model has predict_proba, so econml would treat it as a classifier",
                         column="model_y", fix="pass a regressor (no predict_proba) as the outcome model")
    if method == "linear_dml":
        dml = require("econml.dml", "CATE")
        return dml.LinearDML(model_y=model_y, model_t=model_t, discrete_treatment=True, cv=cv,
                             random_state=random_state)
    if method == "causal_forest":
        dml = require("econml.dml", "CATE")
        n_est = max(4, int(n_estimators) // 4 * 4)  # econml needs a multiple of subforest_size=4
        return dml.CausalForestDML(model_y=model_y, model_t=model_t, discrete_treatment=True, cv=cv,
                                   n_estimators=n_est, min_samples_leaf=min_samples_leaf,
                                   random_state=random_state)
    dr = require("econml.dr", "CATE")
    return dr.LinearDRLearner(model_propensity=model_t, model_regression=model_y, cv=cv, random_state=random_state)


def fit_cate(
    y, t, X, *,
    W=None,
    method: str = "linear_dml",
    model_y=None,
    model_t=None,
    feature_names: list[str] | None = None,
    cv: int = 5,
    ci_level: float = 0.95,
    random_state: int = 0,
    X_predict=None,
    **kwargs: Any,
) -> CateResult:
    """Fit a CATE estimator (module docstring) and predict ``tau`` with intervals.

    ``X``: effect modifiers (n, k), ``W``: further controls (n, p) used only by
    the nuisance models. Predictions are for ``X_predict`` (default ``X``);
    predict on rows the estimator did not see when the result feeds an uplift
    curve.
    """
    y = np.asarray(y, dtype=float).reshape(-1)
    t = np.asarray(t).reshape(-1).astype(int)
    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    if not (y.shape[0] == t.shape[0] == X.shape[0]):
        raise InputError("outcome, treatment and effect modifiers differ in length", column="X",
                         fix="pass one row of effect modifiers per observation")
    if set(np.unique(t)) - {0, 1}:
        raise InputError("treatment must be binary 0/1", column="treatment", fix="recode the treatment column")
    est = make_cate_estimator(method, model_y=model_y, model_t=model_t, cv=cv, random_state=random_state, **kwargs)
    W = None if W is None else np.asarray(W, dtype=float)
    est.fit(y, t, X=X, W=W)
    Xp = X if X_predict is None else np.asarray(X_predict, dtype=float)
    Xp = Xp[:, None] if Xp.ndim == 1 else Xp
    alpha = 1.0 - ci_level
    tau = np.asarray(est.effect(Xp), dtype=float).reshape(-1)
    lo, hi = est.effect_interval(Xp, alpha=alpha)
    if method == "causal_forest":
        # the forest's own doubly robust ATE over the training rows and its standard error;
        # ate_inference().stderr_mean is an RMS of pointwise SEs, 3.4x too wide (DESIGN.md s. 7)
        inf = est.ate__inference()
        ate, ate_se = float(np.asarray(inf.point_estimate).reshape(-1)[0]), float(
            np.asarray(inf.stderr).reshape(-1)[0])
        ci = inf.conf_int(alpha=alpha)
    else:
        inf = est.ate_inference(X)
        ate, ate_se = float(np.asarray(inf.mean_point).reshape(-1)[0]), float(
            np.asarray(inf.stderr_mean).reshape(-1)[0])
        ci = inf.conf_int_mean(alpha=alpha)
    return CateResult(
        method=method, ci_level=ci_level, tau=tau,
        tau_low=np.asarray(lo, float).reshape(-1), tau_high=np.asarray(hi, float).reshape(-1),
        ate=ate, ate_se=ate_se,
        ate_ci=(float(np.asarray(ci[0]).reshape(-1)[0]), float(np.asarray(ci[1]).reshape(-1)[0])),
        feature_names=list(feature_names) if feature_names is not None else [f"x{j}" for j in range(X.shape[1])],
        estimator=est,
    )
