"""Sufficient statistics of an experiment: mergeable sums per arm (and segment, stratum, look).

Every A/B estimator in causalrec is a smooth function of arm means, so it needs only,
per group of units (an arm, or an arm within a segment / stratum / look), the count
``n``, the sum of each unit-level variable ``sum_i v_i`` and the sums of products
``sum_i u_i v_i``. Those are what a warehouse ``GROUP BY`` returns, what Spark
partitions add up, and what :class:`SuffStats` holds. Row-level logs are reduced to
the same object first (:meth:`ABStats.from_units`) and the same finishing code
(:mod:`causalrec.experiments.comparisons`) turns either into estimates: one formula,
in one place, for every input.

From the sums, with ``S = sum v``, ``P = sum v v^T`` over ``n`` units::

    mean = S / n,    cov = (P - S S^T / n) / (n - 1)

Merging two groups adds ``n``, ``S`` and ``P`` (exact and associative, so partial
aggregates from any partitioning give the same answer). Raw sums lose digits when
``|mean| >> sd`` (a variance of ``sd^2`` is computed as a difference of numbers of
size ``mean^2``): with float64 the relative error of the variance is about
``1e-16 * (mean / sd)^2``, negligible for counts, revenue and rates; a metric such as
a raw epoch timestamp should be centred before it is summed.

**File format** (``causalrec ab --stats FILE``; written by ``--write-stats``): one row
per variant (and segment, stratum, look: extra key columns), column ``n`` (units),
per variable ``V`` the columns ``V_sum`` and ``V_sum_sq``, and per pair of variables
used together ``A_x_B_sum`` (either order): a metric and its covariate, a ratio's
numerator and denominator, two covariates of one metric. Rows of a look are
cumulative (everything up to that look). The row count per unit of impression logs
is the variable ``n_rows``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from causalrec.errors import InputError

ROWS_FILE_NAME = "n_rows"  # the per-unit row count in a stats file (``_n_rows`` on the unit frame)


@dataclass
class SuffStats:
    """Count, sums and sums of products of unit-level variables over one group of units.

    ``products[i, j]`` is ``sum_units v_i v_j``; entries a stats file does not carry
    are NaN and any statistic that needs one says which column is missing.
    """

    names: tuple[str, ...]
    n: float = 0.0
    sums: np.ndarray = field(default=None)  # type: ignore[assignment]
    products: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        d = len(self.names)
        if self.sums is None:
            self.sums = np.zeros(d)
        if self.products is None:
            self.products = np.zeros((d, d))

    # -- construction -----------------------------------------------------------
    @classmethod
    def of_values(cls, values: np.ndarray, names: Sequence[str]) -> SuffStats:
        """From a ``(n, d)`` array of unit-level values (columns in the order of ``names``)."""
        v = np.asarray(values, dtype=float).reshape(len(values), len(names))
        return cls(tuple(names), float(v.shape[0]), v.sum(axis=0), v.T @ v)

    @classmethod
    def of_arrays(cls, **columns: np.ndarray) -> SuffStats:
        """``SuffStats.of_arrays(y=..., x=...)``: named unit-level arrays of equal length."""
        names = list(columns)
        return cls.of_values(np.column_stack([np.asarray(columns[k], dtype=float) for k in names]), names)

    def merge(self, other: SuffStats) -> SuffStats:
        """The statistics of the union of two disjoint groups (same variables)."""
        if other.names != self.names:
            raise ValueError(f"cannot merge statistics of {other.names} into {self.names}")
        return SuffStats(self.names, self.n + other.n, self.sums + other.sums, self.products + other.products)

    __add__ = merge

    # -- access -----------------------------------------------------------------
    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(f"no statistics for variable '{name}' (have {list(self.names)})", column=name,
                             fix=f"add the columns {name}_sum and {name}_sum_sq to the stats file") from None

    @property
    def means(self) -> np.ndarray:
        return self.sums / self.n if self.n > 0 else np.full(len(self.names), np.nan)

    def centred(self) -> np.ndarray:
        """``sum (v - mean)(v - mean)^T`` (NaN where a product is unknown)."""
        if self.n <= 0:
            return np.full(self.products.shape, np.nan)
        return self.products - np.outer(self.sums, self.sums) / self.n

    def cov(self) -> np.ndarray:
        """Sample covariance matrix (``n - 1`` denominator)."""
        if self.n < 2:
            return np.full(self.products.shape, np.nan)
        return self.centred() / (self.n - 1)

    def quad(self, a: np.ndarray, b: np.ndarray | None = None, centred: np.ndarray | None = None) -> float:
        """``a^T C b`` with ``C`` the centred sums of products (default: this group's); raises naming the
        stats-file column when a product that ``a`` and ``b`` need is unknown."""
        C = self.centred() if centred is None else centred
        b = a if b is None else b
        ia, ib = np.flatnonzero(a), np.flatnonzero(b)
        sub = C[np.ix_(ia, ib)]
        if np.isnan(sub).any():
            r, c = np.argwhere(np.isnan(sub))[0]
            i, j = sorted((int(ia[r]), int(ib[c])))  # metric variables come before their covariates
            col, other = pair_column(self.names[i], self.names[j]), pair_column(self.names[j], self.names[i])
            raise InputError(f"the statistics lack the sum of products of '{_file(self.names[i])}' and "
                             f"'{_file(self.names[j])}' (column {col}, or {other})", column=col,
                             fix="add that column to the stats file (the sum over units of the product)")
        return float(a[ia] @ sub @ b[ib])

    def is_binary(self, name: str) -> bool:
        """True when the variable's sum of squares equals its sum and 0 <= sum <= n: a 0/1 metric.

        For values in [0, 1] or integers this is exact (``v^2 = v`` only for 0 and 1), and it is
        the rule used for row-level input too, so both give the same test.
        """
        i = self.index(name)
        s, ss = self.sums[i], self.products[i, i]
        return bool(np.isfinite(ss) and ss == s and 0 <= s <= self.n)


def pair_column(a: str, b: str) -> str:
    return f"{_file(a)}_sum_sq" if a == b else f"{_file(a)}_x_{_file(b)}_sum"


def _file(name: str) -> str:
    return ROWS_FILE_NAME if name == "_n_rows" else name


def _internal(name: str) -> str:
    return "_n_rows" if name == ROWS_FILE_NAME else name


@dataclass
class ABStats:
    """Sufficient statistics of an experiment: one :class:`SuffStats` per key.

    ``keys`` is a DataFrame with one row per group and the key columns (``variant``
    first, then any of segment, stratum and ``look``); ``groups[i]`` belongs to row ``i``.
    Mergeable: :meth:`merge` adds the groups of two partial aggregates key by key.
    """

    keys: pd.DataFrame
    groups: list[SuffStats]
    variant: str = "variant"
    look: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return self.groups[0].names if self.groups else ()

    @property
    def key_columns(self) -> list[str]:
        return list(self.keys.columns)

    # -- construction -----------------------------------------------------------
    @classmethod
    def from_units(cls, frame: pd.DataFrame, *, variant: str, names: Sequence[str], by: Sequence[str] = (),
                   look: str | None = None, look_value=None) -> ABStats:
        """Reduce a unit frame (one row per unit) to sums per variant and ``by`` columns."""
        key_cols = [variant, *by]
        values = frame[list(names)].to_numpy(dtype=float)
        codes, uniques = pd.MultiIndex.from_frame(frame[key_cols].astype(str)).factorize(sort=True) \
            if len(key_cols) > 1 else pd.factorize(frame[variant].astype(str), sort=True)
        order = np.argsort(codes, kind="stable")  # one pass: each group is a slice of the sorted rows
        edges = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        groups = [SuffStats.of_values(values[order[edges[g]:edges[g + 1]]], names) for g in range(len(uniques))]
        if len(key_cols) > 1:
            keys = pd.DataFrame(list(uniques), columns=key_cols)
        else:
            keys = pd.DataFrame({variant: list(uniques)})
        if look is not None:
            keys[look] = look_value
        return cls(keys, groups, variant=variant, look=look)

    @classmethod
    def concat(cls, parts: Iterable[ABStats]) -> ABStats:
        parts = [p for p in parts if p.groups]
        if not parts:
            raise ValueError("no statistics to concatenate")
        keys = pd.concat([p.keys for p in parts], ignore_index=True)
        return cls(keys, [g for p in parts for g in p.groups], variant=parts[0].variant, look=parts[0].look)

    def merge(self, other: ABStats) -> ABStats:
        """Add two partial aggregates (e.g. from two partitions), key by key."""
        if self.key_columns != other.key_columns:
            raise ValueError(f"key columns differ: {self.key_columns} vs {other.key_columns}")
        index: dict[tuple, int] = {}
        keys, groups = [], []
        for part in (self, other):
            for row, g in zip(part.keys.itertuples(index=False, name=None), part.groups, strict=True):
                if row in index:
                    groups[index[row]] = groups[index[row]].merge(g)
                else:
                    index[row] = len(groups)
                    keys.append(row)
                    groups.append(g)
        return ABStats(pd.DataFrame(keys, columns=self.key_columns), groups, variant=self.variant, look=self.look)

    # -- selection --------------------------------------------------------------
    def select(self, **where) -> ABStats:
        mask = np.ones(len(self.keys), dtype=bool)
        for col, val in where.items():
            mask &= self.keys[col].to_numpy() == val
        idx = np.flatnonzero(mask)
        return ABStats(self.keys.iloc[idx].reset_index(drop=True), [self.groups[i] for i in idx],
                       variant=self.variant, look=self.look)

    def total(self, by: Sequence[str] = ()) -> dict[tuple, SuffStats]:
        """Statistics summed over every key column not in ``by`` (always by variant): ``{key: SuffStats}``."""
        cols = [self.variant, *[c for c in by if c != self.variant]]
        out: dict[tuple, SuffStats] = {}
        for row, g in zip(self.keys[cols].itertuples(index=False, name=None), self.groups, strict=True):
            out[row] = out[row].merge(g) if row in out else g
        return out

    def arms(self) -> dict[str, SuffStats]:
        return {k[0]: v for k, v in self.total().items()}

    def looks(self) -> list:
        if self.look is None:
            return [None]
        return sorted(pd.unique(self.keys[self.look]).tolist())

    def at_look(self, value) -> ABStats:
        return self if self.look is None else self.select(**{self.look: value})

    # -- the file format --------------------------------------------------------
    def to_table(self, pairs: Iterable[tuple[str, str]] = ()) -> pd.DataFrame:
        """One row per key: ``n``, ``V_sum``, ``V_sum_sq`` per variable and ``A_x_B_sum`` per pair."""
        out = self.keys.copy()
        out["n"] = [g.n for g in self.groups]
        names = self.names
        for i, v in enumerate(names):
            out[f"{_file(v)}_sum"] = [g.sums[i] for g in self.groups]
            out[f"{_file(v)}_sum_sq"] = [g.products[i, i] for g in self.groups]
        seen = set()
        for a, b in pairs:
            if a == b or (a, b) in seen or (b, a) in seen:
                continue
            seen.add((a, b))
            i, j = names.index(a), names.index(b)
            out[pair_column(a, b)] = [g.products[i, j] for g in self.groups]
        return out

    @classmethod
    def from_table(cls, table: pd.DataFrame, *, variant: str, names: Sequence[str], keys: Sequence[str] = (),
                   look: str | None = None, source: str = "stats file") -> ABStats:
        """Parse and check a stats table (see the module docstring); ``names`` are the variables needed."""
        for col in [variant, "n", *keys, *([look] if look else [])]:
            if col not in table.columns:
                raise InputError(f"the {source} has no column '{col}' (columns: {list(table.columns)[:15]})",
                                 column=col, fix="name the key columns with --variant/--segment/--stratify, and "
                                 "give each row its unit count in a column 'n'")
        if table.empty:
            raise InputError(f"the {source} has no rows", column="n", fix="check the file")
        n = pd.to_numeric(table["n"], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(n)) or np.any(n < 0):
            bad = int(np.flatnonzero(~np.isfinite(n) | (n < 0))[0])
            raise InputError(f"unit counts must be non-negative numbers; row {bad + 1} has n = {table['n'].iloc[bad]!r}",
                             column="n", fix="check the query that produced the counts")
        names = list(dict.fromkeys(names))
        d = len(names)
        sums = np.zeros((len(table), d))
        prods = np.full((len(table), d, d), np.nan)
        for i, v in enumerate(names):
            fv = _file(v)
            for col in (f"{fv}_sum", f"{fv}_sum_sq"):
                if col not in table.columns:
                    raise InputError(f"the {source} has no column '{col}' (needed for '{fv}')", column=col,
                                     fix=f"add {fv}_sum and {fv}_sum_sq (sum over units of {fv} and of its square)")
            sums[:, i] = _numeric(table, f"{fv}_sum")
            ss = _numeric(table, f"{fv}_sum_sq")
            with np.errstate(divide="ignore", invalid="ignore"):
                floor = np.where(n > 0, sums[:, i] ** 2 / n, 0.0)
            tol = 1e-9 * np.maximum(np.abs(ss), np.abs(floor)) + 1e-12
            if np.any(ss < floor - tol):
                bad = int(np.flatnonzero(ss < floor - tol)[0])
                raise InputError(f"row {bad + 1}: the sum of squares ({ss[bad]:.6g}) is below sum^2 / n "
                                 f"({floor[bad]:.6g}), which no data can produce (negative variance)",
                                 column=f"{fv}_sum_sq", fix="check that the column holds sum(x*x) over units, not "
                                 "a variance or a sum of a different variable")
            prods[:, i, i] = ss
        for i, a in enumerate(names):
            for j in range(i + 1, d):
                b = names[j]
                for col in (pair_column(a, b), pair_column(b, a)):
                    if col in table.columns:
                        prods[:, i, j] = prods[:, j, i] = _numeric(table, col)
                        break
        key_cols = [variant, *keys, *([look] if look else [])]
        kt = table[key_cols].copy()
        kt[variant] = kt[variant].astype(str)
        for c in keys:
            kt[c] = kt[c].astype("string").fillna("<missing>").astype(str)
        dup = kt.duplicated()
        if dup.any():
            row = kt[dup].iloc[0].to_dict()
            raise InputError(f"the {source} has two rows for {row}", column=variant,
                             fix="give one row per variant (and segment / stratum / look), or aggregate them")
        groups = [SuffStats(tuple(names), float(n[r]), sums[r], prods[r]) for r in range(len(table))]
        out = cls(kt.reset_index(drop=True), groups, variant=variant, look=look)
        if look:
            out._check_looks(source)
        return out

    def _check_looks(self, source: str) -> None:
        """Every variant at every look; cumulative counts never fall from one look to the next."""
        looks = self.looks()
        variants = sorted(pd.unique(self.keys[self.variant]).tolist())
        counts = {}
        for lk in looks:
            arms = self.at_look(lk).arms()
            missing = [v for v in variants if v not in arms]
            if missing:
                raise InputError(f"variant {missing[0]!r} is missing from look {lk!r} of the {source}",
                                 column=self.variant, fix="give every variant a row at every look (n = 0 is not "
                                 "a valid look: start the looks once every arm has units)")
            counts[lk] = {v: arms[v].n for v in variants}
        for prev, cur in zip(looks, looks[1:], strict=False):
            down = [v for v in variants if counts[cur][v] < counts[prev][v]]
            if down:
                raise InputError(f"looks are out of order: variant {down[0]!r} has {counts[prev][down[0]]:g} units at "
                                 f"look {prev!r} but {counts[cur][down[0]]:g} at the later look {cur!r}",
                                 column=self.look, fix="rows of a look must be cumulative (all data up to that "
                                 "look) and the look labels must sort in time order")


def _numeric(table: pd.DataFrame, col: str) -> np.ndarray:
    v = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(v)):
        bad = int(np.flatnonzero(~np.isfinite(v))[0])
        raise InputError(f"row {bad + 1} of column '{col}' is not a finite number ({table[col].iloc[bad]!r})",
                         column=col, fix="fill the statistics of every row")
    return v


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a stats table atomically: Parquet for ``.parquet``, else CSV with round-trip float precision."""
    from pathlib import Path

    from causalrec.data.atomic import atomic_write_text, atomic_write_with

    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        atomic_write_with(path, lambda tmp: table.to_parquet(tmp, index=False))
    else:
        atomic_write_text(path, table.to_csv(index=False, float_format="%.17g"))
