"""Multiple-testing correction across metrics, variants and segments.

Holm (1979) controls the family-wise error rate and Benjamini-Hochberg (1995) the
false discovery rate; both are on by default. Also available (``--corrections``):
Bonferroni, Sidak, Holm-Sidak, Hommel, Simes-Hochberg (step-up) and
Benjamini-Yekutieli. All come from statsmodels' ``multipletests`` (as in
spotify-confidence); missing p-values (a comparison that could not be computed) are
left out of the family and stay missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from causalrec.errors import InputError

METHODS = {"holm": "holm", "bh": "fdr_bh", "bonferroni": "bonferroni", "sidak": "sidak",
           "holm-sidak": "holm-sidak", "hommel": "hommel", "simes-hochberg": "simes-hochberg", "by": "fdr_by"}
DEFAULT = ("holm", "bh")


def check_methods(methods: Sequence[str]) -> list[str]:
    out = [str(m).strip().lower() for m in methods if str(m).strip()]
    bad = [m for m in out if m not in METHODS]
    if bad:
        raise InputError(f"unknown multiple-testing correction {bad[0]!r}", column="--corrections",
                         fix=f"use any of {', '.join(METHODS)}")
    return list(dict.fromkeys(out))


def adjust(pvalues: np.ndarray | list[float], alpha: float = 0.05,
           methods: Sequence[str] = DEFAULT) -> dict[str, np.ndarray]:
    """``{method: adjusted p-values}`` for one family of p-values (default ``holm`` and ``bh``)."""
    methods = check_methods(methods)
    p = np.asarray(pvalues, dtype=float)
    out = {k: np.full(p.shape, np.nan) for k in methods}
    ok = np.isfinite(p)
    if ok.sum() == 1:  # a family of one needs no correction (and multipletests runs gc.collect: ~0.2 s)
        for key in methods:
            out[key][ok] = p[ok]
    elif ok.any():
        from statsmodels.stats.multitest import multipletests

        for key in methods:
            out[key][ok] = multipletests(p[ok], alpha=alpha, method=METHODS[key])[1]
    return out
