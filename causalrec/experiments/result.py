"""``ABResult``: everything an A/B analysis found, SRM first.

A plain dataclass over :class:`causalrec.results.CausalResult`: one
``Estimate`` per metric x comparison x estimator x target in ``estimates``
(labels ``metric``, ``variant``, ``control`` and the arm sizes and means in
``extra``), plus the SRM check, variance reduction, segment effects, power,
the arm table, the sequential path (one row per metric x comparison x look) and
the sufficient statistics the estimates were computed from (``stats``, an
:class:`~causalrec.experiments.stats.ABStats`; ``stats_table()`` is the stats-file
form). ``summary()``, ``to_frame()``, ``to_dict()`` and ``_repr_html_()`` render
it; nothing is computed here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from causalrec.experiments.srm import SRMResult
from causalrec.results import CausalResult


@dataclass
class ABResult(CausalResult):
    """Result of :func:`causalrec.experiments.analyze`."""

    control: str = ""
    variants: list[str] = field(default_factory=list)
    srm: SRMResult | None = None
    arms: pd.DataFrame = field(default_factory=pd.DataFrame)
    variance_reduction: pd.DataFrame = field(default_factory=pd.DataFrame)
    segments: pd.DataFrame = field(default_factory=pd.DataFrame)
    power: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_units: int = 0
    sequential: pd.DataFrame = field(default_factory=pd.DataFrame)
    stats: Any = field(default=None, repr=False)
    stats_pairs: list = field(default_factory=list, repr=False)
    title: str = "A/B experiment"

    def stats_table(self) -> pd.DataFrame:
        """The sufficient statistics in the stats-file format (``causalrec ab --stats``)."""
        if self.stats is None:
            return pd.DataFrame()
        return self.stats.to_table(self.stats_pairs)

    # -- access -------------------------------------------------------------
    def primary(self, target: str = "diff") -> pd.DataFrame:
        """The primary estimate per metric x comparison (the one tested and corrected)."""
        f = self.to_frame()
        if f.empty:
            return f
        return f[(f["target"] == target) & (f["primary"].astype(bool))].reset_index(drop=True)

    # -- renderings -----------------------------------------------------------
    def _extra_dict(self) -> dict[str, Any]:
        return {
            "n_units": self.n_units,
            "control": self.control,
            "variants": list(self.variants),
            "srm": self.srm.to_dict() if self.srm else None,
            "arms": self.arms.to_dict(orient="records"),
            "variance_reduction": self.variance_reduction.to_dict(orient="records"),
            "segments": self.segments.to_dict(orient="records"),
            "power": self.power.to_dict(orient="records"),
            "sequential": self.sequential.to_dict(orient="records"),
        }

    def _table(self) -> pd.DataFrame:
        f = self.to_frame()
        if f.empty:
            return f
        keep = ["metric", "variant", "estimator", "target", "estimate", "ci_low", "ci_high", "p_value",
                *[f"p_{m}" for m in self.config.get("corrections", ["holm", "bh"])]]
        return f[[c for c in keep if c in f.columns]]

    def summary(self) -> str:
        lines = []
        if self.srm is not None:
            lines.append(("!!! " if self.srm.mismatch else "") + self.srm.message())
        lines.append(f"{self.title}: {self.n_units:,} units (n_rows={self.n_rows:,}), control = "
                     f"{self.control!r}, variants = {self.variants}")
        if not self.arms.empty:
            lines.append(self.arms.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
        t = self._table()
        if not t.empty:
            lines.append(t.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
        if not self.variance_reduction.empty:
            vr = self.variance_reduction[["metric", "variant", "estimator", "se_ratio", "var_reduction"]]
            lines.append("variance reduction:")
            lines.append(vr.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if not self.sequential.empty:
            lines.append(f"sequential: {self.sequential['look'].max()} look(s); methods "
                         f"{', '.join(self.config.get('sequential_methods', []))} (see the cs / gst / msprt rows)")
        if not self.segments.empty:
            first = self.config.get("corrections", ["holm"])[0]
            col = f"p_{first}"
            n_sig = int((self.segments[col] < self.config.get("alpha", 0.05)).sum()) if col in self.segments else 0
            lines.append(f"segments: {len(self.segments)} segment x metric x variant effects "
                         f"({n_sig} significant after {first})")
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = []
        if self.srm is not None:
            colour = "#b00020" if self.srm.mismatch else "#1b5e20"
            parts.append(f'<p style="color:{colour};font-weight:bold">{html.escape(self.srm.message())}</p>')
        parts.append(f"<h4>{html.escape(self.title)}</h4><p>{self.n_units:,} units, control = "
                     f"{html.escape(str(self.control))}</p>")
        t = self._table()
        if not t.empty:
            parts.append(t.to_html(index=False, float_format=lambda v: f"{v:.6g}", escape=True))
        if self.warnings:
            parts.append("<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings) + "</ul>")
        return "\n".join(parts)
