"""Cross-fitting: out-of-fold nuisance predictions, written once for every estimator.

Rows are split into K folds; for each fold k the model is fitted on the other folds
and predicts fold k, so every row's prediction comes from a model that never saw
it (Chernozhukov et al. 2018, "Double/debiased machine learning"). AIPW, DML,
DR labels and OPE's DR all take their nuisances from here.

Folds are grouped (no user in two folds, ``GroupKFold``-style) when ``groups`` is
given, so a user's repeated impressions cannot leak between training and
prediction, and stratified by label for classifiers. ``fit_mask`` fits on a subset
of the training folds (e.g. the treated rows for mu1 in a T-learner) while still
predicting every held-out row; ``predict_X`` predicts at other covariate values
(e.g. the treatment column set to 1 for an S-learner).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone, is_classifier

from causalrec.errors import InputError

_METHODS = ("predict", "predict_proba", "decision_function")


def make_folds(n: int, n_folds: int = 5, *, groups=None, stratify=None, random_state: int = 0) -> np.ndarray:
    """Fold id (0..n_folds-1) of each of ``n`` rows: shuffled, grouped and/or stratified."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    if n_folds < 2:
        raise InputError(f"n_folds must be >= 2, got {n_folds}", column="n_folds")
    if n < n_folds:
        raise InputError(f"{n} rows cannot be split into {n_folds} folds", column="n_folds",
                         fix="use fewer folds or more rows")
    idx = np.zeros(n)
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise InputError(f"groups has {len(groups)} entries for {n} rows", column="groups")
        n_groups = len(np.unique(groups))
        if n_groups < n_folds:
            raise InputError(f"only {n_groups} distinct groups for {n_folds} folds", column="groups",
                             fix="use fewer folds, or no grouping")
        if stratify is not None:
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
            splits = splitter.split(idx, stratify, groups)
        else:
            splitter = GroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
            splits = splitter.split(idx, groups=groups)
    elif stratify is not None:
        _, counts = np.unique(stratify, return_counts=True)
        if counts.min() < n_folds:
            splits = KFold(n_folds, shuffle=True, random_state=random_state).split(idx)
        else:
            splits = StratifiedKFold(n_folds, shuffle=True, random_state=random_state).split(idx, stratify)
    else:
        splits = KFold(n_folds, shuffle=True, random_state=random_state).split(idx)
    folds = np.full(n, -1, dtype=np.int64)
    for k, (_, test) in enumerate(splits):
        folds[test] = k
    return folds


def cross_fit_predict(model, X, y, *, n_folds: int = 5, groups=None, method: str = "predict",
                      sample_weight=None, random_state: int = 0, folds=None, fit_mask=None,
                      predict_X=None, return_folds: bool = False):
    """Out-of-fold predictions of ``model`` (a scikit-learn estimator, cloned per fold).

    Parameters
    ----------
    model:
        Unfitted estimator (``PropensityModel``, ``OutcomeModel`` or any scikit-learn model).
    X, y:
        Features (n, p) and target (n,).
    n_folds, groups, random_state:
        Fold construction (see ``make_folds``); classifiers are stratified by ``y``.
    method:
        ``"predict"``, ``"predict_proba"`` (returns (n, n_classes), columns in the order of
        ``np.unique(y)`` even when a fold's training rows miss a class) or ``"decision_function"``.
    sample_weight:
        Passed to ``fit`` on each training fold.
    folds:
        Precomputed fold ids (n,), e.g. to share folds between the propensity and the
        outcome model; overrides ``n_folds``/``groups``.
    fit_mask:
        Boolean (n,): fit only on these rows of the training folds; predict all held-out rows.
    predict_X:
        Features to predict at (n, p) instead of ``X`` (same rows).
    return_folds:
        Also return the fold ids.

    Returns
    -------
    ``pred`` (n,) or (n, k), or ``(pred, folds)``.
    """
    if method not in _METHODS:
        raise InputError(f"unknown method {method!r}", column="method", fix=f"use one of {_METHODS}")
    y_arr = np.asarray(y)
    n = len(y_arr)
    X_arr = X if hasattr(X, "iloc") else np.asarray(X)
    if X_arr.shape[0] != n:
        raise InputError(f"X has {X_arr.shape[0]} rows but y has {n}", column="X")
    PX = X_arr if predict_X is None else (predict_X if hasattr(predict_X, "iloc") else np.asarray(predict_X))
    if PX.shape[0] != n:
        raise InputError(f"predict_X has {PX.shape[0]} rows, expected {n}", column="predict_X")
    mask = np.ones(n, dtype=bool) if fit_mask is None else np.asarray(fit_mask, dtype=bool)
    if folds is None:
        strat = y_arr if is_classifier(model) and y_arr.ndim == 1 else None
        folds = make_folds(n, n_folds, groups=groups, stratify=strat, random_state=random_state)
    else:
        folds = np.asarray(folds)
        if len(folds) != n:
            raise InputError(f"folds has {len(folds)} entries for {n} rows", column="folds")
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)

    def rows(a, ix):
        return a.iloc[ix] if hasattr(a, "iloc") else a[ix]

    all_classes = np.unique(y_arr) if method == "predict_proba" and y_arr.ndim == 1 else None
    pred = None
    for k in np.unique(folds):
        test = np.flatnonzero(folds == k)
        train = np.flatnonzero((folds != k) & mask)
        if len(train) == 0:
            raise InputError(f"fold {k}: no training rows (check fit_mask)", column="fit_mask")
        m = clone(model)
        if sw is None:
            m.fit(rows(X_arr, train), y_arr[train])
        else:
            m.fit(rows(X_arr, train), y_arr[train], sample_weight=sw[train])
        p = np.asarray(getattr(m, method)(rows(PX, test)))
        if all_classes is not None and hasattr(m, "classes_") and len(m.classes_) != len(all_classes):
            # A class missing from this training fold: put its column back (probability 0),
            # so every fold returns columns in the order of np.unique(y), as cross_val_predict does.
            full = np.zeros((len(test), len(all_classes)))
            full[:, np.searchsorted(all_classes, m.classes_)] = p
            p = full
        if pred is None:
            pred = np.full((n,) + p.shape[1:], np.nan, dtype=np.float64)
        pred[test] = p
    return (pred, folds) if return_folds else pred
