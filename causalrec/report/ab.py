"""Report of an A/B analysis (:class:`causalrec.experiments.ABResult`).

Order: the sample-ratio-mismatch check first (loud when it fails), then the
metric table, a forest plot of relative lifts, variance reduction, segment
effects, power / MDE and the method notes. Only renders the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from causalrec.report.core import Report

METHOD_NOTES = [
    "Units: every estimate treats the randomisation unit as the sample; impression logs are summed per unit first "
    "(ratio metrics then use the delta method on unit-level sums).",
    "Mean metrics: Welch's unequal-variance t-test; 0/1 metrics: Wald test of two proportions; ratio metrics: "
    "delta method. Relative lifts: delta method (normal interval).",
    "CUPED: y - theta (X - mean(X)) with theta from the pooled regression on pre-period covariates; CUPAC uses an "
    "out-of-fold model prediction from pre-period features as the covariate. Both are unbiased because the "
    "covariates are pre-treatment.",
    "Multiple testing: Holm (family-wise) and Benjamini-Hochberg (false discovery rate) over the primary "
    "p-values of every metric x comparison; segments form their own family.",
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

    rep.heading("Metrics")
    frame = result.to_frame()
    if not frame.empty:
        cols = ["metric", "variant", "estimator", "target", "value_control", "value_treatment", "estimate", "se",
                "ci_low", "ci_high", "p_value", "p_holm", "p_bh", "primary"]
        main = frame[frame["estimator"] != "msprt"]
        rep.table(main[[c for c in cols if c in main.columns]], title="Estimates",
                  note="diff = treatment - control; lift = treatment / control - 1. p_holm / p_bh are given for "
                       "the primary estimator, which is fixed before the analysis (the most adjusted one requested).")
        fig = _forest(frame)
        if fig is not None:
            rep.figure(fig, title="Relative lift by metric and variant",
                       note="Points: relative lift; bars: confidence intervals. Filled: primary estimator.")
        seq = frame[frame["estimator"] == "msprt"]
        if not seq.empty:
            scols = ["metric", "variant", "adjusted_by", "estimate", "ci_low", "ci_high", "p_value", "tau", "n_looks"]
            rep.table(seq[[c for c in scols if c in seq.columns]], title="Always-valid (mSPRT) p-values",
                      note="Valid under continuous monitoring; intervals are confidence sequences (wider than fixed-horizon CIs).")

    if not result.variance_reduction.empty:
        rep.heading("Variance reduction")
        rep.table(result.variance_reduction, title="CUPED / CUPAC",
                  note="se_ratio = adjusted SE / unadjusted SE; var_reduction = 1 - se_ratio^2; "
                       "expected_se_ratio = sqrt(1 - R^2) from the pooled regression.")
    if not result.segments.empty:
        rep.heading("Segments")
        rep.table(result.segments, title=f"Effects by {result.segments['segment'].iloc[0]}",
                  note="Corrected over every segment x metric x comparison (Holm, Benjamini-Hochberg).")
    if not result.power.empty:
        rep.heading("Power and minimum detectable effect")
        rep.table(result.power, title="Planning",
                  note=f"MDE at power {result.config.get('power', 0.8)} and alpha {result.config.get('alpha', 0.05)} "
                       "with the achieved sample; n_control_needed_* is the control-arm size for the planned lift.")
    rep.warnings(list(result.warnings))
    rep.bullets(METHOD_NOTES, title="Method")
    return rep


def _forest(frame: pd.DataFrame):
    from causalrec.report.figures import new_figure

    f = frame[(frame["target"] == "lift") & (frame["estimator"] != "msprt")].reset_index(drop=True)
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
