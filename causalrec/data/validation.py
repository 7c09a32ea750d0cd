"""Validation at the boundary.

Each check raises :class:`causalrec.errors.InputError` naming the column and
the fix. Checks work on canonical frames (see :class:`LogSchema.canonical`)
but report the *user's* column names, which the caller passes via ``names``.
Inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from causalrec.data.schema import LogSchema
from causalrec.errors import InputError


def _name(col: str, names: Mapping[str, str] | None) -> str:
    return (names or {}).get(col, col)


def check_nonempty(df: pd.DataFrame, what: str = "log") -> None:
    if len(df) == 0:
        raise InputError(f"the {what} has no rows", fix=f"check the file and any filters: the {what} must hold at least one row")


def check_numeric(df: pd.DataFrame, col: str, names: Mapping[str, str] | None = None) -> np.ndarray:
    """Return the column as float64, or raise naming it."""
    s = df[col]
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=np.float64)
    if not pd.api.types.is_numeric_dtype(s):
        bad = s[pd.to_numeric(s, errors="coerce").isna() & s.notna()]
        example = repr(bad.iloc[0]) if len(bad) else "?"
        raise InputError(
            f"column '{_name(col, names)}' must be numeric but has dtype {s.dtype} (e.g. value {example})",
            column=_name(col, names),
            fix="convert it to numbers (e.g. clicks as 0/1) or point the option at the right column",
        )
    return s.to_numpy(dtype=np.float64)


def check_finite(values: np.ndarray, col: str, names: Mapping[str, str] | None = None) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        kind = "NaN" if np.isnan(values[idx]) else "infinite"
        raise InputError(
            f"column '{_name(col, names)}' has {int(bad.sum())} missing or infinite values "
            f"(first at row {idx}: {kind})",
            column=_name(col, names),
            fix="drop or fill those rows before running causalrec",
        )


def check_propensity(values: np.ndarray, col: str = "propensity", names: Mapping[str, str] | None = None) -> None:
    """Propensities must be finite and in (0, 1]."""
    check_finite(values, col, names)
    bad = (values <= 0) | (values > 1)
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"column '{_name(col, names)}' must lie in (0, 1]; {int(bad.sum())} rows do not "
            f"(first at row {idx}: {float(values[idx])!r})",
            column=_name(col, names),
            fix="a logging propensity of 0 means the row could not have been logged: fix the "
            "logging pipeline, or let causalrec estimate propensities",
        )


def check_binary(df: pd.DataFrame, col: str, names: Mapping[str, str] | None = None) -> np.ndarray:
    """Return a 0/1 int array, or raise if the column has other values."""
    s = df[col]
    if s.isna().any():
        raise InputError(
            f"column '{_name(col, names)}' has {int(s.isna().sum())} missing values",
            column=_name(col, names), fix="drop or fill those rows",
        )
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy().astype(np.int8)
    vals = pd.unique(s)
    if not set(pd.Series(vals).tolist()) <= {0, 1}:
        shown = ", ".join(repr(v) for v in list(vals)[:5])
        raise InputError(
            f"column '{_name(col, names)}' must be binary (0/1) but has values {shown}",
            column=_name(col, names),
            fix="recode it as 0 = not treated/control and 1 = treated/exposed",
        )
    return s.to_numpy().astype(np.int8)


def zero_based_positions(values: np.ndarray, base: int = 0, column: str = "position", *,
                         n_positions: int | None = None) -> np.ndarray:
    """Positions as the user wrote them -> canonical 0-based ``int64`` (``pos - base``), checked.

    The one position-base check of the package (the log validation, the ranker's
    click model and the position-bias estimators call it). Raises, naming
    ``column``, when the values are not whole finite numbers, fall below
    ``base``, reach ``n_positions`` (when given), or -- with ``base = 0`` --
    start at 1: slot 0 is the top of every list, so no row there with 1 as the
    smallest value is what 1-based slots read as 0-based look like, and the
    error names ``--position-base 1``.
    """
    vals = np.asarray(values, dtype=np.float64)
    check_finite(vals, column)
    if np.any(vals != np.round(vals)):
        raise InputError(f"column '{column}': positions must be whole numbers", column=column,
                         fix="store the slot index as an integer")
    pos = vals.astype(np.int64) - int(base)
    if base == 0 and pos.size and pos.min() == 1:
        raise InputError(
            f"column '{column}' starts at 1 but positions are read as 0-based "
            "(position base 0): no row is at the top slot 0",
            column=column,
            fix="pass --position-base 1 (position_base=1 in the LogSchema) if your slots count from 1",
        )
    if pos.size and pos.min() < 0:
        raise InputError(
            f"column '{column}' has position {int(pos.min()) + int(base)}, below the declared base {base}",
            column=column,
            fix="declare the right base (--position-base 0 or 1)",
        )
    if n_positions is not None and pos.size and pos.max() >= n_positions:
        hi = int(pos.max()) + int(base)
        raise InputError(
            f"column '{column}' has position {hi}, outside the declared range "
            f"{base}..{int(base) + int(n_positions) - 1}",
            column=column,
            fix="check --position-base and --n-positions, or drop rows with out-of-range positions",
        )
    return pos


def check_positions(df: pd.DataFrame, schema: LogSchema, names: Mapping[str, str] | None = None) -> np.ndarray:
    """Canonical (0-based) positions as int64; range-checked when ``n_positions`` is declared."""
    vals = check_numeric(df, "position", names)
    return zero_based_positions(vals, schema.position_base, _name("position", names),
                                n_positions=schema.n_positions)


def check_level(value: float, name: str = "ci_level", example: float = 0.95) -> float:
    """A confidence level (or test size, power) must lie strictly in (0, 1); returns it.

    Checked when options are parsed, before any data is read or model fitted.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not 0.0 < v < 1.0:  # also rejects NaN
        hint = f" ({v / 100:g} for {v:g}%?)" if 50.0 <= v < 100.0 else ""
        raise InputError(f"{name} must lie strictly between 0 and 1, got {value!r}{hint}", column=name,
                         fix=f"e.g. {name} {example:g}" if name.startswith("--") else f"e.g. {example:g}")
    return v


def check_columns_named(columns: Iterable[str], named: Mapping[str, str | None], what: str = "log") -> None:
    """Every column the user named explicitly (``{option: column}``) must exist.

    A column named on the command line is never dropped silently: without this
    check a mistyped ``--item-text`` simply vanished and a later error blamed
    the covariates. ``columns`` are the file's columns (read from its header).
    """
    present = [str(c) for c in columns]
    have = set(present)
    for option, col in named.items():
        if col is not None and col not in have:
            import difflib

            close = difflib.get_close_matches(col, present, n=1)
            maybe = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputError(
                f"{option} names column '{col}', which the {what} does not have{maybe}; columns present: "
                f"{', '.join(present[:12])}{' ...' if len(present) > 12 else ''}",
                column=col,
                fix=f"pass {option} with one of the {what}'s columns (or leave {option} out)",
            )


def validate_log(
    df: pd.DataFrame,
    schema: LogSchema,
    *,
    require: Iterable[str] = ("item_id", "outcome"),
    binary: Iterable[str] = (),
    command: str = "",
) -> pd.DataFrame:
    """Check a user log against the schema and return its canonical copy.

    ``require`` lists the roles this command needs; ``binary`` the roles that
    must be 0/1. Outcome, propensity and position get type and range checks
    whenever they are present.
    """
    require = tuple(require)
    check_nonempty(df)
    schema.require(df, require, command=command)
    names = {role: col for role, col in schema.present(df).items()}
    canon = schema.canonical(df)
    if "outcome" in canon.columns and "outcome" in require:
        v = check_numeric(canon, "outcome", names)
        check_finite(v, "outcome", names)
    if "propensity" in canon.columns and "propensity" in require:
        v = check_numeric(canon, "propensity", names)
        check_propensity(v, "propensity", names)
    if "position" in canon.columns and "position" in require:
        # raw (un-shifted) positions, taken by column so a stray column literally named
        # "position" cannot collide with the mapped one
        check_positions(pd.DataFrame({"position": df[names["position"]].to_numpy()}), schema, names)
    for role in binary:
        check_binary(canon, role, names)
    for cov in schema.covariates:
        s = canon[cov]
        if pd.api.types.is_numeric_dtype(s) and not np.isfinite(s.to_numpy(dtype=float)).all():
            raise InputError(f"covariate '{cov}' has missing or infinite values", column=cov,
                             fix="fill them (e.g. with the median and an indicator column) or drop the covariate")
    return canon


def validate_target_policy(
    policy: pd.DataFrame,
    *,
    row_key: str | None,
    positional: bool,
    log_items: np.ndarray | None = None,
    tol: float = 1e-6,
) -> pd.DataFrame:
    """Check a long-format target policy table and return a clean copy.

    Columns: ``row_key`` (optional: ``request_id`` or ``row``), ``item_id``,
    ``position`` (when ``positional``), ``prob``. Probabilities must be in
    [0, 1], unique per (row, item, position), and sum to 1 (within ``tol``)
    per row and, for positional policies, per (row, position). Items in the
    log that the policy never mentions are an error: their target probability
    would silently be zero.
    """
    check_nonempty(policy, "target policy")
    need = [c for c in (row_key, "item_id", "position" if positional else None, "prob") if c]
    for c in need:
        if c not in policy.columns:
            raise InputError(
                f"the target policy has no column '{c}'; columns present: {list(policy.columns)}",
                column=c,
                fix="a target policy is a long table with columns [request_id|row], item_id, [position], prob",
            )
    pol = policy[need].copy()
    prob = check_numeric(pol, "prob")
    check_finite(prob, "prob")
    if ((prob < 0) | (prob > 1)).any():
        raise InputError("target probabilities must lie in [0, 1]", column="prob",
                         fix="check the policy table: 'prob' is a probability, not a score")
    keys = [c for c in (row_key, "item_id", "position" if positional else None) if c]
    dup = pol.duplicated(keys)
    if dup.any():
        first = pol.loc[dup, keys].iloc[0].to_dict()
        raise InputError(
            f"the target policy has {int(dup.sum())} duplicated ({', '.join(keys)}) rows, e.g. {first}",
            column="prob",
            fix="keep one probability per key (aggregate duplicates by summing or drop them)",
        )
    group = [c for c in (row_key, "position" if positional else None) if c]
    sums = pol.groupby(group, sort=False)["prob"].sum() if group else pd.Series([prob.sum()])
    off = (sums - 1.0).abs() > tol
    if off.any():
        where = sums[off].index[0] if group else "all rows"
        raise InputError(
            f"target probabilities must sum to 1 per {' x '.join(group) or 'policy'}; "
            f"{int(off.sum())} groups do not (e.g. {group or ''} = {where!r}: sum {float(sums[off].iloc[0]):.6g})",
            column="prob",
            fix="normalise the probabilities within each group, or pass the full distribution "
            "(include items with probability 0 if you like)",
        )
    if log_items is not None:
        known = pd.Index(pd.unique(pol["item_id"]))
        missing = pd.Index(pd.unique(log_items)).difference(known)
        if len(missing):
            shown = ", ".join(repr(m) for m in list(missing)[:5])
            raise InputError(
                f"{len(missing)} items in the log are missing from the target policy (e.g. {shown})",
                column="item_id",
                fix="list every logged item in the policy table, with prob 0 where the policy never shows it",
            )
    pol["prob"] = prob
    return pol
