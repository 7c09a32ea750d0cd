"""From sufficient statistics to an :class:`ABResult`: the code both input paths share.

``analyze`` (row-level logs) reduces the logs to :class:`~causalrec.experiments.stats.ABStats`
(per variant, and segment, stratum and look) and ``analyze_stats`` reads them from a
file; both then call :func:`finish`, so a stats file and the rows it summarises give
the same estimates, standard errors and p-values. Quantile metrics are the one thing
sums cannot carry: the row path computes those comparisons and hands them in.

Steps: SRM on the final look's unit counts; per metric and treatment arm the
unadjusted comparison and each requested adjustment (CUPED, CUPAC, Lin,
post-stratification), as a difference and a relative lift (delta or Fieller
interval); corrections over the primary p-values; segment effects; power and MDE;
and, over the looks, confidence sequences, group-sequential boundaries and mSPRT.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causalrec.errors import InputError
from causalrec.experiments import power as pw
from causalrec.experiments.cuped import Adjustment, compare_cuped, compare_lin
from causalrec.experiments.estimators import LIFT_CI_METHODS, Comparison, Metric, compare_unadjusted
from causalrec.experiments.multiple import adjust, check_methods
from causalrec.experiments.poststrat import compare_poststrat
from causalrec.experiments.result import ABResult
from causalrec.experiments.sequential import DEFAULT_CS_TUNING, confidence_sequence, msprt
from causalrec.experiments.srm import parse_split, srm_test
from causalrec.experiments.stats import ABStats, SuffStats, pair_column
from causalrec.results import Estimate

# the primary estimator is the most adjusted one requested (fixed before looking at the data)
PRECEDENCE = ("cupac", "lin", "cuped", "poststrat", "unadjusted")
SEQUENTIAL_METHODS = ("cs", "gst", "msprt")


@dataclass
class Plan:
    """Everything an analysis was asked to do, parsed and checked (shared by both input paths)."""

    variant: str
    specs: list[Metric]
    adjusters: dict[str, dict[str, list[Metric]]] = field(default_factory=dict)  # name -> metric -> covariates
    stratify: str | None = None
    segment: str | None = None
    control: str | None = None
    expected_split: Any = None
    alpha: float = 0.05
    ci_level: float = 0.95
    srm_alpha: float = 0.001
    power: float = 0.8
    planned_lift: float = 0.01
    planning: bool = True
    lift_ci: str = "delta"
    corrections: Sequence[str] = ("holm", "bh")
    primary: str | None = None
    max_segments: int = 50
    sequential: Sequence[str] = ()
    spending: str = "obf"
    spending_rho: float = 2.0
    max_n: float | None = None
    cs_tuning: float = DEFAULT_CS_TUNING
    tau: float | None = None
    cap: Any = None

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.ci_level < 1:
            raise InputError("alpha and ci_level must lie in (0, 1)", column="--alpha", fix="e.g. --alpha 0.05")
        for name, value, example in (("--power", self.power, "0.8"), ("--srm-alpha", self.srm_alpha, "0.001")):
            if not 0 < value < 1:  # a power of 1.5 crashed the sample-size root finder
                raise InputError(f"{name} must lie in (0, 1), got {value}", column=name, fix=f"e.g. {name} {example}")
        if self.lift_ci not in LIFT_CI_METHODS:
            raise InputError(f"unknown lift interval {self.lift_ci!r}", column="--lift-ci",
                             fix=f"use one of {', '.join(LIFT_CI_METHODS)}")
        self.corrections = check_methods(self.corrections)
        bad = [m for m in self.sequential if m not in SEQUENTIAL_METHODS]
        if bad:
            raise InputError(f"unknown sequential method {bad[0]!r}", column="--sequential-methods",
                             fix=f"use any of {', '.join(SEQUENTIAL_METHODS)}")
        if self.primary is not None and self.primary not in self.estimators:
            raise InputError(f"primary estimator {self.primary!r} was not requested (requested: {self.estimators})",
                             column="--primary", fix="name one of the requested adjustments")
        if self.max_n is not None and not self.max_n > 0:
            raise InputError(f"--max-n must be positive, got {self.max_n}", column="--max-n",
                             fix="the planned total number of units")
        if not self.cs_tuning > 0:
            raise InputError(f"the confidence-sequence tuning parameter must be positive, got {self.cs_tuning}",
                             column="--cs-tuning", fix="the planned total number of units, e.g. --cs-tuning 20000")

    @property
    def estimators(self) -> list[str]:
        out = ["unadjusted", *self.adjusters]
        if self.stratify:
            out.append("poststrat")
        return out

    @property
    def primary_name(self) -> str:
        if self.primary:
            return self.primary
        return next(p for p in PRECEDENCE if p in self.estimators)

    def variables(self) -> list[str]:
        out = [v for s in self.specs for v in s.variables]
        for covmap in self.adjusters.values():
            for covs in covmap.values():
                out += [v for c in covs for v in c.variables]
        return list(dict.fromkeys(out))

    def pairs(self) -> list[tuple[str, str]]:
        """Pairs of variables whose sum of products the analysis needs (written to a stats file)."""
        out: list[tuple[str, str]] = []
        for s in self.specs:
            out += [(a, b) for i, a in enumerate(s.variables) for b in s.variables[i + 1:]]
            for covmap in self.adjusters.values():
                cv = [v for c in covmap.get(s.name, []) for v in c.variables]
                allv = list(dict.fromkeys(s.variables + cv))
                out += [(a, b) for i, a in enumerate(allv) for b in allv[i + 1:]]
        return list(dict.fromkeys(out))

    def config(self) -> dict[str, Any]:
        return {
            "variant": self.variant, "control": self.control, "segment": self.segment, "stratify": self.stratify,
            "alpha": self.alpha, "ci_level": self.ci_level, "srm_alpha": self.srm_alpha, "power": self.power,
            "planned_lift": self.planned_lift, "planning": self.planning, "lift_ci": self.lift_ci,
            "corrections": list(self.corrections), "primary_estimator": self.primary_name,
            "adjustments": {k: {m: [c.name for c in covs] for m, covs in v.items()} for k, v in self.adjusters.items()},
            "sequential_methods": list(self.sequential), "spending": self.spending,
            "spending_rho": self.spending_rho, "max_n": self.max_n, "cs_tuning": self.cs_tuning,
            "sequential_tau": self.tau, "cap": list(self.cap) if self.cap else None,
        }


@dataclass
class Extras:
    """What only the row path can provide: quantile comparisons (fixed, per segment, per look) and its warnings."""

    quantiles: list[str] = field(default_factory=list)  # labels, in order
    fixed: dict[str, dict[str, tuple[Comparison, dict]]] = field(default_factory=dict)  # label -> treat -> comp
    by_segment: dict[tuple[str, str, str], Comparison] = field(default_factory=dict)  # (label, seg, treat)
    by_look: dict[tuple[str, str], list[Comparison | None]] = field(default_factory=dict)  # (label, treat)
    warnings: list[str] = field(default_factory=list)
    declared_variants: list[str] | None = None
    look_labels: list = field(default_factory=list)
    cap_thresholds: dict[str, Any] = field(default_factory=dict)


# -- comparisons -------------------------------------------------------------------

def compare(sub: ABStats, plan: Plan, s: Metric, control: str, treat: str,
            name: str) -> tuple[Comparison, Adjustment | None]:
    """One estimator's comparison of ``treat`` with ``control`` on the statistics ``sub``."""
    if name == "poststrat":
        strata = sub.total(by=[plan.stratify])
        levels = sorted({k[1] for k in strata})
        empty = SuffStats(tuple(sub.names))
        sc = [strata.get((control, lv), empty) for lv in levels]
        st = [strata.get((treat, lv), empty) for lv in levels]
        return compare_poststrat(sc, st, s, labels=levels, column=plan.stratify), None
    arms = sub.arms()
    a_c, a_t = arms[control], arms[treat]
    if name == "unadjusted":
        return compare_unadjusted(a_c, a_t, s), None
    covs = plan.adjusters[name][s.name]
    if name == "lin":
        return compare_lin(a_c, a_t, s, covs)
    return compare_cuped(a_c, a_t, s, covs, estimator=name)


def _labels(s_name: str, kind: str, t: str, control: str, comp: Comparison) -> dict[str, Any]:
    return {"metric": s_name, "variant": t, "control": control, "kind": kind,
            "n_control": comp.n_c, "n_treatment": comp.n_t,
            "value_control": comp.m_c, "value_treatment": comp.m_t,
            "se_control": float(np.sqrt(comp.v_c)), "se_treatment": float(np.sqrt(comp.v_t))}


def _estimates(comp: Comparison, plan: Plan, labels: dict, primary: bool) -> list[Estimate]:
    d, se, lo, hi, p = comp.diff_test(plan.ci_level)
    extra = dict(labels, primary=primary)
    if np.isfinite(comp.df):
        extra["df"] = comp.df
    if plan.cap:
        extra["capped"] = True
    out = [Estimate(comp.estimator, "diff", d, se, lo, hi, plan.ci_level, p, extra)]
    lift, lse, llo, lhi, lp = comp.lift_test(plan.ci_level, plan.lift_ci)
    dlo, dhi = comp.lift_test(plan.ci_level, "delta")[2:4]
    flo, fhi = comp.fieller(plan.ci_level) if comp.m_c != 0 else (np.nan, np.nan)
    lextra = dict(labels, primary=primary, ci_method=plan.lift_ci, ci_low_delta=dlo, ci_high_delta=dhi,
                  ci_low_fieller=flo, ci_high_fieller=fhi)
    out.append(Estimate(comp.estimator, "lift", lift, lse, llo, lhi, plan.ci_level, lp, lextra))
    return out


# -- the analysis ------------------------------------------------------------------

def finish(plan: Plan, stats: ABStats, extras: Extras | None = None, *, n_rows: int | None = None,
           source: str = "stats", config: dict[str, Any] | None = None) -> ABResult:
    """Estimates, SRM, corrections, segments, power and sequential results from the statistics."""
    extras = extras or Extras()
    warnings = list(extras.warnings)
    looks = stats.looks()
    final = stats.at_look(looks[-1])
    arms = final.arms()
    variants = sorted(arms)
    if extras.declared_variants is not None:
        empty = [v for v in extras.declared_variants if v not in variants]
        if empty:
            raise InputError(f"variant {empty[0]!r} has zero units in '{plan.variant}'", column=plan.variant,
                             fix="check the assignment and logging of that arm, or drop the unused category")
    if len(variants) < 2:
        raise InputError(f"column '{plan.variant}' has only one variant ({variants[0]!r}); an experiment needs a "
                         "control and at least one treatment", column=plan.variant,
                         fix="check the --variant column and any filtering of the log")
    control = plan.control
    if control is None:
        named = [v for v in variants if v.lower() == "control"]
        control = named[0] if named else variants[0]
    control = str(control)
    if control not in variants:
        raise InputError(f"control variant {control!r} has zero units (variants in the data: {variants})",
                         column="--control", fix="pass one of the variants in the data to --control")
    split = parse_split(plan.expected_split, variants)
    counts = {v: int(arms[v].n) for v in variants}
    small = [v for v, c in counts.items() if c < 2]
    if small:
        raise InputError(f"variant {small[0]!r} has only {counts[small[0]]} unit(s)", column=plan.variant,
                         fix="each arm needs at least two units for a variance")
    srm = srm_test(counts, split, alpha=plan.srm_alpha)
    if srm.mismatch:
        warnings.insert(0, srm.message())
    treatments = [v for v in variants if v != control]
    primary = plan.primary_name

    estimates: list[Estimate] = []
    vr_rows: list[dict[str, Any]] = []
    power_rows: list[dict[str, Any]] = []
    for s in plan.specs:
        for t in treatments:
            comps = [(name, *compare(final, plan, s, control, t, name)) for name in plan.estimators]
            base = comps[0][1]
            prim_comp = next(c for n, c, _ in comps if n == primary)
            for name, comp, adj in comps:
                lab = _labels(s.name, s.kind, t, control, comp)
                estimates += _estimates(comp, plan, lab, name == primary)
                if name != "unadjusted":
                    ratio_se = comp.se / base.se if base.se > 0 else float("nan")
                    covs = plan.adjusters.get(name, {}).get(s.name, [])
                    vr_rows.append({
                        "metric": s.name, "variant": t, "estimator": name,
                        "covariates": ", ".join(c.name for c in covs) if covs else (plan.stratify or ""),
                        "rho": adj.rho if adj else None, "r2": adj.r2 if adj else None,
                        "se_unadjusted": base.se, "se_adjusted": comp.se, "se_ratio": ratio_se,
                        "var_reduction": 1.0 - ratio_se**2,
                        "expected_se_ratio": float(np.sqrt(max(0.0, 1.0 - adj.r2))) if adj else None,
                    })
            if plan.planning:
                power_rows.append(_power_row(s.name, t, base, prim_comp, plan))
    for label in extras.quantiles:
        for t in treatments:
            comp, info = extras.fixed[label][t]
            lab = _labels(label, "quantile", t, control, comp)
            ests = _estimates(comp, plan, lab, True)
            for side in ("control", "treatment"):
                ests[0].extra[f"q_ci_low_{side}"] = info[side]["lo"]
                ests[0].extra[f"q_ci_high_{side}"] = info[side]["hi"]
                ests[0].extra[f"n_rows_{side}"] = info[side]["n_rows"]
            ests[0].extra["clustered"] = bool(info.get("clustered"))
            estimates += ests

    prim = [i for i, e in enumerate(estimates) if e.extra["primary"] and e.target == "diff"]
    adj_p = adjust([estimates[i].p_value for i in prim], plan.alpha, plan.corrections)
    for j, i in enumerate(prim):
        for m in plan.corrections:
            estimates[i].extra[f"p_{m}"] = float(adj_p[m][j])
        if "holm" in adj_p:
            estimates[i].extra["significant_holm"] = bool(adj_p["holm"][j] < plan.alpha)

    seq_frame = pd.DataFrame()
    if plan.sequential:
        seq_est, seq_frame = _sequential(plan, stats, extras, control, treatments, primary, warnings)
        estimates += seq_est

    seg_frame = _segments(plan, final, extras, control, treatments, primary, warnings) if plan.segment else pd.DataFrame()
    n_units = int(sum(counts.values()))
    arm_table = pd.DataFrame({
        "variant": variants,
        "role": ["control" if v == control else "treatment" for v in variants],
        "n_units": [counts[v] for v in variants],
        "share": [counts[v] / n_units for v in variants],
        "expected_share": [split[v] for v in variants],
    })
    if "_n_rows" in final.names:
        i = final.names.index("_n_rows")
        arm_table["n_rows"] = [float(arms[v].sums[i]) for v in variants]
    cfg = plan.config()
    cfg.update(config or {})
    cfg.update({"control": control, "expected_split": split, "source": source})
    if extras.cap_thresholds:
        cfg["cap_thresholds"] = extras.cap_thresholds
    diagnostics = {"n_units": n_units, "srm_p_value": srm.p_value, "srm_mismatch": srm.mismatch,
                   "n_variants": len(variants), "n_comparisons": len(prim), "n_looks": len(looks)}
    return ABResult(
        command="ab", n_rows=int(n_rows if n_rows is not None else n_units), estimates=estimates,
        diagnostics=diagnostics, warnings=list(dict.fromkeys(warnings)), config=cfg, control=control,
        variants=variants, srm=srm, arms=arm_table, variance_reduction=pd.DataFrame(vr_rows), segments=seg_frame,
        power=pd.DataFrame(power_rows), n_units=n_units, sequential=seq_frame, stats=stats,
        stats_pairs=plan.pairs(),
    )


def _sigma(comp: Comparison) -> float:
    s2 = (comp.v_c * comp.n_c**2 + comp.v_t * comp.n_t**2) / (comp.n_c + comp.n_t)
    return float(np.sqrt(s2))


def _power_row(name: str, t: str, base: Comparison, best: Comparison, plan: Plan) -> dict[str, Any]:
    row: dict[str, Any] = {"metric": name, "variant": t, "n_control": base.n_c, "n_treatment": base.n_t,
                           "value_control": base.m_c}
    for tag, comp in (("unadjusted", base), ("adjusted", best)):
        sig = _sigma(comp)
        m = pw.mde(sig, comp.n_c, comp.n_t, plan.alpha, plan.power)
        row[f"sd_{tag}"] = sig
        row[f"mde_{tag}"] = m
        row[f"mde_rel_{tag}"] = m / abs(comp.m_c) if comp.m_c else float("nan")
        effect = plan.planned_lift * abs(comp.m_c)
        row[f"power_at_planned_{tag}"] = pw.achieved_power(sig, effect, comp.n_c, comp.n_t, plan.alpha)
        row[f"n_control_needed_{tag}"] = pw.sample_size(sig, effect, plan.alpha, plan.power, comp.n_t / comp.n_c)
        if best is base:
            break
    row["planned_lift"] = plan.planned_lift
    return row


def _segments(plan: Plan, final: ABStats, extras: Extras, control, treatments, primary, warnings) -> pd.DataFrame:
    seg = plan.segment
    by = final.total(by=[seg])
    sizes: dict[str, float] = {}
    for (_, val), st in by.items():
        sizes[val] = sizes.get(val, 0.0) + st.n
    values = sorted(sizes, key=lambda v: (-sizes[v], v))
    if len(values) > plan.max_segments:
        warnings.append(f"segment '{seg}' has {len(values)} values; only the {plan.max_segments} largest are analysed")
        values = values[:plan.max_segments]
    rows = []
    names = [(s.name, s) for s in plan.specs] + [(q, None) for q in extras.quantiles]
    for val in values:
        sub = final.select(**{seg: val})
        sub_arms = sub.arms()
        for name, s in names:
            for t in treatments:
                n_c = sub_arms[control].n if control in sub_arms else 0
                n_t = sub_arms[t].n if t in sub_arms else 0
                base_row = {"segment": seg, "value": str(val), "metric": name, "variant": t,
                            "n_control": int(n_c), "n_treatment": int(n_t)}
                if n_c < 2 or n_t < 2:
                    rows.append(base_row)
                    continue
                if s is None:
                    comp = extras.by_segment.get((name, str(val), t))
                    if comp is None:
                        rows.append(base_row)
                        continue
                else:
                    try:
                        comp = compare(sub, plan, s, control, t, primary)[0]
                    except InputError as exc:  # e.g. a stratum empty within this segment
                        warnings.append(f"segment {seg}={val}, {name}: {exc}".split("\n")[0])
                        rows.append(base_row)
                        continue
                d, se, lo, hi, p = comp.diff_test(plan.ci_level)
                lift, _, llo, lhi, _ = comp.lift_test(plan.ci_level, plan.lift_ci)
                rows.append(dict(base_row, estimator=comp.estimator, n_control=comp.n_c, n_treatment=comp.n_t,
                                 value_control=comp.m_c, value_treatment=comp.m_t, diff=d, se=se, ci_low=lo,
                                 ci_high=hi, lift=lift, lift_ci_low=llo, lift_ci_high=lhi, p_value=p))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    if "p_value" not in out.columns:
        out["p_value"] = np.nan
    adj_p = adjust(out["p_value"].to_numpy(dtype=float), plan.alpha, plan.corrections)
    for m in plan.corrections:
        out[f"p_{m}"] = adj_p[m]
    return out


def _sequential(plan: Plan, stats: ABStats, extras: Extras, control, treatments, primary, warnings):
    """Confidence sequences, group-sequential tests and mSPRT over the looks, on the primary estimator."""
    from causalrec.experiments.groupseq import boundaries

    looks = stats.looks()
    labels = extras.look_labels or looks
    alpha = plan.alpha
    names = [(s.name, s) for s in plan.specs] + [(q, None) for q in extras.quantiles]
    out: list[Estimate] = []
    frames = []
    at_look = [stats.at_look(lk) for lk in looks]
    look_arms = [sub.arms() for sub in at_look]
    for name, s in names:
        for t in treatments:
            rows = []
            for k, lk in enumerate(looks):
                if s is None:
                    comp = extras.by_look[(name, t)][k]
                else:
                    sub, arms = at_look[k], look_arms[k]
                    if control not in arms or t not in arms or arms[control].n < 2 or arms[t].n < 2:
                        comp = None
                    else:
                        comp = compare(sub, plan, s, control, t, primary)[0]
                if comp is None or not np.isfinite(comp.se) or comp.se <= 0:
                    continue
                rows.append({"look": k + 1, "cutoff": labels[k] if k < len(labels) else lk, "comp": comp})
            if not rows:
                continue
            comps = [r["comp"] for r in rows]
            n = np.array([c.n_c + c.n_t for c in comps], dtype=float)
            diff = np.array([c.diff for c in comps])
            var = np.array([c.var for c in comps])
            lift = np.array([c.m_t / c.m_c - 1.0 if c.m_c else np.nan for c in comps])
            lvar = np.array([c.lift_var() if c.m_c else np.nan for c in comps])
            fixed = [c.diff_test(plan.ci_level) for c in comps]
            frame = pd.DataFrame({
                "metric": name, "variant": t, "estimator": comps[-1].estimator,
                "look": [r["look"] for r in rows], "cutoff": [r["cutoff"] for r in rows],
                "n_control": [c.n_c for c in comps], "n_treatment": [c.n_t for c in comps], "n": n,
                "diff": diff, "se": np.sqrt(var), "z": diff / np.sqrt(var), "lift": lift,
                "ci_low": [f[2] for f in fixed], "ci_high": [f[3] for f in fixed], "p_fixed": [f[4] for f in fixed],
            })
            last = comps[-1]
            lab = _labels(name, s.kind if s else "quantile", t, control, last)
            lab.update(primary=False, adjusted_by=last.estimator, n_looks=len(comps))
            if "cs" in plan.sequential:
                cs = confidence_sequence(diff, var, n, alpha, plan.cs_tuning)
                lcs = confidence_sequence(lift, lvar, n, alpha, plan.cs_tuning)
                frame = frame.assign(cs_low=cs["low"], cs_high=cs["high"], cs_low_running=cs["low_running"],
                                     cs_high_running=cs["high_running"], p_cs=cs["p_running"], p_cs_at_look=cs["p"],
                                     lift_cs_low=lcs["low"], lift_cs_high=lcs["high"])
                ex = dict(lab, tuning=plan.cs_tuning, ci_low_at_look=float(cs["low"][-1]),
                          ci_high_at_look=float(cs["high"][-1]), p_at_look=float(cs["p"][-1]))
                out.append(Estimate("cs", "diff", float(diff[-1]), float(np.sqrt(var[-1])),
                                    float(cs["low_running"][-1]), float(cs["high_running"][-1]), 1 - alpha,
                                    float(cs["p_running"][-1]), ex))
                lex = dict(lab, tuning=plan.cs_tuning, ci_low_at_look=float(lcs["low"][-1]),
                           ci_high_at_look=float(lcs["high"][-1]), p_at_look=float(lcs["p"][-1]))
                out.append(Estimate("cs", "lift", float(lift[-1]), float(np.sqrt(lvar[-1])),
                                    float(lcs["low_running"][-1]), float(lcs["high_running"][-1]), 1 - alpha,
                                    float(lcs["p_running"][-1]), lex))
                if plan.cs_tuning > 20 * n[-1] or plan.cs_tuning < n[-1] / 20:
                    warnings.append(f"confidence sequence of {name} ({t}): the tuning parameter ({plan.cs_tuning:g} "
                                    f"units) is far from the sample size ({n[-1]:g}); intervals are tightest near the "
                                    "tuning value: set --cs-tuning to the planned number of units")
            if "gst" in plan.sequential:
                est, extra_cols = _gst(plan, n, diff, var, lab, boundaries, warnings, name, t)
                frame = frame.assign(**extra_cols)
                out.append(est)
            if "msprt" in plan.sequential:
                first = comps[0]
                tau = plan.tau if plan.tau is not None else 0.1 * _sigma(first)
                p, lo, hi = msprt(diff, var, tau, alpha)
                frame = frame.assign(msprt_p=p, msprt_low=lo, msprt_high=hi)
                out.append(Estimate("msprt", "diff", float(diff[-1]), float(np.sqrt(var[-1])), float(lo[-1]),
                                    float(hi[-1]), 1 - alpha, float(p[-1]), dict(lab, tau=tau)))
            frames.append(frame)
    return out, (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())


def _gst(plan: Plan, n, diff, var, lab, boundaries, warnings, name, t):
    """Group-sequential test on the looks: boundaries at information n / max_n, first crossing, stage-wise p."""
    max_n = plan.max_n if plan.max_n is not None else float(n[-1])
    if n[-1] > max_n * (1 + 1e-12):
        raise InputError(f"the last look has {n[-1]:g} units, more than the planned --max-n {max_n:g}",
                         column="--max-n", fix="pass the planned total number of units (all arms of the comparison)")
    keep = np.r_[True, np.diff(n) > 0]  # a look without new units adds no information
    idx = np.flatnonzero(keep)
    info = n[idx] / max_n
    design = boundaries(info, plan.alpha, plan.spending, plan.spending_rho, sides=2)
    se = np.sqrt(var[idx])
    z = diff[idx] / se
    crossed = np.abs(z) >= design.z
    stop = int(np.flatnonzero(crossed)[0]) if crossed.any() else len(idx) - 1
    rejected = bool(crossed.any())
    p = design.stagewise_p(stop, z[stop])
    b = float(design.z[stop])
    extra = dict(lab, spending=plan.spending, rho=plan.spending_rho if plan.spending == "power" else None,
                 max_n=max_n, information=float(info[stop]), boundary_z=b, stopped_at_look=int(idx[stop]) + 1,
                 rejected=rejected, complete=bool(info[-1] >= 1 - 1e-12),
                 ci_method="repeated confidence interval at the stopping look (diff +/- boundary x se)")
    if not rejected and info[-1] < 1 - 1e-12:
        warnings.append(f"group-sequential test of {name} ({t}): no boundary crossed yet at {100 * info[-1]:.0f}% of "
                        f"the planned {max_n:g} units; keep going (the p-value is not final)")
    boundary = np.full(len(n), np.nan)
    boundary[idx] = design.z
    cols = {"information": n / max_n, "gst_boundary": boundary,
            "gst_crossed": np.isin(np.arange(len(n)), idx[crossed]),
            "gst_alpha_spent": np.where(np.isnan(boundary), np.nan, 0.0)}
    cols["gst_alpha_spent"][idx] = design.spent
    est = Estimate("gst", "diff", float(diff[idx[stop]]), float(se[stop]), float(diff[idx[stop]] - b * se[stop]),
                   float(diff[idx[stop]] + b * se[stop]), 1 - plan.alpha, float(p), extra)
    return est, cols


# -- the stats-file path -----------------------------------------------------------

def stat_key_columns(table: pd.DataFrame) -> list[str]:
    """Columns of a stats table that are keys (not ``n`` nor a ``*_sum`` / ``*_sum_sq`` statistic)."""
    return [c for c in table.columns if c != "n" and not str(c).endswith("_sum") and not str(c).endswith("_sum_sq")]


def load_stats(stats: str | os.PathLike | pd.DataFrame | ABStats, plan: Plan, look: str | None) -> ABStats:
    """Read and check a stats file for the plan (keys not asked for are summed over)."""
    if isinstance(stats, ABStats):
        return stats
    if isinstance(stats, pd.DataFrame):
        table, source = stats, "stats table"
    else:
        from causalrec.data.readers import read_table

        table, source = read_table(stats), f"stats file {os.fspath(stats)}"
    keys = [c for c in stat_key_columns(table) if c != plan.variant]
    if look is None and "look" in keys:
        look = "look"
    for col, opt in ((plan.segment, "--segment"), (plan.stratify, "--stratify")):
        if col and col not in keys:
            raise InputError(f"the {source} has no key column '{col}' (keys: {keys})", column=col,
                             fix=f"give the stats one row per {col} value, or drop {opt}")
    other = [k for k in keys if k != look]
    return ABStats.from_table(table, variant=plan.variant, names=plan.variables(), keys=other, look=look, source=source)


__all__ = ["Plan", "Extras", "finish", "compare", "load_stats", "pair_column", "PRECEDENCE"]
