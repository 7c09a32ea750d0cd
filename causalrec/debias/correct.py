"""``debias``: a training set whose weights and labels are corrected for
exposure and position bias, plus a summary of what changed.

Pipeline (each step's formula lives in its module):

1. exposure weights ``w_i`` from the logged propensity column, or from an
   estimated one (:func:`estimate_propensity`), then IPS / SNIPS with the
   propensity floor ``clip`` and the weight ceiling ``cap``
   (:mod:`causalrec.debias.weights`);
2. examination per position ``rho_k`` when the log has positions: regression-EM
   on the logs themselves (default), the CTR ratio when the logs are
   randomised, or a curve the caller already has
   (:mod:`causalrec.debias.position`);
3. labels: ``c / rho_bar_k`` (``ips``, ``snips``) or the doubly-robust
   ``r_hat + (c - rho_k r_hat) / rho_bar_k`` with a cross-fitted outcome model
   from :mod:`causalrec.models` (``dr``) (:mod:`causalrec.debias.labels`).

Assumptions: the logged (or estimated) propensities are the logging policy's
and every candidate has a positive one (positivity); clicks follow the
examination hypothesis; for estimated propensities, exposure depends only on
the features given (no unmeasured confounding of exposure).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.readers import read_table
from causalrec.data.schema import LogSchema
from causalrec.data.validation import check_numeric, validate_log
from causalrec.debias.labels import dr_labels, ips_labels
from causalrec.debias.position import (
    PositionBias,
    examination_from_randomized,
    examination_verdict,
    harvest_interventions,
    identification_check,
    position_bias_from_curve,
    regression_em,
    split_half_width,
)
from causalrec.debias.weights import ExposureWeights, empirical_propensity, exposure_weights
from causalrec.diagnostics.weights import ess_warning
from causalrec.errors import InputError
from causalrec.inference import influence_se
from causalrec.models.folds import row_hash_folds
from causalrec.results import CausalResult, Estimate, jsonable

METHODS = ("naive", "ips", "snips", "dr")
EXAMINATION = ("em", "harvest", "randomized", "none")
FOLD_KINDS = ("auto", "split", "hash")
OUTPUT_COLUMNS = ("weight", "corrected_label", "debias_method", "debias_clip", "debias_model",
                  "debias_propensity", "debias_examination")


def with_corrected_columns(out: pd.DataFrame, *, weight, label, method: str, clip: float | None,
                           provenance: str, propensity, examination) -> pd.DataFrame:
    """Write the :data:`OUTPUT_COLUMNS` onto ``out`` (a copy the caller owns) and return it.

    The one place the corrected table's columns are named and filled, so the in-process
    path and the Spark engine's per-partition transform write the same table.
    """
    out["weight"] = weight
    out["corrected_label"] = label
    out["debias_method"] = method
    out["debias_clip"] = np.nan if clip is None else float(clip)
    out["debias_model"] = provenance
    out["debias_propensity"] = propensity
    out["debias_examination"] = examination
    return out


@dataclass
class DebiasResult(CausalResult):
    """The corrected frame plus what changed: weights, examination curve, label shift per item.

    ``frame`` holds the input rows unchanged with the columns
    ``weight``, ``corrected_label`` and provenance (``debias_method``,
    ``debias_clip``, ``debias_model``, ``debias_propensity``,
    ``debias_examination``). ``estimates`` hold the mean label before and after
    correction and, when positions were used, the examination curve.
    """

    frame: pd.DataFrame | None = field(default=None, repr=False)
    weights: ExposureWeights | None = field(default=None, repr=False)
    position_bias: PositionBias | None = None
    label_shift: pd.DataFrame | None = field(default=None, repr=False)
    title: str = "causalrec debias"

    def _extra_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.weights is not None:
            d["weight_quantiles"] = self.weights.quantiles()
        if self.position_bias is not None:
            d["examination"] = self.position_bias.to_dict()
        if self.label_shift is not None:
            d["label_shift"] = self.label_shift.to_dict(orient="records")
        return d

    def summary(self) -> str:
        lines = [super().summary()]
        if self.weights is not None:
            q = self.weights.quantiles()
            lines.append(f"weights ({self.weights.method}): ESS {self.weights.ess:,.0f} of {self.weights.n:,}; "
                         f"p50 {q['p50']:.3g}, p99 {q['p99']:.3g}, max {q['max']:.3g}; "
                         f"clipped {self.weights.n_clipped:,}, capped {self.weights.n_capped:,}")
        if self.position_bias is not None:
            lines.append(self.position_bias.summary())
        if self.label_shift is not None and len(self.label_shift):
            top = self.label_shift.reindex(self.label_shift["shift"].abs().sort_values(ascending=False).index).head(10)
            lines.append("largest label shifts per item:")
            lines.append(top.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return "\n".join(lines)


def estimate_propensity(
    canon: pd.DataFrame, *, covariates: tuple[str, ...] = (), per_position: bool = True,
    model: Any = None, n_folds: int = 5, seed: int = 0,
) -> tuple[np.ndarray, str]:
    """Estimate ``pi_0(a_i | x_i)`` for the logged item of each row.

    Without covariates: the empirical item share (per position when the log
    has positions), the MLE of a context-free logging policy. With
    covariates: a multiclass classifier over items (default
    ``causalrec.models.PropensityModel``, calibrated and clipped), cross-fitted
    so no row's propensity comes from a model that saw it. Returns the
    propensities and a provenance string.
    """
    items = canon["item_id"].to_numpy()
    pos = canon["position"].to_numpy(np.int64) if per_position and "position" in canon.columns else None
    if not covariates:
        how = "empirical item share" + (" per position" if pos is not None else "")
        return empirical_propensity(items, pos), how
    from causalrec.models import PropensityModel, cross_fit_predict

    X = _covariate_matrix(canon, covariates)
    if pos is not None:
        X = np.hstack([X, np.eye(int(pos.max()) + 1)[pos]])
    _, codes = np.unique(items, return_inverse=True)
    clf = model if model is not None else PropensityModel()
    proba = cross_fit_predict(clf, X, codes, n_folds=n_folds, method="predict_proba", random_state=seed)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] <= int(codes.max()):
        raise InputError("the propensity model did not return one probability per item", column="item_id",
                         fix="make sure every item appears in every cross-fitting fold, or pass logged propensities")
    p = proba[np.arange(codes.shape[0]), codes]
    return np.clip(p, 1e-6, 1.0), f"{type(clf).__name__} on {list(covariates)} (cross-fitted, {n_folds} folds)"


def _covariate_stats(canon: pd.DataFrame, covariates: tuple[str, ...]) -> dict[str, tuple]:
    """How each covariate enters a design: ``("num", mean, sd)`` (population sd) for a numeric
    column, ``("cat", levels)`` (sorted distinct strings) otherwise. Computed from the whole log in
    process; the Spark engine merges the same statistics over partitions."""
    out: dict[str, tuple] = {}
    for c in covariates:
        s = canon[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            v = s.to_numpy(np.float64)
            out[c] = ("num", float(v.mean()), float(v.std()))
        else:
            out[c] = ("cat", tuple(sorted(s.astype("string").dropna().unique())))
    return out


def _covariate_matrix(canon: pd.DataFrame, covariates: tuple[str, ...], stats: dict | None = None) -> np.ndarray:
    """Numeric covariates standardised ``(v - mean) / sd`` (``sd`` 1 when 0), others one-hot per level;
    ``stats`` (:func:`_covariate_stats`) default to this frame's own."""
    stats = _covariate_stats(canon, covariates) if stats is None else stats
    parts = []
    for c in covariates:
        kind, *rest = stats[c]
        if kind == "num":
            mean, sd = rest
            v = canon[c].to_numpy(np.float64)
            parts.append(((v - mean) / (sd if sd > 0 else 1.0))[:, None])
        else:
            parts.append(_one_hot(canon[c], rest[0]))
    return np.hstack(parts) if parts else np.zeros((len(canon), 0))


def _one_hot(s: pd.Series, levels: tuple[str, ...]) -> np.ndarray:
    """One column per level (as strings), in the order given; a missing or unseen value is all zeros."""
    codes = pd.Categorical(s.astype("string"), categories=list(levels)).codes
    out = np.zeros((len(s), len(levels)))
    seen = np.flatnonzero(codes >= 0)
    out[seen, codes[seen]] = 1.0
    return out


def _item_levels(canon: pd.DataFrame) -> tuple[str, ...]:
    return tuple(sorted(canon["item_id"].astype("string").dropna().unique()))


def _outcome_features(canon: pd.DataFrame, covariates: tuple[str, ...], items: tuple[str, ...] | None = None,
                      stats: dict | None = None) -> np.ndarray:
    """Item one-hot plus covariates: what the DR outcome model sees (not the position).

    ``items`` (sorted item ids as strings) and ``stats`` default to this frame's own; the Spark
    engine passes those of the whole log, so each partition builds the rows of the same design.
    """
    items = _item_levels(canon) if items is None else items
    return np.hstack([_one_hot(canon["item_id"], items), _covariate_matrix(canon, covariates, stats)])


def debias(
    logs: pd.DataFrame | str | os.PathLike,
    *,
    schema: LogSchema = LogSchema(),
    method: str = "ips",
    propensity: str | None = None,
    estimate_propensity: bool = False,
    position: str | None = None,
    examination: str | PositionBias | np.ndarray | list[float] = "em",
    relevance_groups: str = "item_id",
    relevance_features: np.ndarray | None = None,
    context: str | None = None,
    exposure: str | None = None,
    outcome_features: np.ndarray | None = None,
    clip: float | None = None,
    cap: float | None = None,
    position_clip: float | None = 0.05,
    outcome_model: Any = None,
    n_folds: int = 5,
    bootstrap: int = 50,
    ci_level: float = 0.95,
    seed: int = 0,
    folds: str = "auto",
    spark_fit_rows: int = 1_000_000,
) -> DebiasResult:
    """Correct a click log for exposure and position bias.

    Parameters
    ----------
    logs:
        DataFrame or CSV/Parquet path; one row per impression. Never modified.
    schema:
        Column roles; ``propensity`` / ``position`` override the schema's names.
    method:
        ``"naive"`` (weights 1, labels = clicks: the baseline), ``"ips"``,
        ``"snips"`` (self-normalised weights) or ``"dr"`` (doubly-robust labels,
        SNIPS weights).
    estimate_propensity:
        Estimate exposure propensities (see :func:`estimate_propensity`) instead
        of reading them; required when the log has no propensity column.
    examination:
        ``"em"`` (regression-EM on these logs: per ``relevance_groups``, or
        with a relevance model on ``relevance_features``), ``"harvest"``
        (intervention harvesting: (context, item) pairs logged at several
        slots), ``"randomized"`` (the logs are a randomised slice: CTR
        ratios), ``"none"`` (ignore positions), or a known curve /
        :class:`PositionBias`. Each method's assumption is in
        :mod:`causalrec.debias.position`; EM's identification is checked and
        a warning says when it cannot be trusted.
    exposure:
        Candidate mode: the name of a 0/1 column saying whether the row's item
        was shown (the schema's ``treatment`` role). Rows are then candidates,
        the propensity is ``P(shown | x)``, and the correction moves into the
        label (Schnabel et al. 2016; Wang et al. 2019), weights stay 1::

            ips:  y = T c / (pi_bar rho_bar)
            snips: the same divided by mean(T / pi_bar)
            dr:   y = r_hat + T (c / rho_bar - r_hat) / pi_bar

        with ``r_hat`` fitted on shown rows only (cross-fitted). Here DR does
        differ from IPS: unshown candidates get ``r_hat`` instead of 0.
    outcome_features:
        Feature matrix (one row per log row) for the DR outcome model; default
        item one-hot plus covariates. Pass text embeddings here.
    relevance_groups:
        Column defining relevance groups for regression-EM (``item_id`` by default;
        ``user_id`` + item is not identified in sparse logs).
    relevance_features:
        Feature matrix (one row per log row, e.g. text embeddings of user and
        item and their product) for regression-EM's relevance model
        (Wang et al. 2018) instead of per-group means: what lets EM survive a
        personalised ranking, if the features explain what the ranking used.
    context:
        The column that identifies the context (user or query) for
        harvesting and the identification check; default the schema's
        ``user_id`` (``request_id`` is not a context: it never repeats).
    clip, cap:
        Propensity floor and weight ceiling for the exposure weights.
    position_clip:
        Floor on relative examination in the labels (``rho_bar``).
    outcome_model:
        Regressor for ``r_hat`` in ``dr`` (default ``causalrec.models.OutcomeModel``),
        cross-fitted over ``n_folds``.
    bootstrap:
        Bootstrap replicates for the examination curve's intervals.
    folds:
        How ``dr``'s outcome model assigns rows to folds (:mod:`causalrec.models.folds`):
        ``"split"`` (shuffled ``KFold``, seeded), ``"hash"`` (a seeded hash of the row
        number: needs no pass over the whole log, so the Spark engine uses it), or ``"auto"``
        (``split`` in process, ``hash`` on Spark). On the same rows in the same order
        ``hash`` gives the same folds in process and on Spark.
    spark_fit_rows:
        On Spark, ``dr``'s outcome model is cross-fitted on the driver from the rows' item,
        covariates, IPS label and weight; above this many rows from a seeded sample at the
        same rate in every fold (``config["spark"]["outcome_fit"]`` and a warning say so).
        The fold models then predict on the executors.

    Formula of ``dr`` (impression logs): ``r_hat`` is the outcome model of the IPS label
    ``c / rho_bar_k`` on the item one-hot and the covariates, fitted with the SNIPS weights,
    out of fold; the label is ``r_hat + (c - rho_k r_hat) / rho_bar_k``
    (:func:`causalrec.debias.labels.dr_labels`).
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}", column="method", fix=f"use one of {', '.join(METHODS)}")
    if isinstance(examination, str) and examination not in EXAMINATION:
        raise InputError(f"unknown examination source {examination!r}", column="examination",
                         fix=f"use one of {', '.join(EXAMINATION)}, or pass a curve")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        # checked up front: not every path cross-fits, and a bad value must not pass silently on one of them
        raise InputError(f"n_folds must be an integer >= 2, got {n_folds!r}", column="--n-folds",
                         fix="use 2 or more folds (default 5)")
    if folds not in FOLD_KINDS:
        raise InputError(f"unknown folds {folds!r}", column="folds", fix=f"use one of {', '.join(FOLD_KINDS)}")
    from causalrec.engines import is_spark_dataframe

    spark = is_spark_dataframe(logs)
    if folds == "auto":
        folds = "hash" if spark else "split"
    df = pd.DataFrame(columns=list(logs.columns)) if spark else read_table(logs)
    schema = schema.with_(propensity=propensity, position=position)
    use_position = (
        schema.position is not None and schema.position in df.columns
        and not (isinstance(examination, str) and examination == "none")
    )
    if position is not None and position not in df.columns:
        schema.require(df, ("position",), command="debias")
    needs_prop = method in ("ips", "snips", "dr") and not estimate_propensity
    if needs_prop and (schema.propensity is None or schema.propensity not in df.columns):
        raise InputError(
            f"method '{method}' needs the logging propensity, but column '{schema.propensity}' is not in the log",
            column=str(schema.propensity),
            fix="pass --propensity COL naming the logged propensity, or --estimate-propensity to estimate it",
        )
    if exposure is not None:
        schema = schema.with_(treatment=exposure)
    if spark:  # the same checks so far; the rows are reduced on the executors
        if exposure is not None:
            raise InputError("candidate (exposure) mode does not run on Spark", column="--exposure",
                             fix="run it in process")
        if method == "dr" and folds != "hash":
            raise InputError("on Spark the dr outcome model's folds follow the row hash (a shuffled split needs "
                             "every row number at once)", column="folds", fix="use folds='hash' (or 'auto')")
        if method == "dr" and outcome_features is not None:
            raise InputError("outcome_features (a matrix, one row per log row) cannot be lined up with a Spark "
                             "DataFrame's rows", column="outcome_features",
                             fix="put the features in columns and name them as schema covariates, or run in process")
        from causalrec.engines.spark_debias import debias_spark

        return debias_spark(logs, schema=schema, method=method, examination=examination, clip=clip, cap=cap,
                            position_clip=position_clip, outcome_model=outcome_model, n_folds=n_folds, seed=seed,
                            fit_rows=spark_fit_rows, estimate_propensity=estimate_propensity, config={
                                "method": method, "schema": schema.to_dict(),
                                "estimate_propensity": estimate_propensity,
                                "examination": examination if isinstance(examination, str) else "given",
                                "clip": clip, "cap": cap, "position_clip": position_clip,
                                "relevance_groups": relevance_groups, "n_folds": n_folds, "bootstrap": bootstrap,
                                "ci_level": ci_level, "seed": seed, "folds": folds})
    require = ["item_id", "outcome"] + (["treatment"] if exposure is not None else []) + (["propensity"] if needs_prop else []) + (["position"] if use_position else [])
    canon = validate_log(df, schema, require=require, binary=(["treatment"] if exposure is not None else []), command="debias")
    names = schema.present(df)
    c = check_numeric(canon, "outcome", names)
    warnings: list[str] = []
    config: dict[str, Any] = {
        "method": method, "schema": schema.to_dict(), "estimate_propensity": estimate_propensity,
        "examination": examination if isinstance(examination, str) else "given", "clip": clip, "cap": cap,
        "position_clip": position_clip, "relevance_groups": relevance_groups, "context": context,
        "relevance_features": None if relevance_features is None else "given", "n_folds": n_folds,
        "bootstrap": bootstrap, "ci_level": ci_level, "seed": seed, "folds": folds,
    }

    shown = canon["treatment"].to_numpy(np.float64) if exposure is not None else np.ones(len(canon))
    on = shown > 0

    # 1. exposure weights (over shown rows in candidate mode)
    if method == "naive":
        prop = canon["propensity"].to_numpy(np.float64) if "propensity" in canon.columns else np.ones(len(canon))
        prop_source = "not used"
        wmethod = "none"
    else:
        if estimate_propensity:
            if exposure is not None:
                prop, prop_source = _estimate_exposure(canon, schema.covariates, seed, n_folds)
            else:
                prop, prop_source = estimate_propensity_fn(canon, covariates=schema.covariates, seed=seed,
                                                           n_folds=n_folds)
        else:
            prop, prop_source = canon["propensity"].to_numpy(np.float64), f"logged column '{schema.propensity}'"
        # candidate mode divides by pi inside the label (SNIPS normalises the label there), so raw IPS weights
        wmethod = "ips" if method == "ips" or exposure is not None else "snips"
    ew = exposure_weights(prop[on], wmethod, clip=clip, cap=cap)
    msg = ess_warning(ew.ess, ew.n, "corrected training will be noisy; consider --clip")
    if msg and method != "naive":
        warnings.append(msg)

    # 2. examination per position (estimated on shown rows: only they can be clicked)
    pb: PositionBias | None = None
    rho = np.ones(len(canon))
    if use_position:
        pos = canon["position"].to_numpy(np.int64)
        k = schema.n_positions
        if isinstance(examination, PositionBias):
            pb = examination
        elif not isinstance(examination, str):
            pb = position_bias_from_curve(examination)
        elif examination == "randomized":
            pb = examination_from_randomized(c[on], pos[on], n_positions=k, ci_level=ci_level,
                                             bootstrap=bootstrap, seed=seed)
            randomised, p = _ranking_is_randomised(pos[on], canon["item_id"].to_numpy()[on])
            pb.extra.update({"ranking_randomised_test_p": p, "ranking_looks_randomised": randomised})
            # the CTR ratio always has an interval (delta method or bootstrap)
            examination_verdict(pb, randomised=randomised,
                                precision_from="bootstrap" if bootstrap and bootstrap > 1 else "delta-method")
            if not pb.extra["trusted"]:
                warnings.append("examination curve (randomized) NOT trusted: " + "; ".join(pb.extra["issues"]))
        else:
            pb, w_exam = _estimate_examination(df, canon, schema, c, pos, on, k, examination, relevance_groups,
                                               relevance_features, context, bootstrap, ci_level, seed)
            warnings += w_exam
        rho = pb.at(pos)
        if position_clip is not None and np.any(pb.examination < position_clip):
            warnings.append(f"examination below position_clip={position_clip} at positions "
                            f"{np.flatnonzero(pb.examination < position_clip).tolist()}: their labels are clipped (biased down)")

    # 3. labels (and, for impression logs, weights)
    model_name = "none"
    weight = np.ones(len(canon))
    if exposure is None:
        weight = ew.weights
    inv_pi = np.zeros(len(canon))
    if method != "naive":
        inv_pi[on] = ew.weights if exposure is not None else 1.0
    if method == "naive":
        y = c.copy()
    elif method in ("ips", "snips"):
        y = ips_labels(c, rho, position_clip=position_clip)
        if exposure is not None:
            y = shown * y * inv_pi
            if method == "snips":
                y = y / inv_pi.mean()
    else:
        X = outcome_features if outcome_features is not None else _outcome_features(canon, schema.covariates)
        X = np.asarray(X, dtype=np.float64)
        if X.shape[0] != len(canon):
            raise InputError(f"outcome_features has {X.shape[0]} rows, the log {len(canon)}",
                             column="outcome_features", fix="pass one feature row per log row")
        target = ips_labels(c, rho, position_clip=position_clip)
        from causalrec.models import OutcomeModel, cross_fit_predict

        reg = outcome_model if outcome_model is not None else OutcomeModel()
        model_name = type(reg).__name__
        # candidate mode: the outcome model learns from shown rows only, predicts every row out of fold
        fold_ids = row_hash_folds(0, len(canon), n_folds, seed) if folds == "hash" else None
        r_hat = np.asarray(cross_fit_predict(reg, X, target, n_folds=n_folds, method="predict",
                                             sample_weight=weight, random_state=seed, fit_mask=on, folds=fold_ids),
                           dtype=np.float64)
        if exposure is None:
            y = dr_labels(c, rho, r_hat, position_clip=position_clip)
        else:
            rho_bar = np.maximum(rho, position_clip) if position_clip is not None else rho
            y = r_hat + shown * inv_pi * (c / rho_bar - r_hat)
    provenance = (f"propensity: {prop_source}; examination: "
                  f"{pb.method if pb is not None else 'none'}; outcome model: {model_name}")
    out = df.copy()
    clash = [col for col in OUTPUT_COLUMNS if col in out.columns]
    if clash:
        warnings.append(f"input columns {clash} were overwritten by the corrected values")
    out = with_corrected_columns(out.reset_index(drop=True), weight=weight, label=y, method=method,
                                 clip=clip, provenance=provenance, propensity=prop, examination=rho)

    # 4. what changed
    w = weight
    naive_mean = float(c.mean())
    corr_mean = float(np.sum(w * y) / np.sum(w))
    psi = w * (y - corr_mean) / w.mean()
    estimates = [
        Estimate.normal("naive", "mean_label", naive_mean, influence_se(c), ci_level),
        Estimate.normal(method, "mean_label", corr_mean, influence_se(psi), ci_level),
    ]
    if pb is not None:
        estimates += pb.estimates()
    shift = _label_shift(canon["item_id"], c, y, w)
    if pb is not None and "trusted" in pb.extra:
        diagnostics_exam = {"examination_trusted": bool(pb.extra["trusted"]),
                            "examination_issues": list(pb.extra["issues"])}
    else:
        diagnostics_exam = {}
    diagnostics = {**ew.diagnostics(), **diagnostics_exam, "n_items": int(shift.shape[0]),
                   "propensity_source": prop_source,
                   "outcome_model": model_name,
                   "label_max": float(y.max()) if y.size else float("nan")}
    return DebiasResult(
        command="debias", n_rows=len(canon), estimates=estimates, diagnostics=jsonable(diagnostics),
        warnings=warnings, config=config, frame=out, weights=ew, position_bias=pb, label_shift=shift,
    )


def _estimate_exposure(canon: pd.DataFrame, covariates: tuple[str, ...], seed: int, n_folds: int) -> tuple[np.ndarray, str]:
    """``P(shown | x)``: per-item share shown without covariates, else a cross-fitted classifier."""
    t = canon["treatment"].to_numpy(np.int64)
    if not covariates:
        _, codes = np.unique(canon["item_id"].to_numpy(), return_inverse=True)
        share = np.bincount(codes, weights=t) / np.bincount(codes)
        return np.clip(share[codes], 1e-6, 1.0), "per-item share shown"
    from causalrec.models import PropensityModel, cross_fit_predict

    X = _covariate_matrix(canon, covariates)
    clf = PropensityModel()
    proba = np.asarray(cross_fit_predict(clf, X, t, n_folds=n_folds, method="predict_proba", random_state=seed))
    p = proba[:, 1] if proba.ndim == 2 else proba
    return np.clip(p, 1e-6, 1.0), f"PropensityModel on {list(covariates)} (cross-fitted, {n_folds} folds)"


def _column(df: pd.DataFrame, canon: pd.DataFrame, col: str, what: str) -> np.ndarray:
    # a role name (item_id, user_id...) is read from the canonical log, any other column from the
    # input as given (the canonical log keeps roles and covariates only; rows are the same)
    if col in canon.columns:
        return canon[col].to_numpy()
    if col in df.columns:
        return df[col].to_numpy()
    raise InputError(f"{what} column '{col}' is not in the log", column=col,
                     fix="use item_id / user_id, or a column present in the log")


def _ranking_is_randomised(pos: np.ndarray, items: np.ndarray, alpha: float = 0.01) -> tuple[bool, float]:
    """One-way ANOVA of the slot on the item: under a shuffled list an item's mean slot does not depend on it.

    ``F = [SSB / (G - 1)] / [SSW / (N - G)]`` (vectorised); returns ``(p >= alpha, p)``.
    A personalised or quality-driven ranking puts some items systematically higher.
    """
    from scipy import stats

    _, g = np.unique(items, return_inverse=True)
    n_g = int(g.max()) + 1
    x = pos.astype(np.float64)
    cnt = np.bincount(g, minlength=n_g).astype(np.float64)
    mean_g = np.bincount(g, weights=x, minlength=n_g) / np.maximum(cnt, 1)
    ssb = float(np.sum(cnt * (mean_g - x.mean()) ** 2))
    ssw = float(np.sum((x - mean_g[g]) ** 2))
    n = x.shape[0]
    if n_g < 2 or n - n_g < 1 or ssw <= 0:
        return True, 1.0
    f = (ssb / (n_g - 1)) / (ssw / (n - n_g))
    p = float(stats.f.sf(f, n_g - 1, n - n_g))
    return p >= alpha, p


def _estimate_examination(df, canon, schema, c, pos, on, k, examination, relevance_groups, relevance_features,
                          context, bootstrap, ci_level, seed) -> tuple[PositionBias, list[str]]:
    """Regression-EM or harvesting on the shown rows, plus the identification check and its warnings."""
    warnings: list[str] = []
    items = canon["item_id"].to_numpy()[on]
    ctx_col = context or schema.user_id
    ctx = None
    if ctx_col is not None and (ctx_col in canon.columns or ctx_col in df.columns):
        ctx = _column(df, canon, ctx_col, "context")[on]
    clicks = (c[on] > 0).astype(np.float64)
    if examination == "harvest":
        if ctx is None:
            raise InputError(f"intervention harvesting needs a context column, '{ctx_col}' is not in the log",
                             column=str(ctx_col), fix="pass --context COL (the user or query id)")
        pb = harvest_interventions(clicks, pos[on], ctx, items, n_positions=k, bootstrap=bootstrap,
                                   ci_level=ci_level, seed=seed)
        if pb.extra["share_rows_used"] < 0.1:
            warnings.append(f"intervention harvesting used {pb.extra['share_rows_used']:.1%} of the rows "
                            f"({pb.extra['n_pairs_used']:,} (context, item) pairs seen at two or more slots): "
                            "the curve is noisy; check its intervals")

        def refit(m: np.ndarray) -> np.ndarray:
            return harvest_interventions(clicks[m], pos[on][m], ctx[m], items[m], n_positions=k,
                                         bootstrap=0, seed=seed).examination

        # halves by context: a (context, item) pair's rows stay in one half
        _verdict(pb, None, refit, ctx, bootstrap, ci_level, seed, warnings)
        return pb, warnings
    if relevance_features is not None:
        X = np.asarray(relevance_features, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != len(canon):
            raise InputError(f"relevance_features must be one row per log row ({len(canon)})",
                             column="relevance_features", fix="pass an (n_rows, n_features) matrix")
        pb = regression_em(clicks, pos[on], features=X[on], n_positions=k, bootstrap=bootstrap,
                           ci_level=ci_level, seed=seed)

        def refit(m: np.ndarray) -> np.ndarray:
            return regression_em(clicks[m], pos[on][m], features=X[on][m], n_positions=k, bootstrap=0,
                                 seed=seed).examination
    else:
        group_values = _column(df, canon, relevance_groups, "relevance group")
        pb = regression_em(clicks, pos[on], groups=group_values[on], n_positions=k, bootstrap=bootstrap,
                           ci_level=ci_level, seed=seed)

        def refit(m: np.ndarray) -> np.ndarray:
            return regression_em(clicks[m], pos[on][m], groups=group_values[on][m], n_positions=k, bootstrap=0,
                                 seed=seed).examination
    ident = identification_check(pos[on], items, ctx)
    randomised, p = _ranking_is_randomised(pos[on], items)
    pb.extra.update(ident)
    pb.extra.update({"ranking_randomised_test_p": p, "ranking_looks_randomised": randomised})
    share_pair = ident.get("share_rows_pair_multi_position")
    if relevance_features is None and not randomised:
        pair_txt = (f"; only {share_pair:.0%} of rows belong to a ({ctx_col}, item) pair seen at two or more "
                    "slots, so the pairs cannot identify it either" if share_pair is not None and share_pair < 0.5
                    else "")
        warnings.append(
            f"regression-EM per '{relevance_groups}' assumes a group's relevance does not depend on the slot it "
            f"is shown at, but the slots are not randomised here (items sit at systematically different slots; "
            f"ANOVA p={p:.2g}): a personalised ranking shows an item higher to the users who like it more, "
            f"which biases examination downwards at deep slots{pair_txt}. Prefer a randomised slice "
            "(--examination randomized), harvesting when pairs repeat (--examination harvest), or EM with a "
            "relevance model on the ranker's features (--relevance-features text).")
    if relevance_features is not None and not randomised:
        # the features' assumption cannot be checked from clicks; what can be shown is how much the
        # relevance model moves the curve away from the per-item EM that a personalised ranking biases
        item_em = regression_em(clicks, pos[on], groups=items, n_positions=k, bootstrap=0, seed=seed)
        gap = np.abs(pb.examination - item_em.examination)
        pb.extra["item_em_examination"] = item_em.examination.tolist()
        warnings.append(
            "regression-EM with a relevance model on features: the slots are not randomised here "
            f"(ANOVA p={p:.2g}), so the curve is right only if the features explain the relevance the ranking "
            f"used; it differs from per-item EM by up to {gap.max():.3f} (slot {int(gap.argmax())}), a measure of "
            "how much the ranking is confounded with relevance. Check it against a randomised slice when one exists.")
    share = pb.extra.get("share_rows_multi_position")
    if pb.extra.get("at_upper_bound") or (share is not None and share < 0.5):
        warnings.append(
            "regression-EM is weakly identified here: "
            f"{(share or 0):.0%} of rows belong to relevance groups seen at two or more positions"
            + (f"; examination hit its bound at positions {pb.extra['at_upper_bound']}"
               if pb.extra.get("at_upper_bound") else "")
            + ". Prefer a randomised slice (--examination randomized on randomised logs) or coarser groups.")
    _verdict(pb, randomised, refit, _request_keys(df, canon, schema, on), bootstrap, ci_level, seed, warnings)
    return pb, warnings


def _request_keys(df: pd.DataFrame, canon: pd.DataFrame, schema: LogSchema, on: np.ndarray) -> np.ndarray:
    """Split-half keys for EM: the request (a list's rows stay together), else the row."""
    col = schema.request_id
    if col is not None and (col in canon.columns or col in df.columns):
        return _column(df, canon, col, "request id")[on]
    return np.arange(int(on.sum()))


def _verdict(pb: PositionBias, randomised: bool | None, refit, keys: np.ndarray, bootstrap: int, ci_level: float,
             seed: int, warnings: list[str]) -> None:
    """Trust verdict of an estimated curve (see :func:`causalrec.debias.position.examination_verdict`).

    Precision from the bootstrap interval when one was computed, else from one
    split-half replicate (two more fits on half the rows).
    """
    if bootstrap and bootstrap > 1:
        examination_verdict(pb, randomised=randomised, precision_from="bootstrap")
    else:
        hw = split_half_width(refit, keys, ci_level=ci_level, seed=seed)
        examination_verdict(pb, randomised=randomised, half_width=hw, precision_from="split-half")
    if not pb.extra["trusted"]:
        warnings.append(f"examination curve ({pb.method}) NOT trusted: " + "; ".join(pb.extra["issues"]))


# ``debias`` has a boolean parameter of the same name; it calls the function through this alias.
estimate_propensity_fn = estimate_propensity


def _label_shift(items: pd.Series, c: np.ndarray, y: np.ndarray, w: np.ndarray) -> pd.DataFrame:
    """Per item: rows, naive click rate, weighted corrected label mean, and the shift."""
    _, codes = np.unique(items.to_numpy(), return_inverse=True)
    uniq = np.unique(items.to_numpy())
    n = np.bincount(codes).astype(np.float64)
    naive = np.bincount(codes, weights=c) / n
    sw = np.bincount(codes, weights=w)
    corr = np.bincount(codes, weights=w * y) / np.where(sw > 0, sw, np.nan)
    share_w = sw / sw.sum()
    return pd.DataFrame({
        "item_id": uniq, "n": n.astype(np.int64), "naive_label": naive, "corrected_label": corr,
        "shift": corr - naive, "share_rows": n / n.sum(), "share_weight": share_w,
    })
