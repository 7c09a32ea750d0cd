"""Debiased training weights and labels of a Spark DataFrame, computed where the rows are.

``causalrec.debias.debias(spark_df, ...)`` lands here. Two jobs:

1. every partition validates its rows with the in-process validation (same messages) and
   applies the in-process formulas to them: the IPS weights with the propensity floor and the
   weight ceiling (:func:`causalrec.debias.weights.exposure_weights`), the labels
   ``c / max(rho_k, position_clip)`` (:func:`causalrec.debias.labels.ips_labels`). It returns
   their mergeable sums: ``Moments`` of the clicks and of ``(w y, w)`` (the corrected mean
   ``sum w y / sum w`` and its delta-method SE, as in process), ``sum w``, ``sum w^2``
   (Kish's ESS), counts clipped / capped, extremes;
2. the output: a lazy Spark DataFrame with the input columns plus ``weight``,
   ``corrected_label`` and the provenance columns, the same per-row code again, with SNIPS
   dividing by the pooled mean weight from job 1 (``w / mean(w)``, the one line of
   ``exposure_weights`` that needs every row). Write it with ``frame.write.parquet``.

Weight quantiles come from Spark's exact ``percentile`` over the output (the in-process
``np.quantile`` definition, linear interpolation).

``dr`` labels need a cross-fitted outcome model ``r_hat`` of the IPS label on the item one-hot
and the covariates (:func:`causalrec.debias.correct._outcome_features`), fitted with the SNIPS
weights. Job 1 then also returns each partition's row count (its rows' global numbers, hence
the row-hash folds of :func:`causalrec.models.folds.row_hash_folds`) and the design's
statistics (item levels; per covariate its count, mean and sum of squares, merged by Chan's
formula, or its levels). A fit job collects the rows' item, covariates, IPS label, weight and
fold (a seeded sample at the same rate in every fold above ``fit_rows``:
:func:`causalrec.models.folds.row_hash_sample`); the driver fits one model per fold on the other
folds' rows with :func:`causalrec.models.crossfit.cross_fit` (the in-process engine of
``cross_fit_predict``) and broadcasts the fold models. The summary job and the output transform
then build each batch's design and predict it with its rows' fold models on the executors
(:meth:`~causalrec.models.crossfit.CrossFit.predict_folds`), and apply
:func:`causalrec.debias.labels.dr_labels`. With the same rows in the same order (a Parquet scan,
or ``createDataFrame`` without a shuffle) the labels equal in-process ``debias(...,
folds="hash")``.

Estimated propensities without covariates (the empirical item share per position) come from
(item, position) counts summed over partitions (:func:`_item_shares`).

Not on Spark (``InputError``): a propensity model on covariates, candidate (exposure) mode, an
``outcome_features`` matrix, and estimating the examination curve (``em``, ``randomized``):
estimate it in process on a sample and pass it as ``examination=curve``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalrec.diagnostics.weights import ess_from_sums, ess_warning
from causalrec.engines.spark import Shipped, run_partitions
from causalrec.errors import InputError
from causalrec.models.folds import row_hash_folds, row_hash_sample
from causalrec.results import CausalResult, Estimate, jsonable

NEW_COLUMNS = {"weight": "double", "corrected_label": "double", "debias_method": "string",
               "debias_clip": "double", "debias_model": "string", "debias_propensity": "double",
               "debias_examination": "double"}


@dataclass
class SparkDebiasResult(CausalResult):
    """Like :class:`causalrec.debias.DebiasResult`, with ``frame`` a (lazy) Spark DataFrame."""

    frame: Any = None
    title: str = "causalrec debias (Spark)"


def debias_spark(sdf, *, schema, method: str, examination, clip: float | None, cap: float | None,
                 position_clip: float | None, config: dict, outcome_model: Any = None, n_folds: int = 5,
                 seed: int = 0, fit_rows: int = 1_000_000, estimate_propensity: bool = False) -> SparkDebiasResult:
    from pyspark.sql import functions as F

    from causalrec.data.validation import check_numeric, validate_log
    from causalrec.debias.correct import _outcome_features, with_corrected_columns
    from causalrec.debias.labels import dr_labels, ips_labels
    from causalrec.debias.position import PositionBias, position_bias_from_curve
    from causalrec.debias.weights import exposure_weights
    from causalrec.ope.estimators import Moments

    if isinstance(fit_rows, bool) or not isinstance(fit_rows, (int, np.integer)) or fit_rows < 1:
        raise InputError(f"spark_fit_rows must be a positive integer, got {fit_rows!r}", column="spark_fit_rows",
                         fix="e.g. spark_fit_rows=1_000_000")
    dr = method == "dr"
    covs = tuple(schema.covariates) if dr else ()
    use_position = schema.position is not None and schema.position in sdf.columns and not (
        isinstance(examination, str) and examination == "none")
    pb = None
    if use_position:
        if isinstance(examination, str):
            raise InputError(f"--examination {examination} estimates the examination curve from the whole log; "
                             "not on Spark", column="--examination",
                             fix="use --examination none, or estimate the curve in process on a sample and pass "
                             "it (debias(..., examination=[rho_1, rho_2, ...]))")
        pb = examination if isinstance(examination, PositionBias) else position_bias_from_curve(examination)
    estimated = estimate_propensity and method != "naive"
    if estimated and schema.covariates:
        raise InputError("a propensity model on covariates does not run on Spark (the empirical item share does)",
                         column="--covariates", fix="drop --covariates to estimate the item share per position, "
                         "pass the logged propensity column, or run in process")
    needs_prop = method in ("ips", "snips", "dr") and not estimated
    require = ["item_id", "outcome"] + (["propensity"] if needs_prop else []) + (["position"] if use_position else [])
    wmethod = "none" if method == "naive" else "ips"  # SNIPS: divided by the pooled mean afterwards
    prop_source = "not used" if method == "naive" else f"logged column '{schema.propensity}'"
    names = schema.present(pd.DataFrame(columns=list(sdf.columns)))
    share = None
    share_bytes = 0
    if estimated:
        share, by_position, share_bytes = _item_shares(sdf, lambda b: validate_log(b, schema, require=require,
                                                                                   command="debias"))
        prop_source = "empirical item share" + (" per position" if by_position else "")

    def rows_of(b: pd.DataFrame, off: int = 0, fitted=None):
        """The in-process per-row formulas on one batch; ``fitted`` (dr): the fold models and design."""
        canon = validate_log(b, schema, require=require, command="debias")
        c = check_numeric(canon, "outcome", names)
        if share is not None:
            prop = _share_of(share, canon)
        else:
            prop = canon["propensity"].to_numpy(np.float64) if "propensity" in canon.columns else np.ones(len(canon))
        ew = exposure_weights(prop, wmethod, clip=clip, cap=cap)
        rho = pb.at(canon["position"].to_numpy(np.int64)) if pb is not None else np.ones(len(canon))
        y = c.copy() if method == "naive" else ips_labels(c, rho, position_clip=position_clip)
        if fitted is not None:
            X = _outcome_features(canon, covs, fitted["items"], fitted["stats"])
            r_hat = fitted["cf"].predict_folds({"X": X}, row_hash_folds(off, len(canon), n_folds, seed))["pred"]
            y = dr_labels(c, rho, r_hat, position_clip=position_clip)
        return c, y, ew, prop, rho, canon

    ship = None
    offsets: dict[int, int] = {}
    fit_info = fit_warning = None
    design_bytes = 0
    if dr:
        offsets, design, n_all, sw_all, design_bytes = _design_stats(sdf, rows_of, covs)
        if n_all == 0:
            raise InputError("the log has no rows", fix="check the file")
        fitted, fit_info, fit_warning, nbytes = _fit_outcome(sdf, rows_of, offsets, design, n_all, sw_all / n_all,
                                                             covs, outcome_model, n_folds, seed, fit_rows)
        design_bytes += nbytes
        ship = Shipped(sdf, fitted)  # kept while the lazy output frame may run (not released)
    model_name = fit_info["model"] if fit_info is not None else "none"

    def batches_with_offsets(pid, it):
        """``(global number of the batch's first row, batch)``: dr's row-hash folds need the first."""
        off = offsets.get(pid, 0) if dr else 0
        for b in it:
            if len(b) == 0:
                continue
            yield off, b
            off += len(b)

    def sums(pid, it):
        out = {"n": 0, "naive": Moments(), "corrected": Moments(), "sw": 0.0, "sw2": 0.0, "clipped": 0,
               "capped": 0, "wmax": -np.inf, "pmin": np.inf, "ymax": -np.inf}
        fitted = ship.value() if ship is not None else None
        for off, b in batches_with_offsets(pid, it):
            c, y, ew, prop, _, _ = rows_of(b, off, fitted)
            w = ew.weights
            out["n"] += len(c)
            out["naive"] = out["naive"].merge(Moments.of_terms(None, c, None))
            out["corrected"] = out["corrected"].merge(Moments.of_terms(None, w * y, w))
            out["sw"] += float(w.sum())
            out["sw2"] += float(w @ w)
            out["clipped"] += ew.n_clipped
            out["capped"] += ew.n_capped
            out["wmax"] = max(out["wmax"], float(w.max()))
            out["pmin"] = min(out["pmin"], float(prop.min()))
            out["ymax"] = max(out["ymax"], float(y.max()))
        return out

    res = run_partitions(sdf, sums)
    tot = {"n": 0, "naive": Moments(), "corrected": Moments(), "sw": 0.0, "sw2": 0.0, "clipped": 0, "capped": 0,
           "wmax": -np.inf, "pmin": np.inf, "ymax": -np.inf}
    for part in res.values:
        for k in ("n", "sw", "sw2", "clipped", "capped"):
            tot[k] += part[k]
        for k in ("naive", "corrected"):
            tot[k] = tot[k].merge(part[k])
        tot["wmax"] = max(tot["wmax"], part["wmax"])
        tot["pmin"] = min(tot["pmin"], part["pmin"])
        tot["ymax"] = max(tot["ymax"], part["ymax"])
    n = tot["n"]
    if n == 0:
        raise InputError("the log has no rows", fix="check the file")
    scale = tot["sw"] / n if method in ("snips", "dr") else 1.0  # dr trains with SNIPS weights, as in process
    provenance = (f"propensity: {prop_source}; examination: {pb.method if pb is not None else 'none'}; "
                  f"outcome model: {model_name}")

    def transform(it):
        from pyspark import TaskContext

        fitted = ship.value() if ship is not None else None
        for off, b in batches_with_offsets(TaskContext.get().partitionId(), it):
            _, y, ew, prop, rho, _ = rows_of(b, off, fitted)
            yield with_corrected_columns(b.copy(), weight=ew.weights / scale, label=y, method=method, clip=clip,
                                         provenance=provenance, propensity=prop, examination=rho)

    kept = [f for f in sdf.schema.fields if f.name not in NEW_COLUMNS]
    out_schema = ", ".join([f"`{f.name}` {f.dataType.simpleString()}" for f in kept] +
                           [f"`{k}` {v}" for k, v in NEW_COLUMNS.items()])
    frame = sdf.select(*[f"`{f.name}`" for f in kept], *[F.col(f"`{k}`") for k in NEW_COLUMNS if k in sdf.columns]
                       ).mapInPandas(transform, out_schema)
    q = frame.agg(F.percentile("weight", [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0]).alias("q")).collect()[0]["q"]
    quant = dict(zip(("min", "p01", "p25", "p50", "p75", "p99", "max"), map(float, q), strict=True))
    ess = ess_from_sums(tot["sw"], tot["sw2"])
    warnings = []
    msg = ess_warning(ess, n, "corrected training will be noisy; consider --clip")
    if msg and method != "naive":
        warnings.append(msg)
    if pb is not None and position_clip is not None and np.any(pb.examination < position_clip):
        warnings.append(f"examination below position_clip={position_clip} at positions "
                        f"{np.flatnonzero(pb.examination < position_clip).tolist()}: their labels are clipped "
                        "(biased down)")
    n_items = int(sdf.agg(F.countDistinct(schema.item_id)).collect()[0][0])
    diagnostics = {
        "weight_method": "none" if method == "naive" else ("ips" if method == "ips" else "snips"),
        "ess": ess, "ess_ratio": ess / n, "max_weight": quant["max"], "weight_p99": quant["p99"],
        "weight_p50": quant["p50"], "propensity_min": tot["pmin"],
        "clip": None if method == "naive" else clip, "cap": None if method == "naive" else cap,
        "share_clipped": tot["clipped"] / n, "share_capped": tot["capped"] / n,
        "n_items": n_items, "propensity_source": prop_source, "outcome_model": model_name, "label_max": tot["ymax"],
    }
    naive_mean, naive_se = tot["naive"].estimate_se()
    corr_mean, corr_se = tot["corrected"].estimate_se()
    ci = config.get("ci_level", 0.95)
    estimates = [Estimate.normal("naive", "mean_label", naive_mean, naive_se, ci),
                 Estimate.normal(method, "mean_label", corr_mean, corr_se, ci)]
    if pb is not None:
        estimates += pb.estimates()
    if fit_warning:
        warnings.append(fit_warning)
    config = {**config, "engine": "spark", "spark": {"partitions": res.n_partitions,
                                                     "bytes_collected": res.nbytes + design_bytes + share_bytes}}
    if fit_info is not None:
        config["spark"]["outcome_fit"] = fit_info
    return SparkDebiasResult(command="debias", n_rows=n, estimates=estimates, diagnostics=jsonable(diagnostics),
                             warnings=warnings, config=config, frame=frame)


def _item_shares(sdf, validate):
    """``(share, by_position, bytes)``: the empirical propensity of every (item, position) cell,
    ``n_{a,k} / n_k`` (or ``n_a / n`` without positions), from counts summed over partitions: the
    MLE of a context-free logging policy, :func:`causalrec.debias.weights.empirical_propensity`
    (the same division of the same counts, so the same numbers)."""

    def part(pid, it):
        out = []
        for b in it:
            if len(b) == 0:
                continue
            canon = validate(b)
            keys = ["item_id", "position"] if "position" in canon.columns else ["item_id"]
            out.append(canon.groupby(keys, sort=False).size())
        return out

    res = run_partitions(sdf, part)
    parts = [c for p in res.values for c in p]
    if not parts:
        raise InputError("the log has no rows", fix="check the file")
    counts = pd.concat(parts).groupby(level=list(range(parts[0].index.nlevels))).sum()
    by_position = counts.index.nlevels == 2
    if by_position:
        per_pos = counts.groupby(level=1).sum()
        share = counts / per_pos.reindex(counts.index.get_level_values(1)).to_numpy().astype(np.float64)
    else:
        share = counts / float(counts.sum())
    return share.astype(np.float64), by_position, res.nbytes


def _share_of(share: pd.Series, canon: pd.DataFrame) -> np.ndarray:
    """The share of each row's (item[, position]) cell."""
    if share.index.nlevels == 2:
        idx = pd.MultiIndex.from_arrays([canon["item_id"].to_numpy(), canon["position"].to_numpy()])
    else:
        idx = pd.Index(canon["item_id"].to_numpy())
    return share.reindex(idx).to_numpy(np.float64)


def _design_stats(sdf, rows_of, covs: tuple[str, ...]):
    """``({partition: first global row}, design, n, sum of IPS weights, bytes)``: row offsets and the dr
    design's statistics, ``{"items", "stats"}`` (:func:`causalrec.debias.correct._covariate_stats`
    merged over batches and partitions)."""
    from causalrec.debias.correct import _covariate_stats, _item_levels

    def merge(acc: dict, c: str, st: tuple) -> None:
        if c not in acc:
            acc[c] = st
        elif acc[c][0] != st[0]:
            raise InputError(f"covariate '{c}' is numeric in some rows and not in others", column=c,
                             fix="cast the column to one type")
        else:
            acc[c] = _chan(acc[c], st) if st[0] == "num" else ("cat", acc[c][1] | st[1])

    def part(pid, it):
        n, sw = 0, 0.0
        items: set[str] = set()
        acc: dict[str, tuple] = {}
        for b in it:
            if len(b) == 0:
                continue
            _, _, ew, _, _, canon = rows_of(b)
            n += len(canon)
            sw += float(ew.weights.sum())  # summed as the summary job sums it: the same SNIPS scale
            items.update(_item_levels(canon))
            for c, st in _covariate_stats(canon, covs).items():
                m = len(canon)  # numeric: (count, mean, sum of squared deviations = m sd^2)
                merge(acc, c, ("num", float(m), st[1], m * st[2] ** 2) if st[0] == "num" else ("cat", set(st[1])))
        return n, sw, items, acc

    res = run_partitions(sdf, part)
    counts = np.asarray([v[0] for v in res.values], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sw = 0.0
    items: set[str] = set()
    acc: dict[str, tuple] = {}
    for _, s_w, its, a in res.values:
        sw += s_w
        items |= its
        for c, st in a.items():
            merge(acc, c, st)
    stats = {}
    for c in covs:
        st = acc.get(c, ("num", 0.0, 0.0, 0.0))
        stats[c] = (("num", st[2], float(np.sqrt(st[3] / st[1])) if st[1] else 0.0) if st[0] == "num"
                    else ("cat", tuple(sorted(st[1]))))
    offsets = {i: int(v) for i, v in enumerate(starts)}
    return offsets, {"items": tuple(sorted(items)), "stats": stats}, int(counts.sum()), sw, res.nbytes


def _chan(a: tuple, b: tuple) -> tuple:
    """Merge ``("num", n, mean, M2)`` of two row sets (Chan, Golub & LeVeque 1979)."""
    _, na, ma, sa = a
    _, nb, mb, sb = b
    n = na + nb
    if n == 0:
        return a
    d = mb - ma
    return ("num", n, ma + d * nb / n, sa + sb + d * d * na * nb / n)


def _fit_outcome(sdf, rows_of, offsets, design, n_total: int, scale: float, covs, outcome_model, n_folds: int,
                 seed: int, fit_rows: int):
    """Fit dr's fold models on the driver (see the module docstring): ``(fitted, info, warning, bytes)``."""
    from causalrec.debias.correct import _outcome_features
    from causalrec.models import OutcomeModel
    from causalrec.models.crossfit import CrossFit, SingleModel, cross_fit

    rate = 1.0 if n_total <= fit_rows else fit_rows / n_total
    cols = ["item_id", *covs]

    def part(pid, it):
        off = offsets.get(pid, 0)
        out = []
        for b in it:
            if len(b) == 0:
                continue
            _, y_ips, ew, _, _, canon = rows_of(b)
            n = len(canon)
            keep = np.flatnonzero(row_hash_sample(off, n, rate, seed))
            out.append((canon[cols].iloc[keep].reset_index(drop=True), y_ips[keep], ew.weights[keep],
                        row_hash_folds(off, n, n_folds, seed)[keep]))
            off += n
        return out

    res = run_partitions(sdf, part)
    chunks = [c for p in res.values for c in p]  # partition order, then batch order: the log's row order
    frame = pd.concat([c[0] for c in chunks], ignore_index=True) if chunks else pd.DataFrame(columns=cols)
    target, w_ips, folds = (np.concatenate([c[i] for c in chunks]) if chunks else np.zeros(0) for i in (1, 2, 3))
    if len(target) < n_folds:
        raise InputError(f"{len(target)} rows were drawn to fit the dr outcome model, fewer than {n_folds} folds",
                         column="spark_fit_rows", fix="raise spark_fit_rows")
    w = w_ips / scale  # SNIPS weights of the whole log (w / mean w), as in process; a sample keeps them
    reg = outcome_model if outcome_model is not None else OutcomeModel()
    spec = SingleModel(reg, method="predict")
    X = _outcome_features(frame, covs, design["items"], design["stats"])
    cf = cross_fit(spec, {"X": X, "y": target, "predict_X": None, "sample_weight": w}, folds.astype(np.int64),
                   predict=len(spec.cands) > 1)  # out-of-fold losses only to choose among candidates
    shipped = CrossFit(predictions={}, folds=np.zeros(0, dtype=np.int64), models=cf.models, spec=spec,
                       selection=cf.selection, cross_fitted=cf.cross_fitted)
    info = {"model": type(reg).__name__, "fit_rows": int(fit_rows), "rows_fitted": int(len(target)),
            "rows": n_total, "folds": "hash",
            "fit_sample": None if rate == 1.0 else {"rate": rate, "how": "seeded row hash, the same rate in every fold"}}
    warning = None
    if rate < 1.0:
        warning = (f"the dr outcome model was fitted on the driver from a sample of {len(target):,} of {n_total:,} "
                   f"rows (rate {rate:.3g}, the same in every fold; spark_fit_rows={fit_rows:,})")
    return {"cf": shipped, **design}, info, warning, res.nbytes


__all__ = ["debias_spark", "SparkDebiasResult"]
