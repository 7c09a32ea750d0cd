"""Report for ``causalrec ope``: renders an :class:`causalrec.ope.OPEResult` (no statistics here)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from causalrec.report import ope_slates
from causalrec.report.core import Report

ASSUMPTIONS = [
    "Correct propensities: the propensity column is the logging policy's actual probability of "
    "showing each logged item at its position, given everything the target policy conditions on.",
    "No unmeasured confounding given the logged propensities: whatever made the logging policy show "
    "an item is captured by that probability, so reweighting by it removes the selection.",
    "Positivity (overlap): wherever the target policy puts probability, the logging policy had a "
    "positive probability too; otherwise the weighting estimators cannot see those items and only "
    "the outcome model (DM) extrapolates.",
    "No interference across positions: an impression's outcome depends on its own item and position, "
    "not on what else the list showed (the position-aware Open Bandit protocol).",
    "DM is unbiased only if the outcome model is right, and its interval ignores the model's error; "
    "DR-type estimators need either correct propensities or a correct outcome model.",
]


def build_ope_report(result) -> Report:
    d = result.diagnostics
    tp = result.target_policy or {}
    rep = Report(
        title=result.title,
        subtitle=f"{result.n_rows:,} logged impressions; target policy: {tp.get('kind', '?')}",
    )
    slate = bool(tp.get("slate"))
    rep.heading("Question")
    rep.text(
        ope_slates.question(result) if slate else
        "If the target policy had chosen the items (per position) instead of the logging policy, what "
        "would the mean outcome per impression have been? Estimated from the logs by reweighting each "
        "logged impression by w = pi_target(item, position | row) / propensity, by an outcome model (DM), "
        "or both (DR family)."
    )

    rep.heading("Data")
    data = {
        "rows (impressions)": f"{result.n_rows:,}",
        "target policy": tp.get("kind", "?"),
        "target is position-aware": tp.get("positional"),
        "items in target policy": tp.get("n_items"),
        "logging policy's mean outcome": _pm(d.get("logged_mean_outcome"), d.get("logged_mean_outcome_se")),
        "propensity range": f"{_g(d.get('propensity_min'))} .. {_g(d.get('propensity_max'))}",
        "outcome model": (result.outcome_model or {}).get("outcome_model", "none"),
        "mode": result.config.get("mode"),
    }
    if slate:
        data.update(ope_slates.data_rows(result))
    rep.kv({k: v for k, v in data.items() if v is not None}, title="Summary")

    rep.heading("Assumptions")
    cl = result.config.get("cluster")
    rep.bullets([*(ope_slates.assumptions(result) + ASSUMPTIONS[1:3] if slate else ASSUMPTIONS),
                 f"Independence across clusters of '{cl}': rows of one cluster may be dependent, clusters "
                 "may not; the intervals need many clusters." if cl else
                 "Independent rows for the standard errors: if the positions of one request (or the requests "
                 "of one user) are dependent, the intervals are too narrow; rerun with --cluster COL."])

    rep.heading("Estimates")
    frame = _estimates_frame(result)
    level = result.estimates[0].ci_level if result.estimates else 0.95
    note = (f"{100 * level:g}% intervals: normal, from the influence-function standard error "
            "(delta method for the self-normalised estimators)")
    if cl:
        how = (" (chosen automatically: the log has this request column; --cluster none treats rows as "
               "independent)" if result.config.get("cluster_choice") == "auto" else "")
        note += (f"; standard errors cluster-robust by '{cl}'{how} "
                 "(se_iid: treating rows as independent)")
    if "mc_se" in frame.columns:
        note += "; mc_se: Monte Carlo standard error from the target's sampled marginals"
    if "boot_ci_low" in frame.columns:
        note += "; boot_ci_*: percentile bootstrap" + (" of whole clusters" if cl else "")
    rep.table(frame, title="Value of the target policy", note=note, digits=5)
    if result.estimates:
        rep.figure(_forest(result), title="Estimates with confidence intervals")

    _catalogue_sections(rep, result)

    rep.heading("Importance weights")
    hist = result.weight_histogram or {}
    if hist.get("counts"):
        rep.figure(_histogram(hist, d.get("clip")), title="Distribution of the importance weights",
                   note=f"{hist.get('n_zero', 0):,} rows have weight 0 (target never shows the logged item there)")
    rep.kv(_diag_rows(d), title="Diagnostics",
           note="ESS = (sum w)^2 / sum w^2 of the weights used; mean weight should be close to 1")
    rep.warnings(list(result.warnings))
    rep.payload = result.to_dict()
    return rep


def _catalogue_sections(rep, result) -> None:
    """Large catalogues (item clusters) and SLOPE selection: rendered from the result's diagnostics."""
    d = result.diagnostics
    cat = d.get("catalogue")
    if cat:
        rep.heading("Large catalogue: items as clusters of their text")
        rep.text("mips, snmips and offcem weight each impression by the target's over the logging policy's "
                 "probability of the logged item's cluster, p(e | x, pi_e) / p(e | x, pi_0), instead of the item's "
                 "own ratio: far less variance when clusters hold many items, unbiased when the item affects the "
                 "outcome only through its cluster (offcem models the rest with an item-level outcome model) and the "
                 "logging policy reaches every cluster the target uses.")
        rep.kv({"catalogue items": cat.get("n_items"), "embedding dimension": cat.get("embedding_dim"),
                "clustering": cat.get("clustering"), "cluster count": cat.get("cluster_choice"),
                "candidates": ", ".join(str(k) for k in cat.get("cluster_candidates", [])),
                "cluster weights": cat.get("cluster_weights")}, title="Item representation")
    sel = d.get("selection")
    if sel:
        rep.heading("Hyper-parameter selection (SLOPE)")
        rep.text("Candidates ordered from least biased (most variable) to most biased; SLOPE keeps the last one whose "
                 "interval (estimate +- width x SE) still intersects those of all the less biased candidates. The "
                 "chosen estimate's interval does not account for the selection.")
        def shown(v) -> str:  # None is a candidate too (no clip): name it rather than leave a blank / nan cell
            return "none" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

        for name, s in sel.items():
            frame = pd.DataFrame(s["candidates"])
            values = [shown(c["value"]) for c in s["candidates"]]
            frame = frame.drop(columns="value")
            frame.insert(0, s["parameter"], values)
            frame["chosen"] = ["yes" if v == shown(s["chosen"]) else "" for v in values]
            rep.table(frame, title=f"{name}: {s['parameter']} chosen = {shown(s['chosen'])}",
                      note=f"width {s.get('width_se')} standard errors", digits=5)


def _estimates_frame(result) -> pd.DataFrame:
    frame = result.to_frame()
    keep = [c for c in ("estimator", "target", "estimate", "se", "se_iid", "ci_low", "ci_high", "boot_ci_low",
                        "boot_ci_high", "mc_se", "clip", "tau", "lambda", "clusters", "selected_by") if c in frame.columns]
    frame = frame[keep]
    return frame.dropna(axis=1, how="all")


def _diag_rows(d: dict) -> dict:
    order = ["ess", "ess_ratio", "weight_mean", "weight_mean_se", "weight_min", "weight_p50", "weight_p90",
             "weight_p99", "weight_p99_9", "weight_max", "weight_quantile_method", "share_zero_weight",
             "clip", "share_clipped", "propensity_min", "propensity_max", "outcome_cells_observed"]
    out = {k: d[k] for k in order if k in d and d[k] is not None}
    skip = set(order) | {"max_weight"}  # max_weight duplicates weight_max
    out.update({k: v for k, v in d.items() if k not in skip and not isinstance(v, (dict, list))})
    return out


def _forest(result):
    from causalrec.report.figures import new_figure

    ests = result.estimates
    fig, ax = new_figure(6.4, 0.5 * len(ests) + 1.2)
    ypos = np.arange(len(ests))[::-1]
    est = np.array([e.estimate for e in ests], dtype=float)
    lo = np.array([e.ci_low for e in ests], dtype=float)
    hi = np.array([e.ci_high for e in ests], dtype=float)
    ax.errorbar(est, ypos, xerr=[est - lo, hi - est], fmt="o", color="#1f5fa8", capsize=3)
    ax.set_yticks(ypos)
    ax.set_yticklabels([e.estimator for e in ests])
    lm = result.diagnostics.get("logged_mean_outcome_per_list", result.diagnostics.get("logged_mean_outcome"))
    if lm is not None and np.isfinite(lm):
        ax.axvline(lm, color="#999", ls="--", lw=1, label="logging policy's mean outcome")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("estimated value per impression")
    return fig


def _histogram(hist: dict, clip) -> object:
    from causalrec.report.figures import new_figure

    edges = np.asarray(hist["edges"], dtype=float)
    counts = np.asarray(hist["counts"], dtype=float)
    fig, ax = new_figure()
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c8c4a", edgecolor="white")
    if edges[-1] / edges[0] > 3:  # the bins are log-spaced
        ax.set_xscale("log")
    if clip is not None:
        ax.axvline(clip, color="#c0392b", ls="--", lw=1, label=f"clip = {clip:g}")
        ax.legend(fontsize=8)
    ax.set_xlabel("importance weight w = pi_target / propensity")
    ax.set_ylabel("rows")
    return fig


def _g(v) -> str:
    return "?" if v is None else f"{v:.4g}"


def _pm(v, se) -> str | None:
    if v is None:
        return None
    return f"{v:.5g} (SE {se:.2g})" if se is not None else f"{v:.5g}"
