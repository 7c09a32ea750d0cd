"""The one cross-fitting engine: named, out-of-fold nuisances and the fold models.

Rows are split into K folds (:mod:`causalrec.models.folds`); for each fold ``k`` a *nuisance
spec* is fitted on the other folds and predicts fold ``k``, so every row's prediction comes
from models that never saw it (Chernozhukov et al. 2018, "Double/debiased machine
learning"). In the spirit of econml's ``_crossfit``, the engine knows nothing about the
estimators: a spec says which nuisances it produces and how to fit and predict them;
the engine returns their out-of-fold predictions *by name*, the K fitted fold models and,
when a nuisance has several candidate models, every candidate's cross-fitted loss and the
one chosen. AIPW, DML (econml's final stage through ``Precomputed*``), CATE, DR labels,
CUPAC and OPE's DR all take their nuisances from here, so a run fits each nuisance once.

A spec is an object with

- ``names``: the nuisances it produces (e.g. ``("e", "mu0", "mu1")``);
- ``fit(data, train) -> fold_model``: fit on the rows ``train`` of ``data``;
- ``predict(fold_model, data, rows) -> {name: {candidate: array}}``: predictions for ``rows``;
- ``loss(name, pred, data) -> float`` (optional): the cross-fitted loss of one candidate's
  out-of-fold predictions, for the choice among candidates.

``data`` is a dict of row-aligned entries (arrays, DataFrames, lists of strings, or
``None``); :func:`take` subsets it. Specs here: :class:`SingleModel` (one scikit-learn
estimator, e.g. a CUPAC outcome model or a debiasing propensity) and
:class:`TreatmentOutcome` (``e = P(T=1|X)``, and T-learner ``mu0``, ``mu1``: the outcome
model fitted on the arm-``t`` training rows). The adapted text encoder's spec lives in
:mod:`causalrec.models.adapted`; OPE's counterfactual ``q(x, a, k)`` uses the fold models
(``CrossFit.models``) to predict other actions of the held-out rows.

Candidate selection: pass a list (or a dict name -> model) instead of one model; each
candidate is cross-fitted on the same folds and the one with the smallest cross-fitted
loss (log-loss for probabilities, mean squared error for outcomes, on the rows the
nuisance is defined on) is used; ``CrossFit.selection`` records the choice and all losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier

from causalrec.errors import InputError
from causalrec.models.folds import FoldSpec, make_folds

_METHODS = ("predict", "predict_proba", "decision_function")


# -- data access ---------------------------------------------------------------------
def take(data: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """The rows ``rows`` of every row-aligned entry of ``data`` (``None`` stays ``None``)."""
    out = {}
    for k, v in data.items():
        if v is None:
            out[k] = None
        elif hasattr(v, "iloc"):
            out[k] = v.iloc[rows]
        elif isinstance(v, list):
            out[k] = [v[i] for i in rows]
        else:
            out[k] = np.asarray(v)[rows]
    return out


def n_rows(data: dict[str, Any]) -> int:
    lengths = {k: len(v) for k, v in data.items() if v is not None}
    if not lengths:
        raise InputError("no data to cross-fit", column="X")
    if len(set(lengths.values())) != 1:
        raise InputError(f"entries differ in length: {lengths}", column=min(lengths, key=lengths.get),
                         fix="pass one row per observation in every array")
    return next(iter(lengths.values()))


# -- candidates and losses -------------------------------------------------------------
def candidates(models) -> dict[str, Any]:
    """``{name: model}`` from one model, a list of models, or a dict (names from class names)."""
    if isinstance(models, dict):
        if not models:
            raise InputError("an empty set of candidate models", column="model", fix="pass at least one model")
        return dict(models)
    if not isinstance(models, (list, tuple)):
        models = [models]
    if not models:
        raise InputError("an empty set of candidate models", column="model", fix="pass at least one model")
    out: dict[str, Any] = {}
    for m in models:
        base = type(m).__name__
        name, j = base, 2
        while name in out:
            name, j = f"{base}#{j}", j + 1
        out[name] = m
    return out


def log_loss(t: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> float:
    """Mean binary cross-entropy of probabilities ``p`` for 0/1 labels ``t`` (``p`` kept in [1e-12, 1-1e-12])."""
    p = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    ll = -(t * np.log(p) + (1 - t) * np.log1p(-p))
    return float(np.average(ll, weights=w))


def mse(y: np.ndarray, pred: np.ndarray, w: np.ndarray | None = None) -> float:
    return float(np.average((np.asarray(y, dtype=float) - np.asarray(pred, dtype=float)) ** 2, weights=w))


# -- the engine ----------------------------------------------------------------------
@dataclass
class CrossFit:
    """What :func:`cross_fit` returns.

    ``predictions[name]``: out-of-fold predictions of the chosen candidate, one per row;
    ``candidates[name][cand]``: those of every candidate; ``folds``: fold id per row;
    ``models[k]``: the spec's fold model fitted without fold ``k``; ``selection[name]``:
    ``{"chosen", "loss", "losses": {cand: loss}}``; ``n_fits``: number of fold fits.
    """

    predictions: dict[str, np.ndarray]
    folds: np.ndarray
    models: list[Any] = field(repr=False)
    spec: Any = field(repr=False)
    candidates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    selection: dict[str, dict[str, Any]] = field(default_factory=dict)
    cross_fitted: bool = True

    def __getitem__(self, name: str) -> np.ndarray:
        return self.predictions[name]

    @property
    def n_fits(self) -> int:
        return len(self.models)

    def chosen(self, name: str) -> str | None:
        return self.selection.get(name, {}).get("chosen")

    def predict_folds(self, data: dict[str, Any], folds: np.ndarray) -> dict[str, np.ndarray]:
        """Predict new rows (e.g. counterfactual actions of held-out rows), each row with
        the model of its fold ``folds[i]`` (the model that did not see fold ``folds[i]``)."""
        n = n_rows(data)
        folds = np.asarray(folds)
        out: dict[str, np.ndarray] = {}
        for k in np.unique(folds):
            rows = np.flatnonzero(folds == k)
            pred = self.spec.predict(self.models[int(k)], data, rows)
            for name, by_cand in pred.items():
                p = np.asarray(by_cand[self.chosen(name) or next(iter(by_cand))], dtype=np.float64)
                if name not in out:
                    out[name] = np.full((n,) + p.shape[1:], np.nan)
                out[name][rows] = p
        return out

    def selection_report(self) -> dict[str, dict[str, Any]]:
        """JSON-ready choice and losses per nuisance."""
        return {k: {"chosen": v["chosen"], "loss": v["loss"], "loss_name": v.get("loss_name"),
                    "losses": dict(v["losses"])} for k, v in self.selection.items()}


def cross_fit(spec, data: dict[str, Any], folds: np.ndarray | FoldSpec | None = None, *,
              groups=None, stratify=None, predict: bool = True) -> CrossFit:
    """Cross-fit ``spec`` on ``data`` (see the module docstring).

    ``folds``: fold ids (n,), a :class:`FoldSpec` (default ``FoldSpec()``: 5 shuffled
    splits), with ``groups``/``stratify`` passed to it. A single fold fits once on all
    rows (predictions are then in-sample: ``cross_fitted=False``). ``predict=False`` only
    fits the fold models (e.g. when only counterfactual predictions are needed).
    """
    n = n_rows(data)
    if folds is None or isinstance(folds, FoldSpec):
        folds = (folds or FoldSpec()).assign(n, groups=groups, stratify=stratify)
    folds = np.asarray(folds, dtype=np.int64)
    if folds.shape != (n,):
        raise InputError(f"folds has {folds.shape[0]} entries for {n} rows", column="folds",
                         fix="pass one fold id per row")
    ks = np.unique(folds)
    if ks.min() < 0:
        raise InputError("fold ids must be >= 0", column="folds")
    K = int(ks.max()) + 1
    single = len(ks) == 1
    models: list[Any] = [None] * K
    oof: dict[str, dict[str, np.ndarray]] = {}
    for k in ks:
        test = np.flatnonzero(folds == k)
        train = np.arange(n) if single else np.flatnonzero(folds != k)
        m = spec.fit(data, train)
        models[int(k)] = m
        if not predict:
            continue
        for name, by_cand in spec.predict(m, data, test).items():
            slot = oof.setdefault(name, {})
            for cand, p in by_cand.items():
                p = np.asarray(p, dtype=np.float64)
                if cand not in slot:
                    slot[cand] = np.full((n,) + p.shape[1:], np.nan)
                slot[cand][test] = p
    selection: dict[str, dict[str, Any]] = {}
    chosen: dict[str, np.ndarray] = {}
    for name, by_cand in oof.items():
        losses = {c: (spec.loss(name, p, data) if hasattr(spec, "loss") else float("nan"))
                  for c, p in by_cand.items()}
        finite = {c: v for c, v in losses.items() if np.isfinite(v)}
        best = min(finite, key=finite.get) if finite else next(iter(by_cand))
        selection[name] = {"chosen": best, "loss": losses[best], "losses": losses,
                           "loss_name": getattr(spec, "loss_names", {}).get(name)}
        chosen[name] = by_cand[best]
    return CrossFit(predictions=chosen, folds=folds, models=models, spec=spec, candidates=oof,
                    selection=selection, cross_fitted=not single)


# -- specs -----------------------------------------------------------------------------
def _fit(model, X, y, sw):
    m = clone(model)
    if sw is None:
        return m.fit(X, y)
    return m.fit(X, y, sample_weight=sw)


class SingleModel:
    """One nuisance ``name`` from a scikit-learn estimator (or candidates) of ``data["y"]`` on
    ``data["X"]``.

    ``method``: ``predict``, ``predict_proba`` (columns in the order of ``np.unique(y)``
    even when a fold's training rows miss a class) or ``decision_function``; ``fit_mask``
    (bool, n): fit only on these rows of the training folds; prediction rows come from
    ``data["predict_X"]`` when present (e.g. the treatment column set to 1).
    """

    def __init__(self, model, *, name: str = "pred", method: str = "predict", fit_mask=None,
                 classes=None):
        if method not in _METHODS:
            raise InputError(f"unknown method {method!r}", column="method", fix=f"use one of {_METHODS}")
        self.cands = candidates(model)
        self.name = name
        self.method = method
        self.fit_mask = None if fit_mask is None else np.asarray(fit_mask, dtype=bool)
        self.classes = classes
        self.names = (name,)
        self.loss_names = {name: "log_loss" if method == "predict_proba" else "mse"}

    def fit(self, data, train):
        if self.fit_mask is not None:
            train = train[self.fit_mask[train]]
        if len(train) == 0:
            raise InputError("a fold has no training rows (check fit_mask)", column="fit_mask",
                             fix="use fewer folds, or check that the masked rows exist in every fold")
        d = take({"X": data["X"], "y": data["y"], "w": data.get("sample_weight")}, train)
        return {c: _fit(m, d["X"], d["y"], d["w"]) for c, m in self.cands.items()}

    def predict(self, fitted, data, rows):
        X = data.get("predict_X")
        X = data["X"] if X is None else X
        Xr = take({"X": X}, rows)["X"]
        out = {}
        for c, m in fitted.items():
            p = np.asarray(getattr(m, self.method)(Xr))
            if self.classes is not None and hasattr(m, "classes_") and len(m.classes_) != len(self.classes):
                # A class missing from this training fold: put its column back (probability 0),
                # so every fold returns columns in the order of np.unique(y), as cross_val_predict does.
                full = np.zeros((len(rows), len(self.classes)))
                full[:, np.searchsorted(self.classes, m.classes_)] = p
                p = full
            out[c] = p
        return {self.name: out}

    def loss(self, name, pred, data):
        y = np.asarray(data["y"])
        rows = np.ones(len(y), bool) if self.fit_mask is None else self.fit_mask
        w = data.get("sample_weight")
        w = None if w is None else np.asarray(w, dtype=float)[rows]
        if self.method == "predict_proba":
            if pred.ndim == 2 and self.classes is not None:
                idx = np.searchsorted(self.classes, y[rows])
                p = pred[rows][np.arange(rows.sum()), idx]
                return float(np.average(-np.log(np.clip(p, 1e-12, 1.0)), weights=w))
            return float("nan")
        if self.method == "predict" and pred.ndim == 1:
            return mse(y[rows], pred[rows], w)
        return float("nan")


class TreatmentOutcome:
    """Nuisances of a binary treatment: ``e = P(T = 1 | X)`` (from ``predict_proba[:, 1]``)
    and the T-learner outcome means ``mu0 = E[Y | T=0, X]``, ``mu1 = E[Y | T=1, X]`` (the
    outcome model fitted on the arm-``t`` rows of the training folds, predicting every
    held-out row). ``data``: ``X``, ``t`` (0/1), ``y``, optional ``sample_weight``.

    ``propensity`` / ``outcome``: a model, a list or a dict of candidates; ``propensity=None``
    fits no propensity (e.g. the log holds the exposure probabilities): only ``mu0``, ``mu1``.
    ``joint``: optional candidates that model all three at once (a shared representation,
    DragonNet-style): ``fit(X, np.column_stack([t, y]))``, ``predict(X) -> [e, mu0, mu1]``
    (n, 3); each competes, per nuisance, with the separate models under the name
    ``"joint:<name>"`` (``outcome=None``: the joint models alone, ``e`` included). Losses: log-loss of ``e`` on all rows, MSE of ``mu_t`` on the
    arm-``t`` rows (where it is observed).
    """

    loss_names = {"e": "log_loss", "mu0": "mse (control rows)", "mu1": "mse (treated rows)"}

    def __init__(self, propensity, outcome, joint=None):
        joint_only = outcome is None and joint is not None
        self.propensity = None if propensity is None else candidates(propensity)
        self.outcome = {} if joint_only else candidates(outcome)
        self.joint = {} if joint is None else {f"joint:{k}": v for k, v in candidates(joint).items()}
        # e is a nuisance unless the propensities are known (propensity=None beside an outcome model)
        self.names = ("e", "mu0", "mu1") if propensity is not None or joint_only else ("mu0", "mu1")

    def fit(self, data, train):
        cols = {"X": data["X"], "t": data["t"], "y": data["y"], "w": data.get("sample_weight")}
        t_all = np.asarray(data["t"]).astype(int)
        t = t_all[train]
        if len(np.unique(t)) < 2:
            raise InputError("a training fold has only one treatment arm", column="treatment",
                             fix="use fewer folds, or check that both arms have enough rows")
        fitted: dict[str, dict[str, Any]] = {}
        need_all = self.propensity is not None or self.joint
        d = take(cols, train) if need_all else None
        if self.propensity is not None:
            fitted["e"] = {c: _fit(m, d["X"], t, d["w"]) for c, m in self.propensity.items()}
        for arm in (0, 1):
            sub = take(cols, train[t == arm])  # index the original rows once (no copy of a copy)
            fitted[f"mu{arm}"] = {c: _fit(m, sub["X"], sub["y"], sub["w"]) for c, m in self.outcome.items()}
        if self.joint:
            ty = np.column_stack([t, np.asarray(d["y"], dtype=float)])
            fitted["joint"] = {c: _fit(m, d["X"], ty, d["w"]) for c, m in self.joint.items()}
        return fitted

    def predict(self, fitted, data, rows):
        X = take({"X": data["X"]}, rows)["X"]
        out: dict[str, dict[str, np.ndarray]] = {}
        if "e" in fitted:
            out["e"] = {}
            for c, m in fitted["e"].items():
                p = np.asarray(m.predict_proba(X))
                out["e"][c] = p[:, list(m.classes_).index(1)] if p.ndim == 2 else p
        for arm in ("mu0", "mu1"):
            out[arm] = {c: np.asarray(m.predict(X), dtype=float).ravel() for c, m in fitted[arm].items()}
        for c, m in fitted.get("joint", {}).items():
            p = np.asarray(m.predict(X), dtype=float)
            if p.ndim != 2 or p.shape[1] != 3:
                raise InputError(f"the joint nuisance model {c} must predict [e, mu0, mu1] (n, 3), got shape "
                                 f"{p.shape}", column="joint", fix="return np.column_stack([e, mu0, mu1])")
            if "e" in self.names:
                out.setdefault("e", {})[c] = p[:, 0]
            out["mu0"][c], out["mu1"][c] = p[:, 1], p[:, 2]
        return out

    def loss(self, name, pred, data):
        t = np.asarray(data["t"]).astype(int)
        w = data.get("sample_weight")
        w = None if w is None else np.asarray(w, dtype=float)
        if name == "e":
            return log_loss(t, pred, w)
        rows = t == int(name[-1])
        return mse(np.asarray(data["y"], dtype=float)[rows], pred[rows], None if w is None else w[rows])


# -- the classic entry point -------------------------------------------------------------
def cross_fit_predict(model, X, y, *, n_folds: int = 5, groups=None, method: str = "predict",
                      sample_weight=None, random_state: int = 0, folds=None, fit_mask=None,
                      predict_X=None, return_folds: bool = False):
    """Out-of-fold predictions of one estimator (cloned per fold): :func:`cross_fit` with a
    :class:`SingleModel` spec.

    Parameters
    ----------
    model:
        Unfitted estimator (``PropensityModel``, ``OutcomeModel`` or any scikit-learn model),
        or candidates (list / dict; the smallest cross-fitted loss wins).
    X, y:
        Features (n, p) and target (n,).
    n_folds, groups, random_state:
        Fold construction (see :func:`causalrec.models.folds.make_folds`); classifiers are
        stratified by ``y``.
    method:
        ``"predict"``, ``"predict_proba"`` (returns (n, n_classes), columns in the order of
        ``np.unique(y)``) or ``"decision_function"``.
    sample_weight:
        Passed to ``fit`` on each training fold.
    folds:
        Precomputed fold ids (n,), e.g. to share folds between nuisances; overrides
        ``n_folds``/``groups``.
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
        raise InputError(f"X has {X_arr.shape[0]} rows but y has {n}", column="X",
                         fix="pass one feature row per label")
    PX = None if predict_X is None else (predict_X if hasattr(predict_X, "iloc") else np.asarray(predict_X))
    if PX is not None and PX.shape[0] != n:
        raise InputError(f"predict_X has {PX.shape[0]} rows, expected {n}", column="predict_X",
                         fix="pass one prediction row per training row")
    if folds is None:
        first = next(iter(candidates(model).values()))
        strat = y_arr if is_classifier(first) and y_arr.ndim == 1 else None
        folds = make_folds(n, n_folds, groups=groups, stratify=strat, random_state=random_state)
    classes = np.unique(y_arr) if method == "predict_proba" and y_arr.ndim == 1 else None
    spec = SingleModel(model, method=method, fit_mask=fit_mask, classes=classes)
    data = {"X": X_arr, "y": y_arr, "predict_X": PX,
            "sample_weight": None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)}
    cf = cross_fit(spec, data, folds)
    pred = cf["pred"]
    return (pred, cf.folds) if return_folds else pred


__all__ = ["CrossFit", "cross_fit", "cross_fit_predict", "make_folds", "SingleModel", "TreatmentOutcome",
           "candidates", "take", "log_loss", "mse", "FoldSpec"]
