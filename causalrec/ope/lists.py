"""Ranked lists in a long log: slot checks and per-list (segment) operations.

A slate log has one row per (request, slot). Once the rows of a block of *complete*
requests are sorted by (request, position), a request is a contiguous segment and its
slots must be ``0 .. L-1`` (checked: :func:`check_slots`). :class:`Lists` then computes,
for every row, quantities over its list without a Python loop over rows or requests:
cumulative products over the slots above and at ``k`` (the reward-interaction weight),
exclusive prefix sums, per-list totals and pairwise comparisons with the items above.

Requests are grouped by list length and each group is reshaped to a ``(lists, L)``
matrix, so every operation is one numpy call per distinct length (a log with lists of
one length, the usual case, is a single reshape). This is exact (no cumulative sum over
the whole block minus an offset, whose rounding would depend on where a batch starts), so
a streamed log gives the same numbers as one read in memory.

Why hand-written: numpy has no segmented scan, and pandas' ``groupby().cumprod()`` is
several times slower and allocates per group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from causalrec.errors import InputError


class Lists:
    """Segments of a block of rows sorted by (request, position), one segment per request."""

    def __init__(self, lengths: np.ndarray):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.n_lists = int(self.lengths.shape[0])
        self.starts = np.cumsum(self.lengths) - self.lengths
        self.n = int(self.lengths.sum())
        self._slot = self._list_of_row = self._row_length = None
        self._groups: list[tuple[int, np.ndarray]] | None = None
        #: the common length when every list has it (the usual case), else None
        self.single_length: int | None = None
        if self.n_lists and self.lengths.min() == self.lengths.max():
            self.single_length = int(self.lengths[0])

    @property
    def groups(self) -> list[tuple[int, np.ndarray]]:
        """``(L, (lists, L) row indices)`` per distinct length (built on first use)."""
        if self._groups is None:
            self._groups = []
            if self.single_length is not None:
                ell = self.single_length
                self._groups.append((ell, np.arange(self.n, dtype=np.int64).reshape(self.n_lists, ell)))
            elif self.n_lists:
                for ell in np.unique(self.lengths):
                    sel = np.flatnonzero(self.lengths == ell)
                    self._groups.append((int(ell), self.starts[sel][:, None] + np.arange(int(ell))))
        return self._groups

    @property
    def slot(self) -> np.ndarray:
        """0-based slot of each row."""
        if self._slot is None:
            if self.single_length is not None:
                ell = self.single_length
                self._slot = np.tile(np.arange(ell, dtype=np.int64), self.n_lists)
            else:
                self._slot = np.arange(self.n, dtype=np.int64) - np.repeat(self.starts, self.lengths)
        return self._slot

    @property
    def list_of_row(self) -> np.ndarray:
        """Index of each row's list."""
        if self._list_of_row is None:
            self._list_of_row = np.repeat(np.arange(self.n_lists, dtype=np.int64), self.lengths)
        return self._list_of_row

    @property
    def row_length(self) -> np.ndarray:
        """Length of each row's list."""
        if self._row_length is None:
            self._row_length = np.repeat(self.lengths, self.lengths)
        return self._row_length

    @property
    def equal_lengths(self) -> bool:
        return self.n_lists == 0 or self.single_length is not None

    def any_above(self, x: np.ndarray) -> np.ndarray:
        """Whether the row's value already occurs in a slot above it in its list (a repeat).

        Lists without a repeat (found by sorting each list's values, ``O(L log L)``) are all
        ``False``; only the lists with one get the ``L (L-1) / 2`` comparisons that say which
        slot repeats. Logged lists rarely repeat an item, so this is usually one sort."""
        x = np.asarray(x)
        if self.single_length is not None and 1 < self.single_length <= PAIRWISE_MAX and \
                self.n_lists >= self.single_length and x.dtype.kind in "iu":
            return self._any_above_pairwise(x)
        out = np.zeros(self.n, dtype=bool)
        for mat, ix in self._views(x):
            if mat.shape[1] < 2:
                continue
            srt = np.sort(mat, axis=1)
            eq = srt[:, 1:] == srt[:, :-1]
            if not eq.any():
                continue
            rep = np.flatnonzero(eq.any(axis=1))
            sub = mat[rep]
            res = np.zeros(sub.shape, dtype=bool)
            for k in range(1, sub.shape[1]):
                res[:, k] = (sub[:, :k] == sub[:, k:k + 1]).any(axis=1)
            rows = (rep[:, None] * mat.shape[1] + np.arange(mat.shape[1])) if ix is None else ix[rep]
            out[rows] = res
        return out

    def _any_above_pairwise(self, x: np.ndarray) -> np.ndarray:
        """:meth:`any_above` for short lists of one length and integer values: the ``L (L-1) / 2``
        slot comparisons on the slot-major copy (each a contiguous column, in 2 bytes a value when
        the values fit), which for 10 slots costs about half the sort of every list."""
        ell, n_l = self.single_length, self.n_lists
        narrow = x.size and x.min() >= -2**15 and x.max() < 2**15
        mt = np.empty((ell, n_l), dtype=np.int16 if narrow else x.dtype)
        mt[:] = x.reshape(n_l, ell).T
        res = np.zeros((ell, n_l), dtype=bool)
        eq = np.empty(n_l, dtype=bool)
        for k in range(1, ell):
            for j in range(k):
                np.equal(mt[j], mt[k], out=eq)
                np.logical_or(res[k], eq, out=res[k])
        out = np.empty(self.n, dtype=bool)
        out.reshape(n_l, ell)[:] = res.T
        return out

    def _views(self, x: np.ndarray):
        """``(matrix, index)`` per length group; with one length, a reshaped view (no copy)."""
        if self.single_length is not None:
            yield x.reshape(self.n_lists, self.single_length), None
            return
        for _, ix in self.groups:
            yield x[ix], ix

    def _apply(self, x: np.ndarray, fn, out: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if out is None:
            out = np.empty(self.n, dtype=np.float64)
        for mat, ix in self._views(x):
            if ix is None:
                fn(mat, out.reshape(mat.shape))
            else:
                res = np.empty(mat.shape)
                fn(mat, res)
                out[ix] = res
        return out

    def cumprod(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``prod_{j <= k} x_j`` within each list (into ``out``, which may be ``x`` itself: a scan
        reads each slot before it writes it)."""
        def fn(m, o):
            if _by_column(m):
                o[:, 0] = m[:, 0]
                for k in range(1, m.shape[1]):
                    np.multiply(o[:, k - 1], m[:, k], out=o[:, k])
            else:
                np.cumprod(m, axis=1, out=o)
        return self._apply(x, fn, out)

    def cumsum(self, x: np.ndarray, exclusive: bool = False) -> np.ndarray:
        """``sum_{j <= k} x_j`` (or ``j < k`` with ``exclusive``) within each list."""
        def fn(m, o):
            if exclusive:  # a sum of the slots strictly above: shift by one, no subtraction
                o[:, 0] = 0.0
                if _by_column(m):
                    if m.shape[1] > 1:
                        o[:, 1] = m[:, 0]
                    for k in range(2, m.shape[1]):
                        np.add(o[:, k - 1], m[:, k - 1], out=o[:, k])
                else:
                    np.cumsum(m[:, :-1], axis=1, out=o[:, 1:])
            elif _by_column(m):
                o[:, 0] = m[:, 0]
                for k in range(1, m.shape[1]):
                    np.add(o[:, k - 1], m[:, k], out=o[:, k])
            else:
                np.cumsum(m, axis=1, out=o)
        return self._apply(x, fn)

    def revcumsum(self, x: np.ndarray) -> np.ndarray:
        """``sum_{j >= k} x_j`` within each list (the reward to go)."""
        def fn(m, o):
            ell = m.shape[1]
            if _by_column(m):
                o[:, ell - 1] = m[:, ell - 1]
                for k in range(ell - 2, -1, -1):
                    np.add(o[:, k + 1], m[:, k], out=o[:, k])
            else:
                np.cumsum(m[:, ::-1], axis=1, out=o[:, ::-1])  # into the reversed view: no copy
        return self._apply(x, fn)

    def previous(self, x: np.ndarray, first: float) -> np.ndarray:
        """``x_{k-1}`` within each list, ``first`` at the top slot."""
        out = np.empty(self.n, dtype=np.float64)
        out[1:] = x[:-1]
        out[self.starts] = first
        return out

    def total(self, x: np.ndarray) -> np.ndarray:
        """Per-list sum, one value per list."""
        if self.single_length is not None and self.n:
            return np.asarray(x, dtype=np.float64).reshape(self.n_lists, -1).sum(axis=1)
        return np.add.reduceat(x, self.starts) if self.n else np.zeros(0)

    def broadcast(self, per_list: np.ndarray) -> np.ndarray:
        """A per-list value repeated on every row of its list."""
        return np.repeat(per_list, self.lengths)

    def last(self, x: np.ndarray) -> np.ndarray:
        """The value at each list's bottom slot, repeated on every row of the list."""
        return self.broadcast(x[self.starts + self.lengths - 1])

    def pairwise_above(self, x: np.ndarray, op) -> np.ndarray:
        """Count, per row ``k``, the slots ``j < k`` of its list where ``op(x_j, x_k)`` holds.

        One comparison of the ``k`` slots above with slot ``k`` per slot (``L (L-1) / 2``
        comparisons per list), vectorised over the lists of each length.
        """
        out = np.zeros(self.n, dtype=np.int64)
        for mat, ix in self._views(np.asarray(x)):
            res = np.zeros(mat.shape, dtype=np.int64)
            for k in range(1, mat.shape[1]):
                res[:, k] = np.count_nonzero(op(mat[:, :k], mat[:, k:k + 1]), axis=1)
            if ix is None:
                out = res.reshape(-1)
            else:
                out[ix] = res
        return out


#: lists at most this long are scanned slot by slot (one vectorised operation per slot)
COLUMN_SCAN_MAX = 32
#: lists at most this long look for repeated items by comparing every pair of slots
PAIRWISE_MAX = 16


def _by_column(m: np.ndarray) -> bool:
    """Whether a ``(lists, L)`` scan runs slot by slot: numpy's accumulate along a short last axis
    makes one inner-loop call per list (about twice the time of ``L`` whole-column operations for
    10 slots); the slot-by-slot scan performs the same additions or multiplications in the same
    order, so the numbers are identical. Long lists (few, wide rows) keep numpy's scan."""
    return 1 < m.shape[1] <= COLUMN_SCAN_MAX and m.shape[0] >= m.shape[1]


def show_key(value) -> str:
    """A request key as the user wrote it (``7``, ``'r7'``), not numpy's ``np.int64(7)``."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def check_slots(request_keys: np.ndarray, list_index: np.ndarray | None, pos: np.ndarray, lists: Lists,
                position_base: int, position_col: str = "position", request_col: str = "request_id") -> None:
    """Raise an :class:`InputError` unless each request's slots are exactly ``0..L-1``.

    ``pos`` are the 0-based positions of rows sorted by (request, position); ``list_index``
    the list each row belongs to and ``request_keys`` the request of each list.
    """
    if lists.single_length is not None:  # one length: compare with 0..L-1 broadcast (no per-row slot array)
        bad = (pos.reshape(lists.n_lists, lists.single_length) != np.arange(lists.single_length)).reshape(-1)
    else:
        bad = pos != lists.slot
    if not bad.any():
        return
    if list_index is None:
        list_index = lists.list_of_row
    g = int(list_index[np.flatnonzero(bad)[0]])
    lo, ell = int(lists.starts[g]), int(lists.lengths[g])
    got = (pos[lo:lo + ell] + position_base).tolist()
    n_bad = int(np.unique(list_index[bad]).size)
    dup = len(set(got)) < len(got)
    hint = ""
    all_first = pos[lists.starts]
    if position_base == 0 and (all_first == 1).all():
        hint = "; every list starts at 1, so the positions look 1-based: pass --position-base 1"
    what = "repeat a slot" if dup else f"are not {position_base}..{position_base + ell - 1}"
    raise InputError(
        f"request {show_key(request_keys[g])} has slots {got[:12]}{' ...' if ell > 12 else ''}, which {what}; "
        f"{n_bad} request(s) have slots that are not {position_base}..L{'-1' if position_base == 0 else ''} "
        f"(L = the list's length){hint}",
        column=position_col,
        fix=f"give each request one row per slot, numbered from {position_base} without gaps "
        f"(--position-base {1 - position_base} if yours count from {1 - position_base}); check that "
        f"'{request_col}' identifies one list",
    )


def sort_by_list(request: pd.Series | np.ndarray, pos: np.ndarray, contiguous: bool = False,
                 identity_as_none: bool = False) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """``(order, list_codes_sorted, lengths)``: rows sorted by (request in first-seen order, position).

    ``contiguous=True`` promises that each request's rows are already together (a streamed
    file sorted by request, checked by the caller): the lists are then the runs of equal
    keys and no hashing is needed; rows are re-sorted only if a list's slots are out of order.
    ``identity_as_none=True``: when the rows are already in order, ``(None, None, lengths)``
    (the list codes are then :attr:`Lists.list_of_row`).
    """
    keys = np.asarray(request)
    n = keys.shape[0]
    if contiguous:
        change = np.empty(n, dtype=bool)
        change[:1] = True
        change[1:] = keys[1:] != keys[:-1]
        starts = np.flatnonzero(change)
        lengths = np.diff(np.r_[starts, n]).astype(np.int64)
        # slots increase within every list (a change of list may go down): no boolean gathers
        if n < 2 or np.logical_or(pos[1:] > pos[:-1], change[1:]).all():
            if identity_as_none:  # rows already in order: no order array, list codes from the lengths
                return None, None, lengths
            return np.arange(n), np.cumsum(change) - 1, lengths
        codes = np.cumsum(change) - 1
        order = np.lexsort((pos, codes))
        return order, codes[order], lengths
    codes, _ = pd.factorize(keys, sort=False)
    order = np.lexsort((pos, codes))
    sorted_codes = codes[order]
    lengths = np.bincount(sorted_codes) if sorted_codes.size else np.zeros(0, dtype=np.int64)
    return order, sorted_codes, lengths
