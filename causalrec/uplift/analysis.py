"""``analyze``: diagnostics, heterogeneous effects, uplift curve and refutations
for a fitted :class:`~causalrec.uplift.UpliftResult`, from its nuisance arrays.

No new statistics live here: the function routes the result's cross-fitted
arrays (``e_hat``, ``mu0``, ``mu1``, ``X``, ``t``, ``y``) to
:mod:`causalrec.diagnostics`, :mod:`causalrec.uplift.segments`,
:mod:`causalrec.uplift.cate`, :mod:`causalrec.uplift.curves` and
:mod:`causalrec.uplift.refute`, and collects their result objects.

The uplift curve must rank rows by a CATE model that did not see them, so the
CATE model is fit on a random half of the rows (``honest_split``) and the curve
is evaluated on the other half with the cross-fitted nuisances; the reported
CATE distribution is that of the held-out half.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from causalrec.errors import InputError
from causalrec.results import jsonable


@dataclass
class UpliftAnalysis:
    """Everything beyond the average effects, as result objects (any may be ``None``)."""

    overlap: Any = None
    weights: Any = None
    balance: Any = None
    groups: list[Any] = field(default_factory=list)
    cate: Any = None
    curve: Any = None
    refutations: Any = None
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for name in ("overlap", "weights", "balance", "cate", "curve", "refutations"):
            obj = getattr(self, name)
            if obj is not None:
                d[name] = obj.to_dict()
        d["groups"] = [g.to_dict() for g in self.groups]
        d["notes"] = list(self.notes)
        d["config"] = self.config
        return jsonable(d)

    def summary(self) -> str:
        parts = [o.summary() for o in (self.overlap, self.weights, self.balance, self.cate, self.curve,
                                       self.refutations) if o is not None]
        parts += [g.summary(top=5) for g in self.groups]
        return "\n".join(parts + self.notes)


def analyze(
    result: Any,
    *,
    per_item: bool = True,
    segments: str | None = None,
    segment_values: np.ndarray | None = None,
    n_segments: int = 8,
    cate: str | None = "linear_dml",
    curves: bool = True,
    refute: bool = False,
    num_simulations: int = 10,
    n_boot: int = 200,
    cate_modifiers: int = 4,
    cate_models: tuple[Any, Any] | None = None,
    min_group_size: int = 30,
    balance_components: int = 5,
    honest_split: float = 0.5,
    refute_max_rows: int | None = 200_000,
    seed: int = 0,
    progress: bool | None = None,
) -> UpliftAnalysis:
    """Diagnostics and heterogeneity for ``result`` (an ``UpliftResult`` with nuisances).

    segments: a column of ``result.data`` (e.g. a user attribute), or ``"embedding"``
    for KMeans clusters (``n_segments``) of the user-text embeddings; ``segment_values``
    gives that column's labels directly (one per analysed row) when ``result.data``
    does not hold it.
    cate: ``linear_dml``, ``causal_forest``, ``dr_learner`` or ``None``.
    cate_models: ``(model_y, model_t)`` to re-fit the nuisances; default: the result's own
    cross-fitted nuisances (no second fit), through ``Precomputed*`` models.
    """
    from causalrec.diagnostics import design_balance, overlap, weight_diagnostics
    from causalrec.diagnostics.balance import split_design
    from causalrec.uplift.segments import embedding_segments, group_effects

    nu = getattr(result, "nuisance", None) or {}
    if "e_hat" not in nu:
        raise InputError("the analysis needs propensities and outcome predictions", column="method",
                         fix="include ipw, aipw or dml in the methods so nuisances are fitted")
    cfg = getattr(result, "config", {}) or {}
    ci_level = float(cfg.get("ci_level", 0.95))
    clip = float(cfg.get("clip", 0.01))
    t, y = np.asarray(nu["t"]).astype(int), np.asarray(nu["y"], dtype=float)
    e, mu0, mu1 = nu["e_hat"], nu["mu0"], nu["mu1"]
    e_raw = nu.get("e_raw", e)
    X = np.asarray(nu["X"], dtype=np.float32)
    out = UpliftAnalysis(config={"per_item": per_item, "segments": segments, "n_segments": n_segments,
                                 "cate": cate, "curves": curves, "refute": refute,
                                 "num_simulations": num_simulations, "n_boot": n_boot, "seed": seed,
                                 "cate_modifiers": cate_modifiers, "honest_split": honest_split})
    out.overlap = overlap(t, e_raw, clip=clip)
    out.weights = weight_diagnostics(t, e, "ate")
    blocks, _, _ = split_design(X, nu.get("feature_names"))
    # the run's own balance (the one its warning read) unless other components were asked for
    run_bal = nu.get("balance")
    out.balance = run_bal if getattr(run_bal, "n_components", None) == balance_components else \
        design_balance(t, e, X, nu.get("feature_names"), n_components=balance_components, random_state=seed)
    data = getattr(result, "data", None)
    if per_item and data is not None and "item_id" in data.columns:
        out.groups.append(group_effects(y, t, e, mu0, mu1, data["item_id"].astype(str).to_numpy(), by="item_id",
                                        min_size=min_group_size, ci_level=ci_level, clip=clip,
                                        clusters=nu.get("groups")))
    elif per_item:
        out.notes.append("Per-item effects skipped: the log has no item id column.")
    if segments:
        if segments == "embedding":
            if "user_text" not in blocks:
                raise InputError("embedding segments need user-text embeddings", column="user_text",
                                 fix="pass --user-text COL, or name a segment column")
            labels = embedding_segments(blocks["user_text"], n_segments, random_state=seed)
            by = "user_segment"
        elif segment_values is not None:
            labels, by = np.asarray(segment_values).astype(str), segments
            if labels.shape[0] != t.shape[0]:
                raise InputError(f"segment labels have {labels.shape[0]} rows, the analysis {t.shape[0]}",
                                 column=segments, fix="pass one label per analysed (kept) row")
        else:
            if data is None or segments not in data.columns:
                raise InputError(f"no segment column '{segments}' in the log", column=segments,
                                 fix="name a log column (e.g. a user attribute) or use 'embedding'")
            labels, by = data[segments].astype(str).to_numpy(), segments
        out.groups.append(group_effects(y, t, e, mu0, mu1, labels, by=by, min_size=min_group_size,
                                        ci_level=ci_level, clip=clip, clusters=nu.get("groups")))
        if segments == "embedding":
            out.notes.append(f"User segments are {n_segments} KMeans clusters of the user-text embeddings.")
    if cate or curves:
        from causalrec.diagnostics.balance import leading_components

        mods = leading_components(X, cate_modifiers, random_state=seed) if cate_modifiers > 0 else None
        rng = np.random.default_rng(seed)
        n = t.shape[0]
        fit_rows = rng.random(n) < honest_split
        ev = ~fit_rows
        if cate and mods is not None:
            from causalrec.uplift.cate import fit_cate

            if cate_models is not None:
                my, mt = cate_models
                W_fit = X[fit_rows]
            else:  # the run's cross-fitted nuisances, fitted once (W = row numbers to look them up)
                my, mt = _shared_models(nu, cate)
                W_fit = np.flatnonzero(fit_rows).astype(float)[:, None]
            out.cate = fit_cate(y[fit_rows], t[fit_rows], mods[fit_rows], W=W_fit, method=cate,
                                model_y=my, model_t=mt, feature_names=[f"PC{j + 1}" for j in range(mods.shape[1])],
                                cv=int(cfg.get("n_folds", 5)), ci_level=ci_level, random_state=seed,
                                X_predict=mods[ev])
            out.notes.append(f"CATE fit on {int(fit_rows.sum()):,} rows; effects predicted on the other "
                             f"{int(ev.sum()):,} rows, which also evaluate the uplift curve. Effect modifiers: "
                             f"the {mods.shape[1]} leading principal components of the adjustment features.")
            if curves:
                from causalrec.uplift.curves import uplift_curve

                users = nu.get("groups")
                out.curve = uplift_curve(out.cate.tau, y[ev], t[ev], e_hat=e[ev], mu0=mu0[ev], mu1=mu1[ev],
                                         n_boot=n_boot, ci_level=ci_level, clip=clip, seed=seed,
                                         clusters=None if users is None else np.asarray(users)[ev])
        elif curves:
            from causalrec.uplift.curves import uplift_curve

            out.curve = uplift_curve(mu1 - mu0, y, t, e_hat=e, mu0=mu0, mu1=mu1, n_boot=n_boot,
                                     ci_level=ci_level, clip=clip, seed=seed, clusters=nu.get("groups"))
            out.notes.append("The uplift curve ranks rows by the outcome models' mu1 - mu0 (cross-fitted).")
    if refute:
        from causalrec.uplift.refute import refute as run_refute

        logit = np.log(e / (1.0 - e))
        out.refutations = run_refute(y, t, X, scores=np.column_stack([logit, mu0, mu1]),
                                     num_simulations=num_simulations, ci_level=ci_level, seed=seed,
                                     max_rows=refute_max_rows, progress=progress)
    return out


def _shared_models(nu: dict[str, Any], method: str) -> tuple[Any, Any]:
    """``(model_y, model_t)`` that return the run's out-of-fold nuisances (econml's final
    stage on them): ``E[Y|X] = e mu1 + (1 - e) mu0`` for DML-type learners, the arm means
    for the DR learner."""
    from causalrec.models import (
        PrecomputedArmRegressor,
        PrecomputedClassifier,
        PrecomputedRegressor,
    )

    e, mu0, mu1 = (np.asarray(nu[k], dtype=float) for k in ("e_hat", "mu0", "mu1"))
    m = nu.get("m_hat")
    m = e * mu1 + (1.0 - e) * mu0 if m is None else m
    my = PrecomputedArmRegressor(mu0, mu1) if method == "dr_learner" else PrecomputedRegressor(m)
    return my, PrecomputedClassifier(e)
