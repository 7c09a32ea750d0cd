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

Not on Spark (``InputError``): ``dr`` labels (a cross-fitted outcome model), estimated
propensities, candidate (exposure) mode, and estimating the examination curve (``em``,
``randomized``): estimate it in process on a sample and pass it as ``examination=curve``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalrec.diagnostics.weights import ess_from_sums, ess_warning
from causalrec.engines.spark import run_partitions
from causalrec.errors import InputError
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
                 position_clip: float | None, config: dict) -> SparkDebiasResult:
    from pyspark.sql import functions as F

    from causalrec.data.validation import check_numeric, validate_log
    from causalrec.debias.correct import with_corrected_columns
    from causalrec.debias.labels import ips_labels
    from causalrec.debias.position import PositionBias, position_bias_from_curve
    from causalrec.debias.weights import exposure_weights
    from causalrec.ope.estimators import Moments

    if method == "dr":
        raise InputError("dr labels need a cross-fitted outcome model over the whole log; not on Spark yet",
                         column="--method", fix="use ips or snips with --engine spark, or run dr in process")
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
    needs_prop = method in ("ips", "snips")
    require = ["item_id", "outcome"] + (["propensity"] if needs_prop else []) + (["position"] if use_position else [])
    wmethod = "none" if method == "naive" else "ips"  # SNIPS: divided by the pooled mean afterwards
    prop_source = "not used" if method == "naive" else f"logged column '{schema.propensity}'"
    names = schema.present(pd.DataFrame(columns=list(sdf.columns)))

    def rows_of(b: pd.DataFrame):
        canon = validate_log(b, schema, require=require, command="debias")
        c = check_numeric(canon, "outcome", names)
        prop = canon["propensity"].to_numpy(np.float64) if "propensity" in canon.columns else np.ones(len(canon))
        ew = exposure_weights(prop, wmethod, clip=clip, cap=cap)
        rho = pb.at(canon["position"].to_numpy(np.int64)) if pb is not None else np.ones(len(canon))
        y = c.copy() if method == "naive" else ips_labels(c, rho, position_clip=position_clip)
        return c, y, ew, prop, rho

    def sums(pid, it):
        out = {"n": 0, "naive": Moments(), "corrected": Moments(), "sw": 0.0, "sw2": 0.0, "clipped": 0,
               "capped": 0, "wmax": -np.inf, "pmin": np.inf, "ymax": -np.inf}
        for b in it:
            if len(b) == 0:
                continue
            c, y, ew, prop, _ = rows_of(b)
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
    scale = tot["sw"] / n if method == "snips" else 1.0
    provenance = f"propensity: {prop_source}; examination: {pb.method if pb is not None else 'none'}; outcome model: none"

    def transform(it):
        for b in it:
            if len(b) == 0:
                continue
            _, y, ew, prop, rho = rows_of(b)
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
        "weight_method": "none" if method == "naive" else ("snips" if method == "snips" else "ips"),
        "ess": ess, "ess_ratio": ess / n, "max_weight": quant["max"], "weight_p99": quant["p99"],
        "weight_p50": quant["p50"], "propensity_min": tot["pmin"],
        "clip": None if method == "naive" else clip, "cap": None if method == "naive" else cap,
        "share_clipped": tot["clipped"] / n, "share_capped": tot["capped"] / n,
        "n_items": n_items, "propensity_source": prop_source, "outcome_model": "none", "label_max": tot["ymax"],
    }
    naive_mean, naive_se = tot["naive"].estimate_se()
    corr_mean, corr_se = tot["corrected"].estimate_se()
    ci = config.get("ci_level", 0.95)
    estimates = [Estimate.normal("naive", "mean_label", naive_mean, naive_se, ci),
                 Estimate.normal(method, "mean_label", corr_mean, corr_se, ci)]
    if pb is not None:
        estimates += pb.estimates()
    config = {**config, "engine": "spark", "spark": {"partitions": res.n_partitions, "bytes_collected": res.nbytes}}
    return SparkDebiasResult(command="debias", n_rows=n, estimates=estimates, diagnostics=jsonable(diagnostics),
                             warnings=warnings, config=config, frame=frame)


__all__ = ["debias_spark", "SparkDebiasResult"]
