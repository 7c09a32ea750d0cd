"""Looks of a sequential analysis, and capping (winsorisation) of metrics.

**Looks.** A timestamp column (one value per row: exposure, session or event time;
numbers, datetimes or ISO strings) and ``looks`` define when the experiment was
examined: ``looks=20`` cuts the period from the first to the last timestamp into 20
equal spans (look ``k`` sees every row up to ``t_min + k (t_max - t_min) / 20``), or
``looks=["2024-05-02", "2024-05-09", ...]`` lists the cut-offs. At a look the logs are
re-aggregated from the rows seen so far, so a unit's metric is what it had done by then
and every model fitted at a look (CUPED's theta, CUPAC's predictions, capping
thresholds, imputation means) uses only data available at that look.

**Capping.** ``cap=0.99`` replaces unit values above the pooled (both arms) 99th
percentile by that percentile; ``cap=(0.01, 0.99)`` (CLI ``0.01:0.99``) caps both
tails. The threshold is computed on the pooled data, never per arm, so it cannot
differ by treatment; capping changes the estimand (the mean of the capped metric),
which every result states, and cuts the variance that a few extreme units add.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from causalrec.errors import InputError


def time_key(values: pd.Series, column: str) -> tuple[np.ndarray, str]:
    """Timestamps as sortable floats, and their kind (``"number"`` or ``"datetime"``)."""
    if values.isna().any():
        raise InputError(f"timestamp column '{column}' has {int(values.isna().sum())} missing values", column=column,
                         fix="fill or drop the rows without a time")
    if pd.api.types.is_bool_dtype(values):
        raise InputError(f"timestamp column '{column}' is boolean", column=column, fix="pass a time or a number")
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=float), "number"
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": parsed element-wise
            ts = pd.to_datetime(values, utc=True) if not pd.api.types.is_datetime64_any_dtype(values) else values
    except (ValueError, TypeError):
        raise InputError(f"timestamp column '{column}' is neither numeric nor a date/time "
                         f"(e.g. {values.iloc[0]!r})", column=column,
                         fix="give times as numbers (days since start) or ISO dates such as 2024-05-01") from None
    if getattr(ts.dt, "tz", None) is None:
        ts = ts.dt.tz_localize("UTC")
    seconds = (ts.dt.tz_convert("UTC") - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=float), "datetime"


def _label(v: float, kind: str) -> Any:
    if kind == "datetime":
        return (pd.Timestamp("1970-01-01", tz="UTC") + pd.Timedelta(seconds=float(v))).isoformat()
    return float(v)


def parse_looks(spec: Any) -> int | list:
    """``20`` / ``"20"`` -> 20; ``"2024-05-02,2024-05-09"`` / a list -> the list of cut-offs."""
    if spec is None:
        return 20
    if isinstance(spec, (int, np.integer)):
        n = int(spec)
    elif isinstance(spec, str):
        text = spec.strip()
        if "," not in text:
            try:
                n = int(text)
            except ValueError:
                return [text]
        else:
            return [p.strip() for p in text.split(",") if p.strip()]
    else:
        return list(spec)
    if n < 1:
        raise InputError(f"the number of looks must be >= 1, got {n}", column="--looks", fix="e.g. --looks 20")
    return n


def cutoffs(key: np.ndarray, kind: str, looks: int | Sequence) -> tuple[np.ndarray, list]:
    """Cut-off keys (floats, increasing) and their labels, from a look count or explicit cut-offs."""
    lo, hi = float(np.min(key)), float(np.max(key))
    if isinstance(looks, int):
        if hi == lo:
            return np.array([hi]), [_label(hi, kind)]
        cuts = lo + (hi - lo) * np.arange(1, looks + 1) / looks
        cuts[-1] = hi
    else:
        vals = pd.Series(list(looks))
        if kind == "number":
            c = pd.to_numeric(vals, errors="coerce")
            if c.isna().any():
                raise InputError(f"look cut-off {vals[c.isna()].iloc[0]!r} is not a number (the timestamp column is "
                                 "numeric)", column="--looks", fix="list numbers, e.g. --looks 7,14,21")
            cuts = c.to_numpy(dtype=float)
        else:
            try:
                cuts, _ = time_key(vals, "--looks")
            except InputError:
                raise InputError(f"look cut-offs {list(looks)[:4]} are not dates/times", column="--looks",
                                 fix="list ISO dates, e.g. --looks 2024-05-07,2024-05-14") from None
        if np.any(np.diff(cuts) <= 0):
            bad = int(np.flatnonzero(np.diff(cuts) <= 0)[0]) + 1
            raise InputError(f"looks are out of order: cut-off {bad + 1} ({list(looks)[bad]!r}) is not after cut-off "
                             f"{bad} ({list(looks)[bad - 1]!r})", column="--looks",
                             fix="list the look cut-offs in increasing time order")
        if cuts[0] < lo:
            raise InputError(f"the first look cut-off {list(looks)[0]!r} is before the first timestamp",
                             column="--looks", fix="start the looks once the experiment has data")
    return cuts, [_label(c, kind) for c in cuts]


def parse_cap(spec: Any) -> tuple[float | None, float] | None:
    """``0.99`` -> ``(None, 0.99)``; ``"0.01:0.99"`` / ``(0.01, 0.99)`` -> ``(0.01, 0.99)``; ``None`` -> ``None``."""
    if spec is None or spec == "":
        return None
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.replace(",", ":").split(":") if p.strip()]
    elif isinstance(spec, (tuple, list)):
        parts = list(spec)
    else:
        parts = [spec]
    try:
        vals = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise InputError(f"cap {spec!r} is not a quantile level", column="--cap",
                         fix="e.g. --cap 0.99 (upper tail) or --cap 0.01:0.99 (both tails)") from None
    if len(vals) not in (1, 2) or not all(0.0 < v < 1.0 for v in vals) or (len(vals) == 2 and vals[0] >= vals[1]):
        raise InputError(f"cap {spec!r} must be one quantile level in (0, 1) or two increasing ones",
                         column="--cap", fix="e.g. --cap 0.99 or --cap 0.01:0.99")
    return (None, vals[0]) if len(vals) == 1 else (vals[0], vals[1])


def cap_values(values: np.ndarray, cap: tuple[float | None, float]) -> tuple[np.ndarray, tuple[float | None, float]]:
    """Values clipped at their pooled quantiles; returns ``(capped, (low_threshold, high_threshold))``."""
    lo_q, hi_q = cap
    hi = float(np.quantile(values, hi_q))
    lo = float(np.quantile(values, lo_q)) if lo_q is not None else None
    return np.clip(values, lo if lo is not None else -np.inf, hi), (lo, hi)
