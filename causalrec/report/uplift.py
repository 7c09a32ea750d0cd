"""The analyst's uplift report: question, estimand, data, assumptions, estimates
from every method side by side, overlap and balance, per-item / per-segment
effects, uplift curve, refutations and warnings.

Renders an :class:`~causalrec.uplift.UpliftResult` and, when present, its
:class:`~causalrec.uplift.analysis.UpliftAnalysis` (``result.analysis`` or the
``analysis`` argument). No statistics here: every number comes from those
objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from causalrec.report.core import Report
from causalrec.report.figures import new_figure

METHOD_NAMES = {
    "naive": "difference in means (unadjusted)",
    "ipw": "inverse propensity weighting (Hajek)",
    "aipw": "augmented IPW (doubly robust)",
    "dml": "double machine learning (econml LinearDML)",
}

ASSUMPTIONS = [
    "No unmeasured confounding: given the adjustment features (text embeddings, covariates), exposure is as good "
    "as random. Anything that drove both exposure and the outcome and is not visible in them biases every adjusted "
    "estimate (the naive difference is biased by all confounding).",
    "Overlap (positivity): every kind of row had a real chance of being exposed and of not being exposed "
    "(0 < e(x) < 1). The overlap section shows where this is thin.",
    "Consistency and no interference: a row's outcome depends only on its own exposure (no spill-over between "
    "items or users), and the logged exposure is the treatment we mean.",
    "Nuisance models are fitted by cross-fitting; intervals treat them as known (influence-function standard "
    "errors, clustered by user when a user column exists).",
]


def estimates_table(result: Any) -> pd.DataFrame:
    """Methods as rows, targets side by side: estimate, CI, SE."""
    frame = result.to_frame()
    if frame.empty:
        return frame
    rows = []
    for est, g in frame.groupby("estimator", sort=False):
        row: dict[str, Any] = {"method": est, "description": METHOD_NAMES.get(est, "")}
        for _, r in g.iterrows():
            tgt = str(r["target"]).upper()
            row[f"{tgt}"] = r["estimate"]
            row[f"{tgt} CI"] = f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]"
            row[f"{tgt} SE"] = r["se"]
        rows.append(row)
    return pd.DataFrame(rows)


def _label(text: Any, width: int = 28) -> str:
    """A tick label from user text: shortened, with ``$`` escaped so matplotlib's
    mathtext cannot choke on titles such as "$5 gift card"."""
    return str(text)[:width].replace("$", r"\$")


def _fig_overlap(ov) -> Any:
    fig, ax = new_figure(6.4, 3.4)
    centres = (ov.hist_edges[:-1] + ov.hist_edges[1:]) / 2
    width = np.diff(ov.hist_edges)
    ax.bar(centres, ov.hist_control, width=width, alpha=0.55, label=f"not exposed (n={ov.n_control:,})",
           color="#4c72b0")
    ax.bar(centres, ov.hist_treated, width=width, alpha=0.55, label=f"exposed (n={ov.n_treated:,})",
           color="#dd8452")
    for x in (ov.clip, 1 - ov.clip):
        ax.axvline(x, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("estimated propensity e(x)")
    ax.set_ylabel("density")
    ax.legend(frameon=False, fontsize=8)
    return fig


def _fig_balance(bal) -> Any:
    tab = bal.table
    h = max(2.6, 0.22 * len(tab) + 1.0)
    fig, ax = new_figure(6.4, min(h, 9.0))
    ypos = np.arange(len(tab))[::-1]
    ax.scatter(tab["smd_before"].abs(), ypos, label="before weighting", marker="o", color="#c44e52")
    ax.scatter(tab["smd_after"].abs(), ypos, label="after weighting", marker="s", color="#55a868")
    ax.axvline(bal.threshold, color="grey", ls="--", lw=0.8)
    ax.set_yticks(ypos)
    ax.set_yticklabels([_label(c, 40) for c in tab["covariate"]], fontsize=7)
    ax.set_xlabel("|standardised mean difference|")
    ax.legend(frameon=False, fontsize=8)
    return fig


def _fig_groups(ge, top: int = 25) -> Any:
    tab = ge.table.head(top)
    fig, ax = new_figure(6.4, max(2.6, 0.24 * len(tab) + 1.0))
    ypos = np.arange(len(tab))[::-1]
    ax.errorbar(tab["estimate"], ypos, xerr=[tab["estimate"] - tab["ci_low"], tab["ci_high"] - tab["estimate"]],
                fmt="o", ms=3, color="#4c72b0", ecolor="#8da0cb", capsize=2)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(ypos)
    ax.set_yticklabels([_label(v) for v in tab[ge.by]], fontsize=7)
    ax.set_xlabel("AIPW effect (with per-group CI)")
    return fig


def _fig_curve(curve) -> Any:
    fig, ax = new_figure(6.4, 3.6)
    f = curve.fractions
    if curve.gain_low is not None:
        ax.fill_between(f, curve.gain_low, curve.gain_high, alpha=0.25, color="#4c72b0",
                        label=f"{100 * curve.ci_level:g}% bootstrap band")
    ax.plot(f, curve.gain, color="#4c72b0", label="ranking by predicted effect")
    ax.plot(f, f * curve.overall, color="grey", ls="--", label="random targeting")
    ax.set_xlabel("share of rows targeted (highest predicted effect first)")
    ax.set_ylabel("cumulative effect per row")
    ax.legend(frameon=False, fontsize=8)
    return fig


def _fig_cate(cate) -> Any:
    fig, ax = new_figure(6.4, 3.2)
    ax.hist(cate.tau, bins=40, color="#8172b3", alpha=0.8)
    ax.axvline(cate.ate, color="black", lw=1, label=f"mean {cate.ate:.3g}")
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("predicted effect tau(x)")
    ax.set_ylabel("rows")
    ax.legend(frameon=False, fontsize=8)
    return fig


def _data_summary(result: Any) -> dict[str, Any]:
    d = result.diagnostics or {}
    cfg = result.config or {}
    out: dict[str, Any] = {"rows": f"{result.n_rows:,}"}
    for k, label in (("n_treated", "exposed rows"), ("n_control", "unexposed rows"),
                     ("treated_share", "share exposed")):
        if k in d:
            out[label] = d[k]
    sch = cfg.get("schema") or {}
    for role in ("treatment", "outcome", "user_id", "item_id", "user_text", "item_text"):
        if sch.get(role):
            out[f"{role} column"] = sch[role]
    for k, label in (("features", "adjustment features"), ("text_model", "text model"),
                     ("embedding_dim", "embedding dimension"), ("n_features", "feature columns"),
                     ("n_folds", "cross-fitting folds"), ("propensity_model", "propensity model"),
                     ("outcome_model", "outcome model")):
        if cfg.get(k) is not None:
            v = cfg[k]
            out[label] = v if len(str(v)) < 120 else str(v)[:117] + "..."
    return out


def build_uplift_report(result: Any, analysis: Any = None, title: str | None = None) -> Report:
    """Render ``result`` (and its analysis) as a :class:`Report` (HTML or Markdown)."""
    analysis = analysis if analysis is not None else getattr(result, "analysis", None)
    cfg = result.config or {}
    sch = cfg.get("schema") or {}
    treat, outc = sch.get("treatment", "treatment"), sch.get("outcome", "outcome")
    rep = Report(title or "Uplift report: what did exposure do?",
                 subtitle=f"Effect of '{treat}' on '{outc}' from logged (non-randomised) data")
    rep.payload = result.to_dict()

    rep.heading("Question and estimand")
    rep.text(f"What did exposing users to items ('{treat}' = 1 versus 0) do to '{outc}'? The average treatment "
             "effect (ATE) is E[Y(1) - Y(0)] over the logged rows; the effect on the treated (ATT) is the same "
             "average over exposed rows only.")
    if getattr(result, "estimand", ""):
        rep.text(f"Estimand as computed: {result.estimand}.")
    if analysis is not None and analysis.overlap is not None:
        rep.text(f"Overlap handling: propensities clipped to [{analysis.overlap.clip:g}, "
                 f"{1 - analysis.overlap.clip:g}]; {analysis.overlap.share_outside:.2%} of rows had an estimated "
                 "propensity outside that range. Clipping keeps the population target but leans on the outcome "
                 "model where it bites; trimming (option trim=) would change the target to the overlap "
                 "population.")

    rep.heading("Data")
    rep.kv(_data_summary(result), title="Data summary")

    rep.heading("Assumptions")
    rep.bullets(ASSUMPTIONS)

    rep.heading("Average effects")
    rep.table(estimates_table(result), title="Estimates by method",
              note=f"{100 * cfg.get('ci_level', 0.95):g}% confidence intervals. Methods that agree after "
                   "adjustment while the naive difference differs indicate confounding the adjustment removed.")

    if analysis is not None:
        rep.heading("Overlap and balance")
        if analysis.overlap is not None:
            rep.figure(_fig_overlap(analysis.overlap), title="Propensity distributions by arm",
                       note="Dashed lines: clipping thresholds. Mass near 0 or 1 in one arm only means weak overlap.")
            rep.table(analysis.overlap.quantiles.reset_index(names="arm"), title="Propensity quantiles", digits=3)
        if analysis.weights is not None:
            w = analysis.weights
            rep.kv({"ESS exposed": round(w.ess_treated), "exposed rows": w.n_treated,
                    "ESS unexposed": round(w.ess_control), "unexposed rows": w.n_control,
                    "max weight": w.max_weight, "weight p99": w.weight_p99},
                   title="Effective sample size of the ATE weights",
                   note="Kish's ESS = (sum w)^2 / sum w^2 per arm; far below the row count means a few rows carry "
                        "the estimate.")
        if analysis.balance is not None and len(analysis.balance.table):
            b = analysis.balance
            rep.figure(_fig_balance(b), title="Covariate balance (love plot)",
                       note=f"|SMD| before and after inverse-propensity weighting; dashed line at {b.threshold:g}. "
                            "Embeddings are summarised by their leading principal components.")
            rep.text(b.summary())

    if analysis is not None and (analysis.groups or analysis.cate is not None):
        rep.heading("Heterogeneous effects")
        for ge in analysis.groups:
            if not len(ge.table):
                rep.text(ge.note, title=f"Effects by {ge.by}")
                continue
            rep.figure(_fig_groups(ge), title=f"Effects by {ge.by} (largest groups)")
            tab = ge.table.head(50)
            rep.table(tab, title=f"Effects by {ge.by}", note=ge.note + (
                f" Showing the 50 largest of {len(ge.table)} groups." if len(ge.table) > 50 else ""))
        if analysis.cate is not None:
            c = analysis.cate
            rep.figure(_fig_cate(c), title=f"Distribution of predicted effects ({c.method})")
            rep.text(c.summary())
    if analysis is not None and analysis.curve is not None:
        rep.heading("Uplift curve")
        cv = analysis.curve
        rep.figure(_fig_curve(cv), title=f"Cumulative gain ({cv.weighting}-weighted)",
                   note="Rows ranked by predicted effect; the curve estimates the effect per row of exposing "
                        "only the top share. Above the dashed line: the ranking targets better than chance.")
        rows = {"weighting": cv.weighting, "evaluation rows": cv.n_rows, "AUUC": cv.auuc,
                "Qini coefficient (area over random)": cv.qini}
        if cv.qini_ci:
            rows["Qini coefficient CI"] = f"[{cv.qini_ci[0]:.4g}, {cv.qini_ci[1]:.4g}]"
            rows["bootstrap replicates"] = cv.n_boot
        rep.kv(rows, title="Area under the uplift curve")
    if analysis is not None and analysis.refutations is not None:
        rf = analysis.refutations
        rep.heading("Refutations and sensitivity")
        rep.table(rf.to_frame(), title="Refutation tests",
                  note=f"Re-estimated with a DML over the adjustment features ({rf.n_controls} controls), "
                       f"{rf.num_simulations} simulations per test, {rf.n_rows:,} rows, {rf.runtime_s:.0f} s. "
                       "A pass does not prove the design right; a fail points at a problem.")
        details = [f"{r.test}: {r.detail}" for r in rf.refutations if r.detail]
        if details:
            rep.bullets(details, title="Sensitivity to an unobserved confounder")
    if analysis is not None and analysis.notes:
        rep.bullets(analysis.notes, title="Notes")
    rep.warnings(list(result.warnings))
    return rep
