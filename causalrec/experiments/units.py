"""From logs to one row per randomisation unit.

A/B inference treats rows as independent draws, which is only true of the
unit that was randomised (usually the user). Impression- or session-level
logs are therefore summed per unit first: each metric's numerator, each
ratio's numerator and denominator, and the row count. A per-impression
rate (click-through rate) then becomes the ratio ``sum(clicks) / rows`` over
units, analysed with the delta method, instead of a mean over correlated
impressions whose naive standard error is too small.

Units seen in more than one variant cannot be attributed to an arm; they are
dropped and counted in the warnings. Pre-period covariates are averaged per
unit (they should be constant within a unit) and the segment is the unit's
first value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from causalrec.data.validation import check_numeric
from causalrec.errors import InputError

N_ROWS = "_n_rows"


def to_units(
    df: pd.DataFrame,
    *,
    variant: str,
    unit: str | None,
    sums: Sequence[str],
    means: Sequence[str] = (),
    firsts: Sequence[str] = (),
    order: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """One row per unit: ``variant``, sums of ``sums``, means of ``means``,
    first value of ``firsts``, minimum of ``order`` and ``_n_rows``.

    Without ``unit`` every row is a unit and the frame is only narrowed.
    Returns ``(frame, warnings)``. The input is never modified.
    """
    warnings: list[str] = []
    if df[variant].isna().any():
        raise InputError(f"column '{variant}' has {int(df[variant].isna().sum())} missing variant labels",
                         column=variant, fix="drop the rows without a variant or label them")
    for c in sums:
        vals = check_numeric(df, c)
        bad = ~np.isfinite(vals)
        if bad.any():
            raise InputError(f"metric column '{c}' has {int(bad.sum())} missing or infinite values",
                             column=c, fix="fill them (0 when missing means 'none') or drop those rows")
    for c in means:
        check_numeric(df, c)
    cols = list(dict.fromkeys([variant, *sums, *means, *firsts, *([order] if order else [])]))
    if unit is None:
        out = df[cols].copy()
        out[variant] = out[variant].astype(str)
        out[N_ROWS] = 1.0
        for c in sums:
            out[c] = out[c].astype(float)
        return out.reset_index(drop=True), warnings
    if df[unit].isna().any():
        raise InputError(f"unit column '{unit}' has {int(df[unit].isna().sum())} missing values",
                         column=unit, fix="drop the rows without a unit id")
    work = df[[unit, *cols]].copy()
    work[variant] = work[variant].astype(str)
    for c in sums:
        work[c] = work[c].astype(float)
    g = work.groupby(unit, sort=True)
    n_var = g[variant].nunique()
    crossed = n_var[n_var > 1].index
    if len(crossed):
        share = len(crossed) / len(n_var)
        warnings.append(f"{len(crossed):,} units ({100 * share:.2g}%) appear in more than one variant and were "
                        "dropped: a unit must stay in one arm (check the assignment)")
        work = work[~work[unit].isin(crossed)]
        g = work.groupby(unit, sort=True)
    agg: dict[str, tuple[str, str]] = {variant: (variant, "first"), N_ROWS: (variant, "size")}
    for c in sums:
        agg[c] = (c, "sum")
    for c in means:
        if c not in agg:
            agg[c] = (c, "mean")
    for c in firsts:
        if c not in agg:
            agg[c] = (c, "first")
    if order:
        agg[order] = (order, "min")
    out = g.agg(**agg).reset_index()
    out[N_ROWS] = out[N_ROWS].astype(float)
    return out, warnings
