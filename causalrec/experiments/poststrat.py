"""Post-stratification: compare the arms within pre-treatment strata, then reweight.

With strata ``s`` (a pre-treatment categorical column: platform, country, tenure
band) holding shares ``w_s = N_s / N`` of the units of the two arms, each arm's
post-stratified value is ``m_k = sum_s w_s ybar_{k,s}`` (for a ratio metric
``N/D``: ``sum_s w_s Nbar_{k,s} / sum_s w_s Dbar_{k,s}``), and the effect is
``m_t - m_c``. It removes the chance imbalance of the strata between the arms and
the between-strata part of the variance (Miratrix, Sekhon & Yu 2013: nearly as
precise as blocking on the strata in advance).

Variance, for i.i.d. sampling of units::

    Var(m_k) = sum_s w_s^2 Var(u_{k,s}) / n_{k,s}  +  u_k^T (diag(w) - w w^T) u_k / N

where ``u`` is the metric's linearisation within the stratum (the value itself for a
mean) and the second term is the sampling of the shares ``w`` (multinomial), shared
by both arms, so it also enters their covariance. For a difference of means that
shared part is ``sum_s w_s (tau_s - tau)^2 / N``: zero when the effect is the same in
every stratum. Every stratum needs two units in each arm (checked).

Computed from per-stratum sufficient statistics, so a stats file with a stratum
column gives the same answer as the rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from causalrec.errors import InputError
from causalrec.experiments.estimators import Comparison, Metric, value_grad
from causalrec.experiments.stats import SuffStats


def compare_poststrat(strata_c: Sequence[SuffStats], strata_t: Sequence[SuffStats], m: Metric,
                      labels: Sequence[str] = (), column: str = "--stratify",
                      estimator: str = "poststrat") -> Comparison:
    """Post-stratified comparison from per-stratum statistics of the two arms (same stratum order)."""
    labels = list(labels) or [str(i) for i in range(len(strata_c))]
    for s, (c, t) in enumerate(zip(strata_c, strata_t, strict=True)):
        if c.n < 2 or t.n < 2:
            raise InputError(f"stratum {labels[s]!r} has {int(c.n)} control and {int(t.n)} treatment unit(s); "
                             "post-stratification needs at least 2 in each arm", column=column,
                             fix="merge small strata into an 'other' level, or stratify on a coarser column")
    n_s = np.array([c.n + t.n for c, t in zip(strata_c, strata_t, strict=True)])
    N = float(n_s.sum())
    w = n_s / N
    vals, vars_, us = [], [], []
    for arm in (strata_c, strata_t):
        means = np.array([st.means for st in arm])  # (S, d)
        wmean = w @ means
        pseudo = SuffStats(arm[0].names, 1.0, wmean, np.zeros((len(wmean), len(wmean))))
        mk, g = value_grad(pseudo, m)  # value and gradient at the post-stratified means
        u = means @ g  # per-stratum linearised values
        var = sum(w[s] ** 2 * st.quad(g) / (st.n - 1) / st.n for s, st in enumerate(arm))
        vals.append(mk)
        vars_.append(var)
        us.append(u)
    W = np.diag(w) - np.outer(w, w)
    shared = np.array([[ui @ W @ uj for uj in us] for ui in us]) / N
    n_c = int(sum(st.n for st in strata_c))
    n_t = int(sum(st.n for st in strata_t))
    return Comparison(estimator, vals[0], vals[1], vars_[0] + shared[0, 0], vars_[1] + shared[1, 1], n_c, n_t,
                      float("inf"), float(shared[0, 1]))
