"""``OPEResult``: the value of a target policy estimated from logs, with diagnostics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from causalrec.results import CausalResult


@dataclass
class OPEResult(CausalResult):
    """Estimates of the target ``policy_value`` (one per estimator), plus:

    - ``weight_histogram``: ``{"edges", "counts", "n_zero", "scale"}``, a compact
      histogram of the raw importance weights (not the weights themselves);
    - ``target_policy``: a description of the target (kind, positional, n_items);
    - ``outcome_model``: a description of the outcome model used by DM/DR (if any).

    ``diagnostics`` always holds ``ess``, ``ess_ratio``, ``weight_max``, weight
    quantiles, ``share_clipped``, ``propensity_min``/``propensity_max`` and the logging
    policy's own mean outcome (``logged_mean_outcome``).
    """

    command: str = "ope"
    n_rows: int = 0
    estimates: list = field(default_factory=list)
    title: str = "Off-policy evaluation: value of the target policy"
    weight_histogram: dict[str, Any] = field(default_factory=dict)
    target_policy: dict[str, Any] = field(default_factory=dict)
    outcome_model: dict[str, Any] | None = None

    def _extra_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "weight_histogram": self.weight_histogram,
            "target_policy": self.target_policy,
            "outcome_model": self.outcome_model,
        }
