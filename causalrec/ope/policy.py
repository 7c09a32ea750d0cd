"""Target policies: what the policy under evaluation would do on each logged row.

A target policy gives ``pi_e(a | x_i, k)``: the probability of item ``a`` in
position ``k`` for row ``i`` (for each position, a distribution over items, as in
the Open Bandit protocol). It comes in three forms:

- a long **context-free** table ``item_id, [position], prob``: the same distribution
  for every row (``position`` optional: without it, the same for every position);
- a long **keyed** table ``request_id|row, item_id, [position], prob``: one distribution
  per request (all its impressions) or per log row (``row`` = 0-based row number);
- a **callable** ``f(batch) -> probs`` receiving a canonical batch of the log and
  returning either an array with the probability of each row's logged item (enough for
  IPS/SNIPS) or a long table ``row, item_id, [position], prob`` with ``row`` relative
  to the batch (needed for DM/DR, which average the outcome model over the target).

``bind(batch, ...)`` turns a policy into a :class:`BoundTarget` for one batch: the
logged item's probability per row and, on demand, the (row, item, position, prob)
pairs the outcome-model term sums over. Everything is vectorised: keys are turned into
integer codes and looked up with ``searchsorted``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalrec.data.readers import read_table
from causalrec.data.schema import LogSchema
from causalrec.data.validation import validate_target_policy
from causalrec.errors import InputError
from causalrec.ope.lists import show_key

ROW_KEYS = ("request_id", "row")


class ItemVocab:
    """Item values <-> integer codes 0..n-1 (fixed, or growing for callable targets)."""

    def __init__(self, values=None, growable: bool = False):
        self.index = pd.Index(values if values is not None else [])
        self.growable = growable
        self._lut: np.ndarray | None = None
        self._refresh()

    def __len__(self) -> int:
        return len(self.index)

    def _refresh(self) -> None:
        # Integer item ids with a compact range get an O(1) lookup table instead of hashing.
        self._lut = None
        idx = self.index
        if len(idx) and pd.api.types.is_integer_dtype(idx.dtype):
            lo, hi = int(idx.min()), int(idx.max())
            if lo >= 0 and hi < max(10 * len(idx), 1_000_000):
                lut = np.full(hi + 1, -1, dtype=np.int64)
                lut[idx.to_numpy(dtype=np.int64)] = np.arange(len(idx))
                self._lut = lut

    def encode(self, values) -> np.ndarray:
        """Codes of ``values``; -1 where unknown (after growing, if allowed)."""
        codes = self._lookup(values)
        if self.growable and (codes < 0).any():
            arr = np.asarray(values)
            new = pd.unique(arr[codes < 0])
            self.index = self.index.append(pd.Index(new)) if len(self.index) else pd.Index(new)
            self._refresh()
            codes = self._lookup(values)
        return codes

    def _lookup(self, values) -> np.ndarray:
        if len(self.index) == 0:
            return np.full(len(values), -1, dtype=np.int64)
        if self._lut is not None:
            v = np.asarray(values)
            if np.issubdtype(v.dtype, np.integer) and v.size:
                lo, hi = int(v.min()), int(v.max())
                if lo >= 0 and hi < self._lut.shape[0]:  # all in range: one gather
                    return np.take(self._lut, v)
                v = v.astype(np.int64)
                ok = (v >= 0) & (v < self._lut.shape[0])
                out = np.full(v.shape[0], -1, dtype=np.int64)
                out[ok] = self._lut[v[ok]]
                return out
        return np.asarray(self.index.get_indexer(pd.Index(values)), dtype=np.int64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.index.to_numpy()[codes]


@dataclass
class Pairs:
    """Where the target puts mass, for some rows: ``prob`` of ``item`` at ``pos`` for ``row``."""

    row: np.ndarray
    item: np.ndarray
    pos: np.ndarray
    prob: np.ndarray


class BoundTarget:
    """A target policy evaluated on one batch of rows."""

    def __init__(self, logged: np.ndarray, pairs_fn: Callable[[np.ndarray], Pairs] | None,
                 matrix: np.ndarray | None = None):
        self.logged = logged  # pi_e(a_i | x_i, k_i) per row
        self._pairs_fn = pairs_fn
        self.matrix = matrix  # (n_items, n_pos) for context-free targets, else None

    def pairs(self, rows: np.ndarray) -> Pairs:
        """Target mass for the given rows (indices into the batch)."""
        if self._pairs_fn is None:
            raise InputError(
                "the target callable returned only the logged items' probabilities; DM/DR "
                "need the full target distribution",
                column="target",
                fix="return a long table (row, item_id, [position], prob) from the callable, "
                "or use only ips/snips",
            )
        return self._pairs_fn(rows)


def _missing_items_error(values: np.ndarray, where: str) -> InputError:
    shown = ", ".join(show_key(v) for v in list(pd.unique(values))[:5])
    return InputError(
        f"{len(pd.unique(values))} items in the log are missing from the target policy (e.g. {shown}){where}",
        column="item_id",
        fix="list every logged item in the policy table, with prob 0 where the policy never shows it",
    )


def _positions_or_zero(batch: pd.DataFrame) -> np.ndarray:
    if "position" in batch.columns:
        return batch["position"].to_numpy(dtype=np.int64)
    return np.zeros(len(batch), dtype=np.int64)


class TablePolicy:
    """A long policy table, context-free or keyed by ``request_id`` / ``row``."""

    kind = "table"

    def __init__(self, table: pd.DataFrame, *, schema: LogSchema, log_items=None, source: str = "table"):
        table = _canonical_policy_columns(table, schema)
        self.row_key = next((k for k in ROW_KEYS if k in table.columns), None)
        self.positional = "position" in table.columns
        self.source = source
        pol = validate_target_policy(table, row_key=self.row_key, positional=self.positional, log_items=log_items)
        self._validated = pol
        if self.positional:
            pos = pol["position"].to_numpy()
            if not np.all(np.isfinite(pos.astype(float))) or np.any(pos != np.round(pos)):
                raise InputError("target policy positions must be whole numbers", column="position",
                                 fix="store the slot index as an integer")
            pos = pos.astype(np.int64) - schema.position_base
            if (pos < 0).any():
                raise InputError(
                    f"target policy has positions below the declared base {schema.position_base}",
                    column="position", fix="declare the right base (--position-base 0 or 1)")
        else:
            pos = np.zeros(len(pol), dtype=np.int64)
        self.vocab = ItemVocab(pd.unique(pol["item_id"]))
        item = self.vocab.encode(pol["item_id"].to_numpy())
        prob = pol["prob"].to_numpy(dtype=np.float64)
        self.n_pos = int(pos.max()) + 1
        if self.row_key is None:
            self.kind = "context_free"
            mat = np.zeros((len(self.vocab), self.n_pos))
            mat[item, pos] = prob
            self.matrix = mat
        else:
            self.kind = f"keyed_by_{self.row_key}"
            if self.row_key == "row":
                keyv = pol["row"].to_numpy()
                if not np.issubdtype(keyv.dtype, np.integer):
                    keyf = keyv.astype(float)
                    if np.any(keyf != np.round(keyf)):
                        raise InputError("the target policy's 'row' column must hold whole row numbers",
                                         column="row", fix="use 0-based integer row numbers of the log")
                keycode = keyv.astype(np.int64)
                if (keycode < 0).any():
                    raise InputError("the target policy's 'row' column has negative row numbers",
                                     column="row", fix="use 0-based row numbers of the log")
                self.keys = None
            else:
                self.keys = pd.Index(pd.unique(pol["request_id"]))
                keycode = self.keys.get_indexer(pol["request_id"])
            group = keycode * self.n_pos + pos if self.positional else keycode
            order = np.argsort(group, kind="stable")
            self.g_sorted = group[order]
            self.item_sorted = item[order]
            self.pos_sorted = pos[order]
            self.prob_sorted = prob[order]
            self.g_unique, self.g_start, self.g_count = np.unique(self.g_sorted, return_index=True, return_counts=True)
            # combined (group, item) key for the logged-item lookup
            self.n_items = len(self.vocab)
            full = self.g_sorted * self.n_items + self.item_sorted
            o2 = np.argsort(full, kind="stable")
            self.full_sorted = full[o2]
            self.full_prob = self.prob_sorted[o2]

    def describe(self) -> dict:
        return {"kind": self.kind, "positional": self.positional, "n_items": len(self.vocab),
                "n_positions": self.n_pos if self.positional else None, "source": self.source}

    def needs_request_id(self) -> bool:
        return self.row_key == "request_id"

    def bind(self, batch: pd.DataFrame, items: np.ndarray, pos: np.ndarray, row_offset: int) -> BoundTarget:
        if (items < 0).any():
            missing = batch["item_id"].to_numpy()[items < 0]
            # the boundary check words the error (items in the log missing from the policy)
            validate_target_policy(self._validated, row_key=self.row_key, positional=self.positional,
                                   log_items=pd.unique(missing))
            raise _missing_items_error(missing, f" (rows from {row_offset} on)")
        tpos = pos if self.positional else np.zeros_like(pos)
        if self.positional and (pos >= self.n_pos).any():
            bad = int(pos[pos >= self.n_pos][0])
            raise InputError(
                f"the log has position {bad} (0-based) but the target policy only covers positions "
                f"0..{self.n_pos - 1}",
                column="position", fix="give the target's distribution for every logged position, "
                "or check --position-base")
        if self.row_key is None:
            logged = np.take(self.matrix.reshape(-1), items * self.matrix.shape[1] + tpos)
            mat = self.matrix

            def pairs(rows: np.ndarray) -> Pairs:
                return _context_free_pairs(mat, rows, tpos, pos)

            return BoundTarget(logged, pairs, mat)
        keycode = self._key_codes(batch, row_offset)
        group = keycode * self.n_pos + tpos if self.positional else keycode
        gi = np.searchsorted(self.g_unique, group)
        gi_c = np.minimum(gi, len(self.g_unique) - 1)
        found = self.g_unique[gi_c] == group
        if not found.all():
            i = int(np.flatnonzero(~found)[0])
            what = f"request {show_key(batch['request_id'].iloc[i])}" if self.row_key == "request_id" else f"row {row_offset + i}"
            posmsg = f" at position {int(pos[i])}" if self.positional else ""
            raise InputError(
                f"the target policy has no probabilities for {what}{posmsg} "
                f"({int((~found).sum())} rows in this batch lack them)",
                column=self.row_key,
                fix="give the target's distribution for every logged row (and position)",
            )
        full = group * self.n_items + items
        j = np.searchsorted(self.full_sorted, full)
        j_c = np.minimum(j, len(self.full_sorted) - 1)
        hit = self.full_sorted[j_c] == full
        logged = np.where(hit, self.full_prob[j_c], 0.0)
        start, count = self.g_start[gi_c], self.g_count[gi_c]

        def pairs(rows: np.ndarray) -> Pairs:
            cnt = count[rows]
            r = np.repeat(rows, cnt)
            offs = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            e = np.repeat(start[rows], cnt) + offs
            return Pairs(r, self.item_sorted[e], pos[r], self.prob_sorted[e])

        return BoundTarget(logged, pairs, None)

    def _key_codes(self, batch: pd.DataFrame, row_offset: int) -> np.ndarray:
        if self.row_key == "row":
            return np.arange(row_offset, row_offset + len(batch), dtype=np.int64)
        if "request_id" not in batch.columns:
            raise InputError("the target policy is keyed by request_id but the log has no request_id column",
                             column="request_id", fix="name the log's request column with --request COL")
        return np.asarray(self.keys.get_indexer(batch["request_id"]), dtype=np.int64)


def _context_free_pairs(mat: np.ndarray, rows: np.ndarray, tpos: np.ndarray, pos: np.ndarray) -> Pairs:
    """All (row, item) with positive target mass; one vectorised expansion per target column.

    ``tpos``/``pos`` are the batch's target column and logged position per row; a pair
    carries its row's logged position (the target fills that slot).
    """
    parts = []
    for k in np.unique(tpos[rows]):
        sel = rows[tpos[rows] == k]
        support = np.flatnonzero(mat[:, k] > 0)
        parts.append((np.repeat(sel, support.size), np.tile(support, sel.size),
                      np.tile(mat[support, k], sel.size)))
    if not parts:
        e = np.zeros(0, dtype=np.int64)
        return Pairs(e, e, e, np.zeros(0))
    r = np.concatenate([p[0] for p in parts])
    return Pairs(r, np.concatenate([p[1] for p in parts]), pos[r], np.concatenate([p[2] for p in parts]))


class CallablePolicy:
    """``f(batch) -> probs``; see the module docstring for the two return forms."""

    kind = "callable"
    positional = False
    row_key = None

    def __init__(self, fn: Callable, *, schema: LogSchema):
        self.fn = fn
        self.schema = schema
        self.vocab = ItemVocab(growable=True)

    def describe(self) -> dict:
        return {"kind": "callable", "name": getattr(self.fn, "__name__", type(self.fn).__name__)}

    def needs_request_id(self) -> bool:
        return False

    def bind(self, batch: pd.DataFrame, items: np.ndarray, pos: np.ndarray, row_offset: int) -> BoundTarget:
        out = self.fn(batch)
        if isinstance(out, pd.DataFrame):
            if "row" not in out.columns:
                raise InputError("the target callable's table needs a 'row' column (0-based within the batch)",
                                 column="row", fix="return columns row, item_id, [position], prob")
            table = TablePolicy(out, schema=self.schema, log_items=batch["item_id"].to_numpy(),
                                source="callable")
            # re-code the table's items in this policy's (growing) vocabulary
            sub_items = table.vocab.encode(batch["item_id"].to_numpy())
            bound = table.bind(batch, sub_items, pos, 0)
            remap = self.vocab.encode(table.vocab.index.to_numpy())

            def pairs(rows: np.ndarray) -> Pairs:
                p = bound.pairs(rows)
                return Pairs(p.row, remap[p.item], p.pos, p.prob)

            return BoundTarget(bound.logged, pairs, None)
        arr = np.asarray(out, dtype=np.float64).reshape(-1)
        if arr.shape[0] != len(batch):
            raise InputError(
                f"the target callable returned {arr.shape[0]} probabilities for {len(batch)} rows",
                column="target", fix="return one probability per row (of the logged item), or a long table")
        if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
            raise InputError("the target callable returned probabilities outside [0, 1] (or NaN)",
                             column="target", fix="return probabilities, not scores")
        return BoundTarget(arr, None, None)


def _canonical_policy_columns(table: pd.DataFrame, schema: LogSchema) -> pd.DataFrame:
    """Accept the log's own column names (per the schema) as well as the canonical ones."""
    ren = {}
    for role in ("item_id", "position", "request_id"):
        col = getattr(schema, role)
        if col and col in table.columns and role not in table.columns and col != role:
            ren[col] = role
    return table.rename(columns=ren) if ren else table


def resolve_target(target, *, schema: LogSchema, log_items=None):
    """A policy object from a DataFrame, a CSV/Parquet path or a callable."""
    if isinstance(target, (TablePolicy, CallablePolicy)) or hasattr(target, "embedding_weights"):
        return target  # already resolved (a catalogue wrapper, causalrec.ope.catalogue, included)
    if callable(target) and not isinstance(target, pd.DataFrame):
        return CallablePolicy(target, schema=schema)
    if isinstance(target, (str, os.PathLike)):
        return TablePolicy(read_table(target), schema=schema, log_items=log_items, source=str(target))
    if isinstance(target, pd.DataFrame):
        return TablePolicy(target, schema=schema, log_items=log_items)
    raise InputError(f"cannot use a {type(target).__name__} as a target policy", column="target",
                     fix="pass a policy table (DataFrame or CSV/Parquet path) or a callable")
