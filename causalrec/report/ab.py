"""Report of an A/B analysis (:class:`causalrec.experiments.ABResult`).

Order: the sample-ratio-mismatch check first (loud when it fails), then the metric
table, a forest plot of relative lifts, variance reduction, the sequential analysis
(boundary and path per comparison), segment effects, power / MDE and the method
notes. Only renders the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from causalrec.report.core import Report

SEQUENTIAL = ("cs", "gst", "msprt")

METHOD_NOTES = [
    "Units: every estimate treats the randomisation unit as the sample. With --unit, impression logs are summed per "
    "unit first (a per-row metric is then a ratio over units, delta method) and row-level quantiles get a variance "
    "clustered by unit: standard errors are never computed per row when rows are not the randomised unit.",
    "Mean metrics: Welch's unequal-variance t-test; 0/1 metrics: Wald test of two proportions; ratio metrics: "
    "delta method; quantile metrics: Woodruff intervals of each arm's quantile (i.i.d. or clustered), normal "
    "interval for the difference.",
    "CUPED: m_k - theta (Xbar_k - Xbar) with theta from the pooled regression of the metric's linearisation on the "
    "covariates' (pre-period ratios are linearised too); CUPAC uses an out-of-fold model prediction as the covariate; "
    "Lin: one slope per arm (interacted regression), variance including the sampling of Xbar; post-stratification: "
    "stratum means weighted by the pooled stratum shares. All unbiased because the covariates are pre-treatment.",
    "Capping (--cap): metric values above (below) the pooled quantile are set to it before any estimate; the "
    "estimand is then the capped metric.",
    "Multiple testing: the corrections listed in the table over the primary p-values of every metric x comparison; "
    "segments form their own family.",
    "Sequential: confidence sequences (asymptotic, normal mixture, Waudby-Smith et al. 2023) and mSPRT are valid "
    "however often one looks; group-sequential tests spend alpha over planned looks (Lan-DeMets) with boundaries "
    "computed exactly by numerical integration. Every model at a look (CUPED slope, CUPAC fit, capping threshold) "
    "uses only the data available at that look.",
    "Assumptions: randomised assignment at the unit, stable units (no interference between units), no "
    "sample-ratio mismatch, large enough samples for normal approximations.",
]


def build_ab_report(result: Any, title: str | None = None) -> Report:
    """Report sections for an ``ABResult``."""
    rep = Report(title or "A/B experiment", subtitle=f"{result.n_units:,} units, {result.n_rows:,} rows; "
                 f"control = {result.control!r}; variants = {', '.join(map(str, result.variants))}")
    srm = result.srm
    rep.heading("Sample ratio mismatch check")
    if srm is not None:
        if srm.mismatch:
            rep.warnings([srm.message()], title="SAMPLE RATIO MISMATCH")
        else:
            rep.text(srm.message())
        if srm.note:
            rep.text(srm.note)
    if not result.arms.empty:
        rep.table(result.arms, title="Arms")

    cfg = result.config
    rep.heading("Metrics")
    frame = result.to_frame()
    if not frame.empty:
        corr = [f"p_{m}" for m in cfg.get("corrections", ["holm", "bh"])]
        cols = ["metric", "variant", "estimator", "target", "value_control", "value_treatment", "estimate", "se",
                "ci_low", "ci_high", "p_value", *corr, "primary"]
        main = frame[~frame["estimator"].isin(SEQUENTIAL)]
        lift_note = {"delta": "delta method (normal interval on the delta-method SE)",
                     "fieller": "Fieller's interval (exact for normal arm means, asymmetric)"}[cfg.get("lift_ci", "delta")]
        cap = cfg.get("cap_thresholds")
        cap_note = ""
        if cap:
            cap_note = " Metrics are capped: " + "; ".join(
                f"{k} at {v['high']:.6g}" + (f" (low {v['low']:.6g})" if v.get("low") is not None else "")
                for k, v in cap.items()) + "."
        rep.table(main[[c for c in cols if c in main.columns]], title="Estimates",
                  note="diff = treatment - control; lift = treatment / control - 1. Lift intervals: " + lift_note +
                       "; both the delta and the Fieller interval are in the JSON (ci_low_delta, ci_low_fieller, ...). "
                       f"{', '.join(corr)} are given for the primary estimator ({cfg.get('primary_estimator')}), "
                       "fixed before the analysis (the most adjusted one requested)." + cap_note)
        fig = _forest(frame)
        if fig is not None:
            rep.figure(fig, title="Relative lift by metric and variant",
                       note="Points: relative lift; bars: confidence intervals. Filled: primary estimator.")

    if not result.variance_reduction.empty:
        rep.heading("Variance reduction")
        rep.table(result.variance_reduction, title="CUPED / CUPAC / Lin / post-stratification",
                  note="se_ratio = adjusted SE / unadjusted SE; var_reduction = 1 - se_ratio^2; "
                       "expected_se_ratio = sqrt(1 - R^2) from the regression.")
    if not frame.empty and frame["estimator"].isin(SEQUENTIAL).any():
        _sequential_section(rep, result, frame)
    if not result.segments.empty:
        rep.heading("Segments")
        rep.table(result.segments, title=f"Effects by {result.segments['segment'].iloc[0]}",
                  note="Corrected over every segment x metric x comparison.")
    if not result.power.empty:
        rep.heading("Power and minimum detectable effect")
        rep.table(result.power, title="Planning",
                  note=f"MDE at power {cfg.get('power', 0.8)} and alpha {cfg.get('alpha', 0.05)} "
                       "with the achieved sample; n_control_needed_* is the control-arm size for the planned lift.")
    rep.warnings(list(result.warnings))
    rep.bullets(METHOD_NOTES, title="Method")
    return rep


def _sequential_section(rep: Report, result: Any, frame: pd.DataFrame) -> None:
    cfg = result.config
    rep.heading("Sequential analysis")
    seq = frame[frame["estimator"].isin(SEQUENTIAL)]
    cols = ["metric", "variant", "estimator", "target", "adjusted_by", "estimate", "ci_low", "ci_high", "p_value",
            "n_looks", "stopped_at_look", "rejected", "boundary_z", "information", "tuning", "tau"]
    rep.table(seq[[c for c in cols if c in seq.columns]], title="Always-valid and group-sequential results",
              note="cs: asymptotic confidence sequence (tuning parameter = units where it is tightest; interval and p "
                   "are the running intersection / minimum over looks); gst: group-sequential test with "
                   f"{cfg.get('spending')} spending (interval: repeated confidence interval at the stopping look; "
                   "p: stage-wise ordering); msprt: mixture SPRT. All stay valid under monitoring, so they are wider "
                   "than the fixed-horizon interval.")
    path = result.sequential
    if path.empty:
        return
    for (metric, variant), g in list(path.groupby(["metric", "variant"], sort=False))[:6]:
        fig = _path_figure(g, cfg)
        rep.figure(fig, title=f"Boundary and path: {metric}, {variant}",
                   note="Left: z statistic at each look against the group-sequential boundary (+/-) and the "
                        "fixed-horizon critical value; a cross stops the test. Right: estimate with the fixed-horizon "
                        "interval and the confidence sequence (running intersection).")
    show = ["metric", "variant", "look", "cutoff", "n", "diff", "se", "z", "p_fixed", "gst_boundary", "gst_crossed",
            "cs_low_running", "cs_high_running", "p_cs", "msprt_p"]
    rep.table(path[[c for c in show if c in path.columns]].head(200), title="Path by look",
              note="p_fixed: the fixed-horizon p-value at each look (stopping at its first value below alpha is the "
                   "naive peeking that inflates false positives).")


def _path_figure(g: pd.DataFrame, cfg: dict):
    from scipy.special import ndtri

    from causalrec.report.figures import pyplot

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.2))
    x = g["n"].to_numpy(dtype=float)
    crit = float(ndtri(1 - cfg.get("alpha", 0.05) / 2))
    ax1.plot(x, g["z"], "o-", color="#1565c0", label="z")
    if "gst_boundary" in g:
        b = g["gst_boundary"].to_numpy(dtype=float)
        ax1.plot(x, b, "--", color="#b00020", label=f"GST boundary ({cfg.get('spending')})")
        ax1.plot(x, -b, "--", color="#b00020")
    ax1.axhline(crit, color="#757575", lw=0.8, ls=":", label="fixed horizon")
    ax1.axhline(-crit, color="#757575", lw=0.8, ls=":")
    ax1.set_xlabel("units")
    ax1.set_ylabel("z")
    ax1.legend(fontsize=7, loc="best")
    ax2.plot(x, g["diff"], "o-", color="#1565c0", label="estimate")
    ax2.fill_between(x, g["ci_low"], g["ci_high"], color="#90caf9", alpha=0.5, label="fixed-horizon CI")
    if "cs_low_running" in g:
        ax2.plot(x, g["cs_low_running"], color="#2e7d32", label="confidence sequence")
        ax2.plot(x, g["cs_high_running"], color="#2e7d32")
    ax2.axhline(0, color="#b00020", lw=0.8, ls="--")
    ax2.set_xlabel("units")
    ax2.set_ylabel("treatment - control")
    ax2.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _forest(frame: pd.DataFrame):
    from causalrec.report.figures import new_figure

    f = frame[(frame["target"] == "lift") & (~frame["estimator"].isin(SEQUENTIAL))].reset_index(drop=True)
    if f.empty:
        return None
    labels = (f["metric"].astype(str) + " | " + f["variant"].astype(str) + " | " + f["estimator"].astype(str)).tolist()
    y = np.arange(len(f))[::-1]
    fig, ax = new_figure(7.0, 0.9 + 0.35 * len(f))
    est = 100 * f["estimate"].to_numpy(dtype=float)
    lo = 100 * f["ci_low"].to_numpy(dtype=float)
    hi = 100 * f["ci_high"].to_numpy(dtype=float)
    prim = f["primary"].astype(bool).to_numpy()
    ax.hlines(y, lo, hi, color="#455a64")
    ax.scatter(est[prim], y[prim], color="#1565c0", zorder=3, label="primary")
    ax.scatter(est[~prim], y[~prim], facecolors="white", edgecolors="#1565c0", zorder=3, label="other")
    ax.axvline(0, color="#b00020", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("relative lift (%)")
    ax.legend(fontsize=8, loc="best")
    return fig
