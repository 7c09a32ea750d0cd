"""The uplift AIPW ATE/ATT of a Spark DataFrame with tabular covariates.

``causalrec.uplift.estimate(spark_df, ..., methods=["aipw"])`` lands here after the in-process
option checks. The nuisances are those of the in-process run, fitted where the model code runs
(the driver) and scored where the rows are (the executors):

0. row counts per partition (:func:`~causalrec.engines.spark.partition_offsets`), so every
   partition knows its rows' global numbers (row-hash folds and the fit sample);
1. the fit job: every partition validates its batches with the in-process ``validate_log`` and
   returns the needed columns (covariates, treatment, outcome, user key, logged propensity) of
   its rows with their fold (:func:`causalrec.uplift.estimate.uplift_folds`, ``"hash"``: the
   user key's hash, or the row number's without users), plus the outcome's range and the arm
   counts over all rows. Above ``fit_rows`` rows it returns a seeded sample at the same rate in
   every fold instead (:func:`causalrec.models.folds.row_hash_sample`; a warning and
   ``config["spark"]["nuisance_fit"]`` say so). The driver builds the design with the in-process
   :func:`~causalrec.features.design_matrix` and cross-fits ``e``, ``mu0``, ``mu1`` with the
   in-process ``_fit_candidates`` (the one cross-fitting engine: same folds, same rows in the
   same order, so the same fold models when nothing is sampled);
2. the score job: the encoder and the fold models are broadcast
   (:class:`~causalrec.engines.spark.Shipped`); each batch is encoded, predicted by its rows'
   fold models (:meth:`~causalrec.models.crossfit.CrossFit.predict_folds`), bounded to the
   outcome range, trimmed and clipped as in process, and reduced to the per-row terms of
   :func:`causalrec.uplift.ate.aipw_terms`. Without users their ``Moments`` are merged over
   partitions; with users (``group_by_user``, the in-process default when the log has a user
   column) each partition emits its partial totals per user, ``groupBy(user).sum`` completes
   them (the one shuffle, one row per user) and their ``Moments`` are merged. The driver
   finishes with :func:`causalrec.uplift.ate.aipw_from_moments`, the code the in-process
   ``aipw`` calls, so ATE, ATT, SEs and intervals equal ``estimate(pandas_df, ...,
   folds="hash")`` on the same rows in the same order.

Not on Spark (``InputError``): naive/ipw/dml, text or id features, an item catalogue, histories
and the heterogeneity analysis (per item, segments, CATE, curves, refutations). The balance,
ESS, influence-tail and calibration diagnostics of the in-process run are not computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from causalrec.engines.spark import Shipped, grouped_totals, partition_offsets, run_partitions
from causalrec.errors import InputError

SPARK_METHODS = ("aipw",)


def _check_supported(sdf, schema, methods, features, unsupported: dict[str, Any]) -> None:
    bad = [m for m in methods if m not in SPARK_METHODS]
    if bad:
        raise InputError(f"method(s) {bad} do not run on Spark yet (only {', '.join(SPARK_METHODS)})",
                         column="method", fix="use methods=['aipw'], or run in process (e.g. on a sample)")
    for name, value in unsupported.items():
        if value not in (None, False):
            raise InputError(f"{name} does not run on Spark yet", column=name,
                             fix="leave it out, or run in process (e.g. on a sample)")
    texts = [c for c in (schema.user_text, schema.item_text) if c is not None and c in sdf.columns]
    if not isinstance(features, str) or features not in ("auto", "covariates") or (features == "auto" and texts):
        raise InputError("on Spark the uplift adjustment set is the tabular covariates only (no text, ids or "
                         "arrays yet)", column="features", fix="features='covariates' with covariates=[...]")
    if not schema.covariates:
        raise InputError("features='covariates' needs at least one covariate", column="covariates",
                         fix="pass --covariates A,B or use text features (--user-text / --item-text)")


def uplift_spark(sdf, *, schema, methods, features, n_folds: int, folds: str, clip: float, trim: float | None,
                 propensity: str | None, propensity_model: Any, outcome_model: Any, device: str,
                 group_by_user: bool, ci_level: float, ci_target: str, seed: int, fit_rows: int,
                 unsupported: dict[str, Any]):
    """The Spark engine behind :func:`causalrec.uplift.estimate` (see the module docstring)."""
    from causalrec.data.validation import check_columns_named, validate_log
    from causalrec.features import design_matrix
    from causalrec.features.tabular import TabularEncoder
    from causalrec.models.crossfit import CrossFit
    from causalrec.models.folds import row_hash_sample
    from causalrec.ope.estimators import Moments
    from causalrec.uplift import ate as ate_mod
    from causalrec.uplift.estimate import (
        _candidate_models,
        _fit_candidates,
        _logged_propensity,
        bound_outcome_predictions,
        uplift_folds,
    )
    from causalrec.uplift.result import UpliftResult

    _check_supported(sdf, schema, methods, features, unsupported)
    if isinstance(fit_rows, bool) or not isinstance(fit_rows, (int, np.integer)) or fit_rows < 1:
        raise InputError(f"spark_fit_rows must be a positive integer, got {fit_rows!r}", column="spark_fit_rows",
                         fix="e.g. spark_fit_rows=1_000_000")
    if folds != "hash":
        raise InputError("on Spark the uplift folds follow a hash of the user (or of the row number): a shuffled "
                         "split needs every row at once", column="folds", fix="use folds='hash' (or 'auto')")
    check_columns_named(sdf.columns, {"--propensity": propensity})
    covs = list(schema.covariates)
    user_col = schema.user_id if group_by_user and schema.user_id in sdf.columns else None
    cols = list(dict.fromkeys(c for c in (schema.treatment, schema.outcome, user_col, propensity, *covs)
                              if c is not None))
    missing = [c for c in cols if c not in sdf.columns]
    if missing:
        raise InputError(f"no column '{missing[0]}' in the log; columns: {list(sdf.columns)[:12]}",
                         column=missing[0], fix="name an existing column")
    narrow = sdf.select(*[f"`{c}`" for c in cols])
    offsets, n_total, off_bytes = partition_offsets(narrow)
    if n_total == 0:
        raise InputError("the log has no rows", fix="check the file")
    rate = 1.0 if n_total <= fit_rows else fit_rows / n_total

    def batches(pid, it):
        """``(global first row, canonical batch, t, y, user keys or None, logged e or None, folds)``."""
        off = offsets.get(pid, 0)
        for b in it:
            if len(b) == 0:
                continue
            canon = validate_log(b, schema, require=("treatment", "outcome"), binary=("treatment",),
                                 command="uplift")
            t = canon["treatment"].to_numpy().astype(np.int8)
            y = canon["outcome"].to_numpy(dtype=float)
            keys = canon["user_id"].astype(str).to_numpy() if user_col is not None else None
            e_log = _logged_propensity(b[propensity], propensity) if propensity is not None else None
            fold = uplift_folds("hash", len(canon), n_folds, groups=keys, stratify=None, seed=seed, start=off)
            yield off, canon, t, y, keys, e_log, fold
            off += len(canon)

    # -- job 1: the needed columns of every row (or of the sample) to the driver ---------------
    def fit_part(pid, it):
        out, n, n1, ylo, yhi = [], 0, 0, np.inf, -np.inf
        for off, canon, t, y, keys, e_log, fold in batches(pid, it):
            n, n1 = n + len(t), n1 + int(t.sum())
            ylo, yhi = min(ylo, float(y.min())), max(yhi, float(y.max()))
            keep = np.flatnonzero(row_hash_sample(off, len(t), rate, seed))
            out.append((canon[covs].iloc[keep].reset_index(drop=True), t[keep], y[keep],
                        None if keys is None else keys[keep], None if e_log is None else e_log[keep], fold[keep]))
        return out, n, n1, ylo, yhi

    res1 = run_partitions(narrow, fit_part)
    chunks = [c for p in res1.values for c in p[0]]  # partition order, then batch order: the log's order
    n1 = sum(p[2] for p in res1.values)
    y_lo = min(p[3] for p in res1.values)
    y_hi = max(p[4] for p in res1.values)
    if n1 < 2 or n_total - n1 < 2:
        raise InputError(f"column '{schema.treatment}' needs at least 2 treated and 2 untreated rows "
                         f"(has {n1} treated of {n_total})", column=schema.treatment,
                         fix="check the treatment column: an effect needs both exposed and unexposed rows")
    frame = pd.concat([c[0] for c in chunks], ignore_index=True)
    t_fit, y_fit, fold_fit = (np.concatenate([c[i] for c in chunks]) for i in (1, 2, 5))
    g_fit = np.concatenate([c[3] for c in chunks]) if user_col is not None else None
    e_fit = np.concatenate([c[4] for c in chunks]) if propensity is not None else None
    if len(t_fit) < 2 * n_folds:
        raise InputError(f"{len(t_fit)} rows were drawn to fit the nuisances, too few for {n_folds} folds",
                         column="spark_fit_rows", fix="raise spark_fit_rows")
    X, names = design_matrix(covariates=frame[covs], return_names=True)  # what build_features does in process
    encoder = TabularEncoder().fit(frame[covs])  # encode_tabular's encoder: the same columns on the executors
    info = {"features": "covariates"}
    candidates = _candidate_models("mlp", device, seed, y_fit, info, propensity_model, outcome_model)
    nu, selection = _fit_candidates(candidates, X, t_fit, y_fit, n_folds=n_folds, groups=g_fit, seed=seed,
                                    logged_e=e_fit, folds="hash", fold_ids=fold_fit)
    p_model, o_model = nu.pop("models")
    cf = nu["crossfit"]
    shipped_cf = CrossFit(predictions={}, folds=np.zeros(0, dtype=np.int64), models=cf.models, spec=cf.spec,
                          selection=cf.selection, cross_fitted=cf.cross_fitted)
    ship = Shipped(narrow, {"encoder": encoder, "cf": shipped_cf})

    # -- job 2: nuisances scored on the executors, reduced to the AIPW terms ------------------
    def terms_part(pid, it):
        """Yields ``(user keys, terms)`` per batch; returns the partition's diagnostic counts."""
        fitted = ship.value()
        d = {"n": 0, "kept": 0, "kept1": 0, "clipped": 0, "bounded": 0, "emin": np.inf, "emax": -np.inf}
        for _, canon, t, y, keys, e_log, fold in batches(pid, it):
            Xb = design_matrix(covariates=fitted["encoder"].transform(canon[covs]))
            pred = fitted["cf"].predict_folds({"X": Xb}, fold)
            e_raw = e_log if e_log is not None else pred["e"]
            mu0, mu1, bounded = bound_outcome_predictions(pred["mu0"].ravel(), pred["mu1"].ravel(),
                                                          np.array([y_lo, y_hi]))
            keep = np.ones(len(t), bool) if trim is None else (e_raw >= trim) & (e_raw <= 1.0 - trim)
            er = e_raw[keep]
            e = np.clip(er, clip, 1.0 - clip)
            d["n"] += len(t)
            d["kept"] += int(keep.sum())
            d["kept1"] += int(t[keep].sum())
            d["clipped"] += int(((er < clip) | (er > 1.0 - clip)).sum())
            d["bounded"] += int(bounded.sum())
            d["emin"], d["emax"] = min(d["emin"], float(e_raw.min())), max(d["emax"], float(e_raw.max()))
            z = ate_mod.aipw_terms(t[keep], y[keep], e, mu0[keep], mu1[keep])
            yield (None if keys is None else keys[keep]), z
        return d

    try:
        if user_col is None:
            def moments_part(pid, it):
                m = Moments()
                gen = terms_part(pid, it)
                try:
                    while True:
                        _, z = next(gen)
                        m = m.merge(Moments.of_array(z))
                except StopIteration as stop:
                    return m, stop.value

            res2 = run_partitions(narrow, moments_part)
            moments = Moments()
            for m, _ in res2.values:
                moments = moments.merge(m)
            diags = [d for _, d in res2.values]
            nbytes2, n_parts = res2.nbytes, res2.n_partitions
        else:
            moments, diags, nbytes2, n_parts = _cluster_moments(narrow, terms_part, len(ate_mod.AIPW_TERMS))
    finally:
        ship.release()
    tot = {k: sum(d[k] for d in diags) for k in ("n", "kept", "kept1", "clipped", "bounded")}
    if trim is not None and (tot["kept"] < 4 or tot["kept1"] < 2 or tot["kept"] - tot["kept1"] < 2):
        raise InputError(f"trimming at {trim} leaves too few rows in one arm", column="trim",
                         fix="lower --trim or check overlap")
    if user_col is not None and moments.n < 2:
        from causalrec.inference import check_clusters

        check_clusters("groups (the user column)", 0, int(moments.n))
    estimates = ate_mod.aipw_from_moments(moments, ci_level=ci_level, ci_target=ci_target)
    warnings: list[str] = []
    estimand = "ATE = E[Y(1) - Y(0)] and ATT = E[Y(1) - Y(0) | T = 1] over all logged rows"
    share_trimmed = 1.0 - tot["kept"] / n_total
    if trim is not None:
        estimand = (f"effects on the overlap population: rows with estimated propensity in "
                    f"[{trim}, {1 - trim}] ({share_trimmed:.1%} of rows trimmed); this differs from the "
                    "ATE over all rows when effects vary with the propensity")
    share_clipped = tot["clipped"] / max(tot["kept"], 1)
    if tot["bounded"]:
        warnings.append(f"{tot['bounded']} rows had outcome-model predictions outside the observed outcome range "
                        f"[{y_lo:.4g}, {y_hi:.4g}] and were bounded to it: the outcome model extrapolates there")
    from causalrec.diagnostics.overlap import clip_warning

    msg = clip_warning(share_clipped, clip)  # the in-process run's message and threshold
    if msg:
        warnings.append(msg)
    fit_info = {"rows": int(n_total), "fit_rows": int(fit_rows), "rows_fitted": int(len(t_fit)),
                "folds": "hash (user key)" if user_col is not None else "hash (row number)",
                "fit_sample": None if rate == 1.0 else {"rate": rate, "how": "seeded row hash, the same rate in "
                                                        "every fold"}}
    if rate < 1.0:
        warnings.append(f"the nuisance models were fitted on the driver from a sample of {len(t_fit):,} of "
                        f"{n_total:,} rows (rate {rate:.3g}, the same in every fold; spark_fit_rows={fit_rows:,}); "
                        "they still score every row")
    diagnostics: dict[str, Any] = {
        "n_treated": int(n1), "n_control": int(n_total - n1), "treated_share": float(n1 / n_total),
        "outcome_range": [float(y_lo), float(y_hi)],
        "share_outcome_predictions_bounded": tot["bounded"] / n_total,
        "propensity_min": min(d["emin"] for d in diags), "propensity_max": max(d["emax"] for d in diags),
        "clip": clip, "share_clipped": share_clipped,
        "nuisance_models": cf.selection_report(),
    }
    if trim is not None:
        diagnostics["share_trimmed"] = share_trimmed
    if selection:
        diagnostics["nuisance_selection"] = selection
    config = {
        "schema": schema.to_dict(), "methods": list(methods), "n_folds": int(n_folds), "folds": folds, "clip": clip,
        "trim": trim, "covariates": covs, "seed": seed, "ci_level": ci_level, "ci_target": ci_target,
        "group_by_user": group_by_user, "features": "covariates", "n_features": int(X.shape[1]),
        "propensity": propensity,
        "propensity_model": "logged column " + repr(propensity) if propensity is not None else repr(p_model),
        "outcome_model": repr(o_model), "engine": "spark",
        "spark": {"partitions": n_parts, "bytes_collected": int(off_bytes + res1.nbytes + nbytes2),
                  "nuisance_fit": fit_info},
    }
    return UpliftResult(command="uplift", n_rows=int(n_total), estimates=estimates, diagnostics=diagnostics,
                        warnings=warnings, config=config, nuisance={}, data=None, estimand=estimand)


def _cluster_moments(narrow, terms_part, d: int):
    """``(Moments of the per-user totals, per-partition diagnostics, bytes, partitions)``.

    Users may span partitions: their totals are completed by
    :func:`~causalrec.engines.spark.grouped_totals` (keys as strings, as in process)."""
    from causalrec.ope.estimators import Moments

    def reduce_part(pid, blocks):
        m = Moments()
        for z in blocks:
            m = m.merge(Moments.of_array(z))
        return m

    diags, reduced, nbytes, n_parts = grouped_totals(narrow, terms_part, d, "string", reduce_part)
    moments = Moments()
    for m in reduced:
        moments = moments.merge(m)
    return moments, diags, nbytes, n_parts


__all__ = ["uplift_spark", "SPARK_METHODS"]
