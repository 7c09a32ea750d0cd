"""HTML / Markdown report of a :class:`causalrec.debias.DebiasResult` (rendering only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from causalrec.report.core import Report
from causalrec.report.figures import new_figure


def weights_figure(weights: np.ndarray, title: str = "Exposure weights") -> Any:
    fig, ax = new_figure()
    w = np.asarray(weights, dtype=float)
    ax.hist(w, bins=min(60, max(10, int(np.sqrt(w.size)))), color="#4c72b0")
    ax.set_yscale("log")
    ax.set_xlabel("weight")
    ax.set_ylabel("rows (log scale)")
    ax.set_title(title)
    return fig


def examination_figure(position_bias: Any, truth: np.ndarray | None = None) -> Any:
    """Examination per position with its interval (and a known curve, if given)."""
    fig, ax = new_figure()
    k = np.arange(position_bias.n_positions)
    e = position_bias.examination
    # a percentile interval need not contain the point estimate: draw the interval, never a negative bar
    lo = np.clip(e - np.nan_to_num(position_bias.ci_low, nan=0.0), 0, None)
    hi = np.clip(np.nan_to_num(position_bias.ci_high, nan=0.0) - e, 0, None)
    ax.errorbar(k, e, yerr=[lo, hi], fmt="o-", capsize=3,
                label=f"{position_bias.method} ({position_bias.ci_level:.0%} CI)")
    if truth is not None:
        t = np.asarray(truth, dtype=float)
        ax.plot(np.arange(t.size), t / t[0], "k--", label="truth")
    ax.set_xlabel("position (0-based)")
    ax.set_ylabel("examination relative to position 0")
    ax.set_xticks(k)
    ax.legend()
    return fig


def build_debias_report(result: Any) -> Report:
    rep = Report("causalrec debias", f"{result.n_rows:,} rows, method {result.config.get('method')}")
    rep.payload = result.to_dict()
    rep.heading("What changed")
    rep.table(result.to_frame(), title="Mean label before / after correction, examination per position")
    rep.kv({k: v for k, v in result.diagnostics.items()}, title="Weights and provenance")
    if result.weights is not None:
        rep.figure(weights_figure(result.weights.weights), title="Weight distribution",
                   note="Kish ESS = (sum w)^2 / sum w^2; clipping raises propensities below the floor.")
    if result.position_bias is not None:
        rep.figure(examination_figure(result.position_bias), title="Examination curve")
        rep.table(result.position_bias.to_frame(), title="Examination per position")
    if result.label_shift is not None and len(result.label_shift):
        ls = result.label_shift
        top = ls.reindex(ls["shift"].abs().sort_values(ascending=False).index).head(30)
        rep.table(top, title="Label shift per item (30 largest)",
                  note="naive_label: click rate; corrected_label: weighted mean of the corrected label.")
    rep.bullets([
        "Positivity: every candidate has a positive logging propensity (else its weight is undefined).",
        "The propensities are the logging policy's (logged) or estimated from the features given, with no "
        "unmeasured driver of exposure.",
        "Clicks follow the examination hypothesis: P(click) = examination(position) x relevance.",
    ], title="Assumptions")
    rep.warnings(result.warnings)
    return rep
