"""Nuisance models for causal estimators: propensity e(x) = P(T=1|x) and outcome mu(x) = E[Y|x].

Both are scikit-learn estimators (hyper-parameters only in ``__init__``; ``clone``,
pickling and econml's cross-fitting work) backed by a small torch MLP over the
design matrix ``[u, i, u*i, covariates]``. :mod:`causalrec.models.crossfit` is the one
cross-fitting engine every DR/DML/AIPW/CATE/OPE-DR estimator uses (named nuisances,
fold models, candidate selection); :mod:`causalrec.models.folds` the one fold spec. ``adapted`` holds a
CausalBERT-style encoder fine-tuned jointly with propensity and outcome heads.

Public API::

    PropensityModel(...).fit(X, t).predict_proba(X)      # calibrated + clipped
    OutcomeModel(loss="mse"|"bce").fit(X, y).predict(X)
    cross_fit(TreatmentOutcome(prop, outcome), {"X": X, "t": t, "y": y}, folds) -> CrossFit
        .predictions["e"|"mu0"|"mu1"], .models (one per fold), .selection (candidate losses)
    cross_fit_predict(model, X, y, n_folds=5, groups=None, method="predict")
    make_folds(n, n_folds=5, groups=None, stratify=None, random_state=0)
    row_hash_folds(start, n, n_folds, seed), cluster_hash_folds(keys, n_folds, seed)
    FoldSpec(n_folds, kind="split"|"row_hash"|"cluster_hash", seed).assign(n, groups=...)
    clip_propensity(p, clip) -> (clipped, share_clipped)
    AdaptedTextModel(...).fit(texts, t, y).predict(texts) -> AdaptedPredictions(e_hat, mu0, mu1)
    PrecomputedRegressor(m_oof), PrecomputedClassifier(e_oof)   # econml on stored nuisances (W = row numbers)
    PrecomputedArmRegressor(mu0, mu1)                            # econml DR learners ([X, W, T] layout)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PropensityModel": "causalrec.models.propensity",
    "OutcomeModel": "causalrec.models.outcome",
    "clip_propensity": "causalrec.models.calibration",
    "expected_calibration_error": "causalrec.models.calibration",
    "cross_fit_predict": "causalrec.models.crossfit",
    "cross_fit": "causalrec.models.crossfit",
    "CrossFit": "causalrec.models.crossfit",
    "SingleModel": "causalrec.models.crossfit",
    "TreatmentOutcome": "causalrec.models.crossfit",
    "make_folds": "causalrec.models.folds",
    "row_hash_folds": "causalrec.models.folds",
    "cluster_hash_folds": "causalrec.models.folds",
    "FoldSpec": "causalrec.models.folds",
    "AdaptedTextModel": "causalrec.models.adapted",
    "AdaptedPredictions": "causalrec.models.adapted",
    "cross_fit_adapted": "causalrec.models.adapted",
    "PrecomputedClassifier": "causalrec.models.precomputed",
    "PrecomputedRegressor": "causalrec.models.precomputed",
    "PrecomputedArmRegressor": "causalrec.models.precomputed",
    "AdaptedSpec": "causalrec.models.adapted",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'causalrec.models' has no attribute {name!r}")


def __dir__():
    return __all__
