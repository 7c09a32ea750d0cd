"""``analyze``: the full A/B analysis of one experiment.

Steps, in the order a careful analyst takes them:

1. Aggregate to the randomisation unit (``unit``), so that inference treats
   independent units, never correlated impressions, as the sample.
2. Sample-ratio-mismatch check against the designed split (``srm``), reported
   first: with an SRM nothing below can be trusted.
3. Per metric and per treatment arm versus the control: the unadjusted
   estimate (Welch for means, Wald for 0/1 proportions, delta method for
   ratios), then CUPED (pre-period covariates) and CUPAC (model prediction)
   adjustments, each as a difference and a relative lift (``estimators``,
   ``cuped``).
4. Holm and Benjamini-Hochberg correction over the primary p-values of all
   metrics x comparisons (``multiple``); the primary estimator is the most
   adjusted one requested (cupac > cuped > unadjusted), fixed before looking
   at the data.
5. Segment effects (same estimator within each segment value), corrected
   over segments x metrics x comparisons.
6. Power: the minimum detectable effect at the achieved sample size, with
   and without adjustment, and the units needed for a planned lift (``power``).
7. Optionally, always-valid mSPRT p-values (``sequential``).

The control is ``control`` when given; otherwise the variant called
``control`` (any case) if there is one, else the first variant in sorted
order. Every other variant is compared with the control (Dunnett-style
many-to-one), never with each other.

Missing pre-period covariate values are imputed with the pooled mean and a
missingness indicator is added as a further covariate (the count is in the
warnings). Because covariates are pre-treatment, this keeps every unit and
keeps the adjusted estimator unbiased; dropping units would not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.readers import read_table
from causalrec.data.validation import check_numeric
from causalrec.errors import InputError
from causalrec.experiments import estimators as est
from causalrec.experiments import power as pw
from causalrec.experiments.cuped import Adjustment, cuped_mean, cuped_ratio
from causalrec.experiments.multiple import adjust
from causalrec.experiments.result import ABResult
from causalrec.experiments.srm import parse_split, srm_test
from causalrec.experiments.units import N_ROWS, to_units
from causalrec.results import Estimate


@dataclass(frozen=True)
class Metric:
    """A metric on the unit frame: a mean of ``num`` or a ratio ``num / den``."""

    name: str
    kind: str  # "mean" | "ratio"
    num: str
    den: str | None = None


def parse_ratio(spec: str) -> tuple[str, str]:
    """``"clicks/sessions"`` -> ``("clicks", "sessions")``."""
    parts = [p.strip() for p in str(spec).split("/")]
    if len(parts) != 2 or not all(parts):
        raise InputError(f"ratio metric {spec!r} is not of the form NUM/DEN", column="--ratio",
                         fix="write it as numerator column / denominator column, e.g. --ratio clicks/sessions")
    return parts[0], parts[1]


def analyze(
    data: str | os.PathLike | pd.DataFrame,
    *,
    variant: str,
    metrics: Sequence[str] = (),
    ratios: Sequence[str] = (),
    unit: str | None = None,
    covariates: Sequence[str] = (),
    cuped: bool = False,
    cupac: Any = None,
    expected_split: Any = None,
    control: str | None = None,
    segment: str | None = None,
    alpha: float = 0.05,
    ci_level: float | None = None,
    srm_alpha: float = 0.001,
    power: float = 0.8,
    planned_lift: float = 0.01,
    planning: bool = True,
    sequential: bool = False,
    sequential_tau: float | None = None,
    order: str | None = None,
    n_looks: int = 20,
    aggregate: str = "mean",
    max_segments: int = 50,
    seed: int = 0,
) -> ABResult:
    """Analyse an A/B experiment; see the module docstring for the steps.

    Parameters
    ----------
    data: CSV/Parquet path or DataFrame, one row per unit (or per impression with ``unit``).
    variant: column holding the arm label.
    metrics: columns analysed as means per unit (0/1 columns as proportions).
    ratios: ``"NUM/DEN"`` ratio metrics (delta method on unit-level sums).
    unit: randomisation-unit column; rows are summed per unit first. Then a
        ``metrics`` column is analysed per row (``aggregate="mean"``: the ratio
        ``sum(col) / rows`` per unit, delta method) or per unit (``"sum"``).
    covariates: pre-period covariate columns for CUPED (implies ``cuped``).
    cuped: adjust with ``covariates``, or, when none are given, with the
        column ``pre_<metric>`` for each metric (``pre_<numerator>`` for a ratio).
    cupac: a :class:`causalrec.experiments.cupac.CUPAC` (or a dict of its
        arguments): adjust with an out-of-fold model prediction.
    expected_split: designed split (``"50/50"``, ``{"A": 1, "B": 1}``, ...); default equal.
    control: control arm label (default: see module docstring).
    segment: column whose values get their own (corrected) effects.
    alpha: test level (Holm / BH at this level); ``ci_level`` defaults to ``1 - alpha``.
    srm_alpha: SRM threshold (default 0.001).
    power, planned_lift, planning: planning figures (power of the MDE; relative lift to
        plan for); ``planning=False`` skips them (faster, for simulation studies).
    sequential, sequential_tau, order, n_looks: always-valid p-values; with
        ``order`` (e.g. first-exposure time) over ``n_looks`` looks.
    """
    from causalrec.experiments.cupac import CUPAC

    ci_level = 1.0 - alpha if ci_level is None else ci_level
    if not 0 < alpha < 1 or not 0 < ci_level < 1:
        raise InputError("alpha and ci_level must lie in (0, 1)", column="--alpha", fix="e.g. --alpha 0.05")
    if aggregate not in ("mean", "sum"):
        raise InputError(f"aggregate must be 'mean' or 'sum', got {aggregate!r}", column="aggregate",
                         fix="'mean' analyses a per-row rate, 'sum' the per-unit total")
    metrics = list(dict.fromkeys(metrics))
    ratio_pairs = [parse_ratio(r) for r in ratios]
    if not metrics and not ratio_pairs:
        raise InputError("no metric to analyse", column="--metric",
                         fix="name at least one --metric COL or --ratio NUM/DEN")
    if isinstance(cupac, dict):
        cupac = CUPAC(**cupac)
    covariates = list(dict.fromkeys(covariates))
    if covariates:
        cuped = True
    if cuped and not covariates:
        auto = {m: f"pre_{m}" for m in metrics}
        auto.update({f"{n}/{d}": f"pre_{n}" for n, d in ratio_pairs})
    else:
        auto = {}
    cupac_cols = list(cupac.columns()) if cupac is not None else []

    wanted = [variant, *metrics, *[c for p in ratio_pairs for c in p], *covariates, *auto.values(),
              *cupac_cols, *([segment] if segment else []), *([unit] if unit else []), *([order] if order else [])]
    if isinstance(data, pd.DataFrame):
        source = data
    else:
        try:  # read only what the analysis needs
            source = read_table(data, columns=list(dict.fromkeys(wanted)))
        except InputError:  # re-read whole, to name the missing column and list what is there
            source = read_table(data)
    missing = [c for c in dict.fromkeys(wanted) if c not in source.columns]
    if missing:
        role = "pre-period covariate for --cuped (or pass --covariate COL)" if missing[0] in auto.values() else "column"
        raise InputError(f"{role} '{missing[0]}' is missing; columns present: {list(source.columns)[:15]}",
                         column=missing[0], fix="check the column names passed on the command line")
    n_rows = len(source)
    if n_rows == 0:
        raise InputError("the log has no rows", fix="check the file")
    cats = source[variant].cat.categories if isinstance(source[variant].dtype, pd.CategoricalDtype) else None

    sums = list(dict.fromkeys([*metrics, *[c for p in ratio_pairs for c in p]]))
    means = list(dict.fromkeys([*covariates, *auto.values(), *(cupac.numeric if cupac else [])]))
    firsts = [c for c in [segment, *(cupac.text_columns if cupac else [])] if c]
    frame, warnings = to_units(source, variant=variant, unit=unit, sums=sums, means=means, firsts=firsts, order=order)

    # metrics on the unit frame
    specs: list[Metric] = []
    for m in metrics:
        if unit is not None and aggregate == "mean":
            specs.append(Metric(m, "ratio", m, N_ROWS))
        else:
            specs.append(Metric(m, "mean", m))
    specs += [Metric(f"{n}/{d}", "ratio", n, d) for n, d in ratio_pairs]

    # variants, control, SRM
    labels = frame[variant].to_numpy()
    variants = sorted(pd.unique(labels).tolist())
    if cats is not None:
        empty = [str(c) for c in cats if str(c) not in variants]
        if empty:
            raise InputError(f"variant {empty[0]!r} has zero units in '{variant}'", column=variant,
                             fix="check the assignment and logging of that arm, or drop the unused category")
    if len(variants) < 2:
        raise InputError(f"column '{variant}' has only one variant ({variants[0]!r}); an experiment needs a "
                         "control and at least one treatment", column=variant,
                         fix="check the --variant column and any filtering of the log")
    if control is None:
        named = [v for v in variants if v.lower() == "control"]
        control = named[0] if named else variants[0]
    control = str(control)
    if control not in variants:
        raise InputError(f"control variant {control!r} has zero units (variants in the data: {variants})",
                         column="--control", fix="pass one of the variants in the data to --control")
    split = parse_split(expected_split, variants)
    counts = {v: int((labels == v).sum()) for v in variants}
    small = [v for v, c in counts.items() if c < 2]
    if small:
        raise InputError(f"variant {small[0]!r} has only {counts[small[0]]} unit(s)", column=variant,
                         fix="each arm needs at least two units for a variance")
    srm = srm_test(counts, split, alpha=srm_alpha)
    if srm.mismatch:
        warnings.insert(0, srm.message())
    treatments = [v for v in variants if v != control]

    # adjustment covariates per metric
    adjusters: list[tuple[str, dict[str, np.ndarray], dict[str, list[str]]]] = []
    if cuped:
        X_shared, names_shared = _covariate_matrix(frame, covariates, warnings) if covariates else (None, [])
        Xs, names = {}, {}
        for s in specs:
            if covariates:
                Xs[s.name], names[s.name] = X_shared, names_shared
            else:
                Xs[s.name], names[s.name] = _covariate_matrix(frame, [auto[s.name]], warnings)
        adjusters.append(("cuped", Xs, names))
    if cupac is not None:
        preds = {s.name: cupac.predict_oof(frame, _target(frame, s), seed=seed) for s in specs}
        adjusters.append(("cupac", {k: v[:, None] for k, v in preds.items()},
                          {s.name: [f"oof_prediction({cupac.describe()})"] for s in specs}))
    primary_name = adjusters[-1][0] if adjusters else None
    adj_names = {a[0]: a[2] for a in adjusters}

    estimates: list[Estimate] = []
    vr_rows: list[dict[str, Any]] = []
    power_rows: list[dict[str, Any]] = []
    for s in specs:
        for t in treatments:
            mc, mt = labels == control, labels == t
            comps = _comparisons(frame, s, mc, mt, adjusters)
            base = comps[0][0]
            for name, (comp, adj) in zip(["unadjusted", *[a[0] for a in adjusters]], comps, strict=True):
                is_primary = (name == primary_name) if primary_name else (name == "unadjusted")
                lab = _labels(s, t, control, comp)
                estimates += _estimates(comp, ci_level, lab, is_primary)
                if adj is not None:
                    ratio_se = comp.se / base.se if base.se > 0 else float("nan")
                    vr_rows.append({
                        "metric": s.name, "variant": t, "estimator": name,
                        "covariates": ", ".join(adj_names[name][s.name]),
                        "rho": adj.rho, "r2": adj.r2, "se_unadjusted": base.se, "se_adjusted": comp.se,
                        "se_ratio": ratio_se, "var_reduction": 1.0 - ratio_se**2,
                        "expected_se_ratio": float(np.sqrt(max(0.0, 1.0 - adj.r2))),
                    })
            if planning:
                power_rows.append(_power_row(s, t, base, comps[-1][0], alpha, power, planned_lift))

    # multiple testing over the primary differences
    prim = [i for i, e in enumerate(estimates) if e.extra["primary"] and e.target == "diff"]
    adj_p = adjust([estimates[i].p_value for i in prim], alpha)
    for j, i in enumerate(prim):
        estimates[i].extra["p_holm"] = float(adj_p["holm"][j])
        estimates[i].extra["p_bh"] = float(adj_p["bh"][j])
        estimates[i].extra["significant_holm"] = bool(adj_p["holm"][j] < alpha)

    if sequential:
        estimates += _sequential(frame, specs, control, treatments, labels, adjusters, alpha, sequential_tau,
                                 order, n_looks)

    seg_frame = _segments(frame, segment, specs, control, treatments, labels, adjusters, alpha, ci_level,
                          max_segments, warnings) if segment else pd.DataFrame()

    arms = pd.DataFrame({
        "variant": variants,
        "role": ["control" if v == control else "treatment" for v in variants],
        "n_units": [counts[v] for v in variants],
        "share": [counts[v] / len(frame) for v in variants],
        "expected_share": [split[v] for v in variants],
        "n_rows": [float(frame.loc[labels == v, N_ROWS].sum()) for v in variants],
    })
    config = {
        "variant": variant, "metrics": metrics, "ratios": list(ratios), "unit": unit, "covariates": covariates,
        "cuped": bool(cuped), "cuped_auto_covariates": auto, "cupac": cupac.describe() if cupac else None,
        "expected_split": split, "control": control, "segment": segment, "alpha": alpha, "ci_level": ci_level,
        "srm_alpha": srm_alpha, "power": power, "planned_lift": planned_lift, "planning": planning, "sequential": sequential,
        "sequential_tau": sequential_tau, "order": order, "n_looks": n_looks, "aggregate": aggregate,
        "primary_estimator": primary_name or "unadjusted", "seed": seed,
        "source": str(data) if not isinstance(data, pd.DataFrame) else "DataFrame",
    }
    diagnostics = {"n_units": len(frame), "srm_p_value": srm.p_value, "srm_mismatch": srm.mismatch,
                   "n_variants": len(variants), "n_comparisons": len(prim)}
    return ABResult(
        command="ab", n_rows=n_rows, estimates=estimates, diagnostics=diagnostics, warnings=warnings,
        config=config, control=control, variants=variants, srm=srm, arms=arms,
        variance_reduction=pd.DataFrame(vr_rows), segments=seg_frame, power=pd.DataFrame(power_rows),
        n_units=len(frame),
    )


# -- pieces ----------------------------------------------------------------------

def _covariate_matrix(frame: pd.DataFrame, cols: Sequence[str], warnings: list[str]) -> tuple[np.ndarray, list[str]]:
    """Covariates as floats; missing values -> pooled mean plus a missingness indicator."""
    blocks, names = [], []
    for c in cols:
        v = check_numeric(frame, c).copy()
        bad = ~np.isfinite(v)
        if bad.all():
            raise InputError(f"covariate '{c}' has no finite values", column=c,
                             fix="drop it from --covariate or fill it")
        if bad.any():
            v[bad] = v[~bad].mean()
            blocks += [v, bad.astype(float)]
            names += [c, f"{c}_missing"]
            msg = (f"covariate '{c}': {int(bad.sum()):,} units with missing values were imputed with the pooled "
                   "mean and a missingness indicator was added (pre-period data, so this keeps every unit "
                   "and the adjusted estimate unbiased)")
            if msg not in warnings:
                warnings.append(msg)
        else:
            blocks.append(v)
            names.append(c)
    return np.column_stack(blocks), names


def _target(frame: pd.DataFrame, s: Metric) -> np.ndarray:
    """What a CUPAC model predicts: the metric, or a ratio's pooled linearisation."""
    num = frame[s.num].to_numpy(dtype=float)
    if s.kind == "mean":
        return num
    den = frame[s.den].to_numpy(dtype=float)
    return num - num.sum() / den.sum() * den


def _comparisons(frame, s: Metric, mc, mt, adjusters) -> list[tuple[est.Comparison, Adjustment | None]]:
    num = frame[s.num].to_numpy(dtype=float)
    den = frame[s.den].to_numpy(dtype=float) if s.kind == "ratio" else None
    if den is not None:
        for m, lab in ((mc, "control"), (mt, "treatment")):
            if den[m].sum() == 0:
                raise InputError(f"ratio '{s.name}': the denominator sums to 0 in the {lab} arm", column=s.den,
                                 fix="choose a denominator that is positive for the units of every arm")
        out = [(est.ratio(num[mc], den[mc], num[mt], den[mt]), None)]
        for name, Xs, _ in adjusters:
            X = Xs[s.name]
            out.append(cuped_ratio(num[mc], den[mc], num[mt], den[mt], X[mc], X[mt], estimator=name))
        return out
    if est.is_binary(num):
        first = est.proportion(num[mc], num[mt])
    else:
        first = est.welch(num[mc], num[mt])
    out = [(first, None)]
    for name, Xs, _ in adjusters:
        X = Xs[s.name]
        out.append(cuped_mean(num[mc], num[mt], X[mc], X[mt], estimator=name))
    return out


def _labels(s: Metric, t: str, control: str, comp: est.Comparison) -> dict[str, Any]:
    return {"metric": s.name, "variant": t, "control": control, "kind": s.kind,
            "n_control": comp.n_c, "n_treatment": comp.n_t,
            "value_control": comp.m_c, "value_treatment": comp.m_t,
            "se_control": float(np.sqrt(comp.v_c)), "se_treatment": float(np.sqrt(comp.v_t))}


def _estimates(comp: est.Comparison, ci_level: float, labels: dict, primary: bool) -> list[Estimate]:
    d, se, lo, hi, p = comp.diff_test(ci_level)
    extra = dict(labels, primary=primary)
    if np.isfinite(comp.df):
        extra["df"] = comp.df
    out = [Estimate(comp.estimator, "diff", d, se, lo, hi, ci_level, p, extra)]
    lift, lse, llo, lhi, lp = comp.lift_test(ci_level)
    out.append(Estimate(comp.estimator, "lift", lift, lse, llo, lhi, ci_level, lp, dict(labels, primary=primary)))
    return out


def _sigma(comp: est.Comparison) -> float:
    s2 = (comp.v_c * comp.n_c**2 + comp.v_t * comp.n_t**2) / (comp.n_c + comp.n_t)
    return float(np.sqrt(s2))


def _power_row(s, t, base, best, alpha, power, planned_lift) -> dict[str, Any]:
    row: dict[str, Any] = {"metric": s.name, "variant": t, "n_control": base.n_c, "n_treatment": base.n_t,
                           "value_control": base.m_c}
    for tag, comp in (("unadjusted", base), ("adjusted", best)):
        sig = _sigma(comp)
        m = pw.mde(sig, comp.n_c, comp.n_t, alpha, power)
        row[f"sd_{tag}"] = sig
        row[f"mde_{tag}"] = m
        row[f"mde_rel_{tag}"] = m / abs(comp.m_c) if comp.m_c else float("nan")
        effect = planned_lift * abs(comp.m_c)
        row[f"power_at_planned_{tag}"] = pw.achieved_power(sig, effect, comp.n_c, comp.n_t, alpha)
        row[f"n_control_needed_{tag}"] = pw.sample_size(sig, effect, alpha, power, comp.n_t / comp.n_c)
        if best is base:
            break
    row["planned_lift"] = planned_lift
    return row


def _sequential(frame, specs, control, treatments, labels, adjusters, alpha, tau, order, n_looks) -> list[Estimate]:
    from causalrec.experiments.sequential import msprt

    n = len(frame)
    if order:
        idx = np.argsort(frame[order].to_numpy(), kind="stable")
        looks = np.unique(np.ceil(np.linspace(1, n_looks, n_looks) / n_looks * n).astype(int))
    else:
        idx = np.arange(n)
        looks = np.array([n])
    out = []
    for s in specs:
        for t in treatments:
            diffs, vars_ = [], []
            last = None
            for k in looks:
                inc = np.zeros(n, dtype=bool)
                inc[idx[:k]] = True
                mc, mt = inc & (labels == control), inc & (labels == t)
                if mc.sum() < 2 or mt.sum() < 2:
                    continue
                comp = _comparisons(frame, s, mc, mt, adjusters)[-1][0]
                diffs.append(comp.diff)
                vars_.append(comp.se**2)
                last = comp
            if last is None:
                continue
            tau_s = tau if tau is not None else 0.1 * _sigma(last)
            p, lo, hi = msprt(np.array(diffs), np.array(vars_), tau_s, alpha)
            extra = _labels(s, t, control, last)
            extra.update(primary=False, tau=tau_s, n_looks=len(diffs), adjusted_by=last.estimator)
            out.append(Estimate("msprt", "diff", last.diff, last.se, float(lo[-1]), float(hi[-1]),
                                1.0 - alpha, float(p[-1]), extra))
    return out


def _segments(frame, segment, specs, control, treatments, labels, adjusters, alpha, ci_level, max_segments,
              warnings) -> pd.DataFrame:
    seg = frame[segment].astype("string").fillna("<missing>").to_numpy()
    values, sizes = np.unique(seg, return_counts=True)
    order = np.argsort(-sizes, kind="stable")
    if len(values) > max_segments:
        warnings.append(f"segment '{segment}' has {len(values)} values; only the {max_segments} largest are analysed")
        order = order[:max_segments]
    rows = []
    for vi in order:
        val = values[vi]
        inside = seg == val
        for s in specs:
            for t in treatments:
                mc, mt = inside & (labels == control), inside & (labels == t)
                if mc.sum() < 2 or mt.sum() < 2:
                    rows.append({"segment": segment, "value": str(val), "metric": s.name, "variant": t,
                                 "n_control": int(mc.sum()), "n_treatment": int(mt.sum())})
                    continue
                comp = _comparisons(frame, s, mc, mt, adjusters)[-1][0]
                d, se, lo, hi, p = comp.diff_test(ci_level)
                lift, _, llo, lhi, _ = comp.lift_test(ci_level)
                rows.append({"segment": segment, "value": str(val), "metric": s.name, "variant": t,
                             "estimator": comp.estimator, "n_control": comp.n_c, "n_treatment": comp.n_t,
                             "value_control": comp.m_c, "value_treatment": comp.m_t, "diff": d, "se": se,
                             "ci_low": lo, "ci_high": hi, "lift": lift, "lift_ci_low": llo, "lift_ci_high": lhi,
                             "p_value": p})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    if "p_value" not in out.columns:
        out["p_value"] = np.nan
    adj_p = adjust(out["p_value"].to_numpy(dtype=float), alpha)
    out["p_holm"] = adj_p["holm"]
    out["p_bh"] = adj_p["bh"]
    return out
