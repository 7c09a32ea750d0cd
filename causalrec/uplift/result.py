"""``UpliftResult``: average effects of exposure with their nuisance arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from causalrec.results import CausalResult


@dataclass
class UpliftResult(CausalResult):
    """ATE / ATT estimates (targets ``"ate"`` and ``"att"``) by several methods.

    Attributes beyond :class:`causalrec.results.CausalResult`:

    ``nuisance``
        Arrays for downstream analysis (CATE, curves, segments, refutations,
        reports): ``e_hat`` (clipped cross-fitted propensity), ``e_raw``
        (before clipping), ``mu0``, ``mu1`` (cross-fitted outcome means),
        ``X`` (design matrix), ``t``, ``y``, ``groups`` (user ids or ``None``),
        ``keep`` (boolean mask of the rows kept after trimming, over the input
        rows), ``feature_names``. Rows are those kept (after trimming).
    ``data``
        The canonical log rows used (kept rows), for per-item / per-segment views.
    ``estimand``
        One sentence saying what the targets mean after clipping/trimming.
    ``analysis``
        An ``UpliftAnalysis`` (overlap, balance, per-item/segment effects, CATE,
        uplift curve, refutations) when ``estimate`` was asked for one; its JSON is
        the top-level ``"analysis"`` key.
    """

    nuisance: dict[str, Any] = field(default_factory=dict, repr=False)
    data: Any = field(default=None, repr=False)
    estimand: str = ""
    analysis: Any = field(default=None, repr=False)
    title: str = "causalrec uplift: average effect of exposure"

    def _extra_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"estimand": self.estimand}
        if self.analysis is not None:
            d["analysis"] = self.analysis.to_dict()
        return d

    def summary(self) -> str:
        text = super().summary()
        if self.estimand:
            text += f"\nestimand: {self.estimand}"
        return text
