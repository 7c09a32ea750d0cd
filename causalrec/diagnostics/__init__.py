"""Diagnostics of a causal analysis: overlap, covariate balance, effective sample
size, and refutations / sensitivity to unobserved confounding.

Each function takes plain arrays (treatment ``t``, estimated propensity
``e_hat``, covariates) and returns a small result object with ``summary()``
and ``to_dict()``; the report layer draws them.
"""

from causalrec.diagnostics.balance import BalanceResult, covariate_balance, design_balance
from causalrec.diagnostics.overlap import (
    OverlapHandling,
    OverlapResult,
    handle_overlap,
    overlap,
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
    "ESS_WARN_SHARE",
    "BalanceResult",
    "OverlapHandling",
    "OverlapResult",
    "WeightDiagnostics",
    "covariate_balance",
    "design_balance",
    "effective_sample_size",
    "ess_from_sums",
    "ess_warning",
    "handle_overlap",
    "overlap",
    "weight_diagnostics",
]
