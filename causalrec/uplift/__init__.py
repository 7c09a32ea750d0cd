"""Uplift: what exposing (recommending) items did to an outcome.

Public API::

    estimate(logs, *, schema=None, treatment=..., outcome=..., user_text=None, item_text=None,
             items=None, item_key=None, covariates=(), features="auto",
             methods=("naive", "ipw", "aipw", "dml"), n_folds=5, clip=0.01, trim=None, ...)
        -> UpliftResult      # targets "ate" and "att"; .nuisance holds e_hat, mu0, mu1, X, t, y, groups
    naive / ipw / aipw / dml  # the estimators on arrays (causalrec.uplift.ate)

Heterogeneous effects, curves, segments and refutations live in ``cate``,
``curves``, ``segments`` and ``refute``. Heavy libraries load lazily.
"""

from __future__ import annotations

# ``estimate`` is both a submodule and the function it defines: import the
# function eagerly so the package attribute is the function, not the module.
from causalrec.uplift.ate import aipw, aipw_scores, dml, ipw, naive
from causalrec.uplift.estimate import build_features, cross_fit_nuisances, estimate
from causalrec.uplift.result import UpliftResult

__all__ = ["estimate", "build_features", "cross_fit_nuisances", "UpliftResult",
           "naive", "ipw", "aipw", "aipw_scores", "dml"]
