"""Diagnostics of a causal analysis: overlap, covariate balance, effective sample
size, and refutations / sensitivity to unobserved confounding.

Each function takes plain arrays (treatment ``t``, estimated propensity
``e_hat``, covariates) and returns a small result object with ``summary()``
and ``to_dict()``; the report layer draws them.
"""

from causalrec.diagnostics.balance import BalanceResult, covariate_balance, design_balance
from causalrec.diagnostics.overlap import (
    CLIP_WARN_SHARE,
    OverlapHandling,
    OverlapResult,
    clip_warning,
    handle_overlap,
    overlap,
    share_clipped,
)
from causalrec.diagnostics.weights import (
    ESS_WARN_SHARE,
    WeightDiagnostics,
    effective_sample_size,
    ess_from_sums,
    ess_warning,
    weight_diagnostics,
)

__all__ = [
    "CLIP_WARN_SHARE",
    "ESS_WARN_SHARE",
    "BalanceResult",
    "OverlapHandling",
    "OverlapResult",
    "WeightDiagnostics",
    "clip_warning",
    "covariate_balance",
    "design_balance",
    "effective_sample_size",
    "ess_from_sums",
    "ess_warning",
    "handle_overlap",
    "overlap",
    "share_clipped",
    "weight_diagnostics",
]
