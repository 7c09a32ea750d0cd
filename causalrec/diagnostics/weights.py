"""Inverse-propensity weights and their effective sample size.

Weights for the two usual estimands (``e`` is the propensity ``P(T=1 | X)``):

* ATE: ``w_i = T_i / e_i + (1 - T_i) / (1 - e_i)``
* ATT: ``w_i = T_i + (1 - T_i) e_i / (1 - e_i)``

The effective sample size of weights ``w`` over a set of rows is Kish's
``ESS = (sum w)^2 / sum w^2``: the number of equally weighted rows that would
give the same variance of a weighted mean. An ESS far below the row count
means a few rows carry the estimate (poor overlap).

One definition and one warning threshold for every command (uplift, OPE, debias,
the Spark engines): :func:`effective_sample_size` / :func:`ess_from_sums` (streamed
sums), and :func:`ess_warning` fires when ``ESS < ESS_WARN_SHARE * n`` with ``n``
the rows the weights are defined on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from causalrec.errors import InputError
from causalrec.results import jsonable


def ipw_weights(t: np.ndarray, e_hat: np.ndarray, estimand: str = "ate") -> np.ndarray:
    """Per-row inverse-propensity weights for ``estimand`` in {"ate", "att"}."""
    t = np.asarray(t, dtype=float)
    e = np.asarray(e_hat, dtype=float)
    if estimand == "ate":
        return t / e + (1.0 - t) / (1.0 - e)
    if estimand == "att":
        return t + (1.0 - t) * e / (1.0 - e)
    raise InputError(f"unknown estimand {estimand!r}", column="estimand", fix="use 'ate' or 'att'")


#: Kish ESS below this share of the rows triggers the ESS warning. 10%: below it the
#: variance of a weighted mean is at least 10x that of an unweighted one on the same rows.
ESS_WARN_SHARE = 0.1


def ess_from_sums(sum_w: float, sum_w2: float) -> float:
    """Kish's ESS ``(sum w)^2 / sum w^2`` from running sums (0 when every weight is 0)."""
    return float(sum_w) ** 2 / float(sum_w2) if sum_w2 > 0 else 0.0


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``."""
    w = np.asarray(w, dtype=float)
    return ess_from_sums(float(np.sum(w)), float(np.sum(w * w)))


def ess_warning(ess: float, n: int, consequence: str) -> str | None:
    """The one ESS warning: a message when ``ess < ESS_WARN_SHARE * n``, else ``None``.

    ``consequence`` says what a small ESS means for the caller's estimate
    (e.g. "corrected training will be noisy; consider --clip")."""
    if n <= 0 or ess >= ESS_WARN_SHARE * n:
        return None
    return (f"effective sample size of the weights is {ess:,.1f} of {n:,} rows ({ess / n:.2%}, below "
            f"{ESS_WARN_SHARE:.0%}): {consequence}")


@dataclass
class WeightDiagnostics:
    """Effective sample size and the tail of the weights, per arm."""

    estimand: str
    n_treated: int
    n_control: int
    ess_treated: float
    ess_control: float
    max_weight: float
    weight_p99: float
    weight_p50: float

    def to_dict(self) -> dict:
        return jsonable(asdict(self))

    def summary(self) -> str:
        return (
            f"ESS ({self.estimand}): treated {self.ess_treated:,.0f} of {self.n_treated:,}, "
            f"control {self.ess_control:,.0f} of {self.n_control:,}; "
            f"max weight {self.max_weight:.3g}, p99 {self.weight_p99:.3g}"
        )


def weight_diagnostics(t: np.ndarray, e_hat: np.ndarray, estimand: str = "ate") -> WeightDiagnostics:
    """ESS per arm and weight quantiles for the inverse-propensity weights."""
    t = np.asarray(t).astype(bool)
    w = ipw_weights(t, e_hat, estimand)
    return WeightDiagnostics(
        estimand=estimand,
        n_treated=int(t.sum()),
        n_control=int((~t).sum()),
        ess_treated=effective_sample_size(w[t]),
        ess_control=effective_sample_size(w[~t]),
        max_weight=float(w.max()) if w.size else float("nan"),
        weight_p99=float(np.quantile(w, 0.99)) if w.size else float("nan"),
        weight_p50=float(np.quantile(w, 0.5)) if w.size else float("nan"),
    )
