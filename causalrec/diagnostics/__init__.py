"""Diagnostics of a causal analysis: overlap, covariate balance, effective sample
size, and refutations / sensitivity to unobserved confounding.

Each function takes plain arrays (treatment ``t``, estimated propensity
``e_hat``, covariates) and returns a small result object with ``summary()``
and ``to_dict()``; the report layer draws them.
"""

from causalrec.diagnostics.balance import BalanceResult, covariate_balance
from causalrec.diagnostics.overlap import (
    OverlapHandling,
    OverlapResult,
    handle_overlap,
    overlap,
)
from causalrec.diagnostics.weights import (
    WeightDiagnostics,
    effective_sample_size,
    weight_diagnostics,
)

__all__ = [
    "BalanceResult",
    "OverlapHandling",
    "OverlapResult",
    "WeightDiagnostics",
    "covariate_balance",
    "effective_sample_size",
    "handle_overlap",
    "overlap",
    "weight_diagnostics",
]
