"""Target policies over ranked lists (slates), bound to blocks of logged lists.

The slate estimators need, for every logged row (request ``r``, slot ``k``, item ``a_k``),
the target's probability of ``a_k`` at slot ``k`` **given the logged items above it**,
``pi_e(a_k | x, a_1 .. a_{k-1})`` (its products give the whole-list and cascade weights),
sometimes its **marginal** ``pi_e(a_k at k | x)``, and for Cascade-DR the whole conditional
distribution at each slot. A target comes in one of two forms:

- :class:`SlateTableTarget`: a long table ``request_id, position, item_id, prob
  [, prob_marginal]`` where ``prob`` is the conditional given the logged items above (the
  same meaning as the log's ``propensity``) and ``prob_marginal`` the optional marginal. A
  deterministic target (one item with ``prob`` 1 per request and position) needs no
  ``prob_marginal``: its marginal is the same table. Sparse: only non-zero rows.
- :class:`ScoreTarget`: scores ``[request_id], item_id, score`` (without ``request_id`` the
  same scores apply to every request) turned into a ranking policy:
  ``plackett-luce`` (slot by slot, item ``a`` with probability proportional to
  ``exp(score_a / T)`` among the items not yet placed; :mod:`causalrec.ope.plackett_luce`)
  or ``topk`` (the items in decreasing score, ties broken uniformly at random: the limit
  ``T -> 0`` of Plackett-Luce). Conditionals are exact for both. Marginals are exact for
  ``topk`` and, for Plackett-Luce, exact by enumeration for short lists over few
  candidates and otherwise a seeded, Rao-Blackwellised Monte Carlo estimate whose error is
  carried into the result. The target fills as many slots as the logged list has.

``bind(block)`` returns a :class:`BoundSlateTarget` for one block of complete lists.
Everything is vectorised over rows: keys become integer codes, looked up with
``searchsorted``; the few per-list quantities use :class:`causalrec.ope.lists.Lists`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalrec.data.readers import read_table
from causalrec.data.schema import LogSchema
from causalrec.data.validation import check_finite, check_numeric, validate_target_policy
from causalrec.errors import InputError
from causalrec.ope import plackett_luce as pl
from causalrec.ope.lists import Lists, show_key
from causalrec.ope.policy import ItemVocab, Pairs, _canonical_policy_columns

TARGET_KINDS = ("plackett-luce", "topk")


def target_kind_name(kind: str) -> str:
    """The canonical name of a score-table target kind (``pl`` -> ``plackett-luce``), or a clear error."""
    name = str(kind).strip().lower().replace("_", "-")
    if name in ("pl", "plackett", "plackettluce"):
        name = "plackett-luce"
    if name not in TARGET_KINDS:
        raise InputError(f"unknown target kind '{kind}'", column="--target-kind",
                         fix=f"use one of {', '.join(TARGET_KINDS)}")
    return name
MC_BATCHES = 8
CELL_CHUNK_ROWS = 131_072  # rows per chunk of the closed-form cell terms (temporaries of about 1 MB)
PAIR_LIMIT = 2_000_000_000  # (row, candidate) pairs a Cascade-DR model term may average over


@dataclass
class SlateBlock:
    """A block of complete logged lists, rows sorted by (request, position)."""

    canon: pd.DataFrame
    lists: Lists
    request_keys: np.ndarray  # one per list
    items: np.ndarray  # item code per row

    @property
    def n(self) -> int:
        return self.lists.n

    @property
    def slot(self) -> np.ndarray:
        """0-based slot per row (:attr:`Lists.slot`, built on first use: a Plackett-Luce target's
        conditionals and cell sums never need it)."""
        return self.lists.slot


class BoundSlateTarget:
    """Target probabilities for one block.

    ``cond``: ``pi_e(a_k | a_{<k})`` of each logged item; ``marginal()``: ``(B, n)``
    marginals of the logged items (``B`` Monte Carlo batches, 1 when exact); ``pairs(rows)``:
    the conditional distribution at each given row's slot (row, item, slot, prob);
    ``dm_cells(q, folds)``: the same averaged against a per-(fold, item, slot) table, without
    pairs, where the target allows it (else ``None``).
    """

    def __init__(self, target, block: SlateBlock, cond: np.ndarray, *, marginal_fn=None, pairs_fn=None,
                 cells_fn=None, n_candidates=None):
        self.target = target
        self.block = block
        self.cond = cond
        self._marginal_fn = marginal_fn
        self._pairs_fn = pairs_fn
        self._cells_fn = cells_fn
        self._marginal = None
        self._n_candidates = n_candidates  # candidates per row's slot distribution (for sizing)
        self.cells_state = None  # a Plackett-Luce score target's inputs of dm_cells (see ScoreTarget.pl_cells)

    @property
    def n_candidates(self) -> np.ndarray:
        n = self._n_candidates
        return n() if callable(n) else n

    def marginal(self) -> np.ndarray:
        if self._marginal is None:
            if self._marginal_fn is None:
                raise InputError(
                    "the target table has no 'prob_marginal' column, which iips and pi need (the "
                    "target's marginal probability of each item at each slot)",
                    column="prob_marginal",
                    fix="add prob_marginal to the target table, give target scores with --target-kind, "
                    "or use sips/rips/cascade_dr, which need only the conditional 'prob'")
            self._marginal = np.atleast_2d(self._marginal_fn())
        return self._marginal

    def pairs(self, rows: np.ndarray) -> Pairs:
        return self._pairs_fn(rows)

    def dm_cells(self, q: np.ndarray, fill: np.ndarray, folds: np.ndarray) -> np.ndarray | None:
        return None if self._cells_fn is None else self._cells_fn(q, fill, folds)


def _first_logged_slot(block: SlateBlock, n_items: int):
    """``lookup(list_index, item) -> first slot where the list logged item`` (a large number if never)."""
    key = block.lists.list_of_row * np.int64(max(n_items, 1)) + block.items
    order = np.lexsort((block.slot, key))
    ks, ss = key[order], block.slot[order]
    first = np.r_[True, ks[1:] != ks[:-1]] if ks.size else np.zeros(0, dtype=bool)
    ks, ss = ks[first], ss[first]

    def lookup(list_index: np.ndarray, item: np.ndarray) -> np.ndarray:
        q = list_index * np.int64(max(n_items, 1)) + item
        j = np.searchsorted(ks, q)
        jc = np.minimum(j, max(ks.size - 1, 0))
        hit = (ks[jc] == q) if ks.size else np.zeros(q.shape, dtype=bool)
        return np.where(hit, ss[jc] if ss.size else 0, np.iinfo(np.int64).max)

    return lookup


def _expand(start: np.ndarray, count: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row ``i`` the index range ``start[i] .. start[i] + count[i]``, flattened: (row, index)."""
    cnt = count.astype(np.int64)
    total = int(cnt.sum())
    r = np.repeat(rows, cnt)
    offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    return r, np.repeat(start.astype(np.int64), cnt) + offs


# -- tables of conditional probabilities -----------------------------------------------

class SlateTableTarget:
    """``request_id, position, item_id, prob [, prob_marginal]`` (see the module docstring)."""

    kind = "slate_table"

    def __init__(self, table: pd.DataFrame, *, schema: LogSchema, source: str = "table"):
        table = _canonical_policy_columns(table, schema)
        for c in ("request_id", "position"):
            if c not in table.columns:
                raise InputError(
                    f"a slate target table needs a '{c}' column; columns present: {list(table.columns)}",
                    column=c, fix="give request_id, position, item_id, prob (the target's probability of the item "
                    "at that slot given the logged items above), or target scores with --target-kind")
        self.source = source
        self.has_marginal = "prob_marginal" in table.columns
        pol = validate_target_policy(table, row_key="request_id", positional=True)
        if self.has_marginal:
            marg = validate_target_policy(table.drop(columns=["prob"]).rename(columns={"prob_marginal": "prob"}),
                                          row_key="request_id", positional=True)
            pol["prob_marginal"] = marg["prob"].to_numpy()
        pos = check_numeric(pol, "position")
        check_finite(pos, "position")
        if np.any(pos != np.round(pos)):
            raise InputError("target positions must be whole numbers", column="position",
                             fix="store the slot index as an integer")
        pos = pos.astype(np.int64) - schema.position_base
        if (pos < 0).any():
            raise InputError(f"the target table has positions below the declared base {schema.position_base}",
                             column="position", fix="declare the right base (--position-base 0 or 1)")
        self.vocab = ItemVocab(pd.unique(pol["item_id"]), growable=True)
        self.keys = pd.Index(pd.unique(pol["request_id"]))
        req = self.keys.get_indexer(pol["request_id"]).astype(np.int64)
        item = self.vocab.encode(pol["item_id"].to_numpy())
        self.n_pos = int(pos.max()) + 1
        group = req * self.n_pos + pos
        order = np.lexsort((item, group))
        self.group = group[order]
        self.item = item[order]
        self.prob = pol["prob"].to_numpy(dtype=np.float64)[order]
        self.marg = pol["prob_marginal"].to_numpy(dtype=np.float64)[order] if self.has_marginal else None
        self.g_unique, self.g_start, self.g_count = np.unique(self.group, return_index=True, return_counts=True)
        self.deterministic = bool((self.g_count == 1).all() and np.all(self.prob == 1.0))
        self._n_items_at_build = len(self.vocab)
        self.full = self.group * np.int64(self._n_items_at_build) + self.item  # sorted (item within group)

    def describe(self) -> dict:
        return {"kind": self.kind, "source": self.source, "n_requests": len(self.keys), "n_items": len(self.vocab),
                "n_positions": self.n_pos, "deterministic": self.deterministic,
                "marginal": "prob_marginal column" if self.has_marginal else
                ("same as prob (deterministic target)" if self.deterministic else "not given")}

    def bind(self, block: SlateBlock) -> BoundSlateTarget:
        lists = block.lists
        req = self.keys.get_indexer(pd.Index(block.request_keys)).astype(np.int64)
        if (req < 0).any():
            miss = block.request_keys[req < 0]
            raise InputError(
                f"the target table has no rows for {miss.size} logged request(s), e.g. {show_key(miss[0])}",
                column="request_id", fix="give the target's probabilities for every logged request and slot")
        group = req[lists.list_of_row] * self.n_pos + block.slot
        gi = np.searchsorted(self.g_unique, group)
        gic = np.minimum(gi, self.g_unique.size - 1)
        found = (self.g_unique[gic] == group) & (block.slot < self.n_pos)
        if not found.all():
            i = int(np.flatnonzero(~found)[0])
            raise InputError(
                f"the target table has no probabilities for request {show_key(block.request_keys[lists.list_of_row[i]])} "
                f"at slot {int(block.slot[i])} (0-based); {int((~found).sum())} logged rows lack them",
                column="position", fix="give the target's distribution at every logged slot of every request")
        items = np.where(block.items < self._n_items_at_build, block.items, -1)
        full = group * np.int64(self._n_items_at_build) + items
        j = np.searchsorted(self.full, full)
        jc = np.minimum(j, self.full.size - 1)
        hit = (self.full[jc] == full) & (items >= 0)
        cond = np.where(hit, self.prob[jc], 0.0)
        start, count = self.g_start[gic], self.g_count[gic]

        def marginal():
            if self.marg is not None:
                return np.where(hit, self.marg[jc], 0.0)
            if self.deterministic:
                return cond.copy()
            return None

        def pairs(rows: np.ndarray) -> Pairs:
            r, e = _expand(start[rows], count[rows], rows)
            return Pairs(r, self.item[e], block.slot[r], self.prob[e])

        bound = BoundSlateTarget(self, block, cond, pairs_fn=pairs, n_candidates=count,
                                 marginal_fn=marginal if (self.marg is not None or self.deterministic) else None)
        return bound


# -- scores turned into a ranking policy -------------------------------------------------

class ScoreTarget:
    """Target scores ``[request_id], item_id, score`` and a rule (``plackett-luce`` or ``topk``)."""

    def __init__(self, table: pd.DataFrame, *, schema: LogSchema, kind: str = "plackett-luce",
                 temperature: float = 1.0, mc_samples: int = 1000, seed: int = 0, source: str = "table"):
        kind = target_kind_name(kind)
        if not (np.isfinite(temperature) and temperature > 0):
            raise InputError(f"temperature must be > 0, got {temperature}", column="temperature",
                             fix="e.g. --temperature 1 (larger = closer to uniform; topk is the limit T -> 0)")
        if mc_samples < MC_BATCHES:
            raise InputError(f"mc_samples must be >= {MC_BATCHES}", column="mc_samples", fix="e.g. --mc-samples 1000")
        self.kind, self.temperature, self.mc_samples, self.seed, self.source = kind, float(temperature), \
            int(mc_samples), int(seed), source
        table = _canonical_policy_columns(table, schema)
        for c in ("item_id", "score"):
            if c not in table.columns:
                raise InputError(
                    f"the target score table has no column '{c}'; columns present: {list(table.columns)}",
                    column=c, fix="give [request_id,] item_id, score (higher = ranked higher)")
        if len(table) == 0:
            raise InputError("the target score table is empty", column="score", fix="check the file")
        self.keyed = "request_id" in table.columns
        keys = ["request_id", "item_id"] if self.keyed else ["item_id"]
        tab = table[keys + ["score"]]
        score = check_numeric(tab, "score")
        check_finite(score, "score")
        dup = tab.duplicated(keys)
        if dup.any():
            first = tab.loc[dup, keys].iloc[0].to_dict()
            raise InputError(f"the target score table has {int(dup.sum())} duplicated ({', '.join(keys)}) rows, "
                             f"e.g. {first}", column="score", fix="keep one score per key")
        self.vocab = ItemVocab(pd.unique(tab["item_id"]), growable=True)
        item = self.vocab.encode(tab["item_id"].to_numpy())
        if self.keyed:
            self.keys = pd.Index(pd.unique(tab["request_id"]))
            grp = self.keys.get_indexer(tab["request_id"]).astype(np.int64)
            self._set_keys = pd.util.hash_array(self.keys.to_numpy(), hash_key=f"causalrec{self.seed % 10**7:07d}")
        else:
            self.keys = None
            grp = np.zeros(len(tab), dtype=np.int64)
            self._set_keys = np.array([self.seed], dtype=np.uint64)
        n_sets = int(grp.max()) + 1
        self._n_items_at_build = len(self.vocab)
        order = np.lexsort((item, grp))  # candidates by set, then item code
        self.set_of = grp[order]
        self.item = item[order]
        self.score = score[order].astype(np.float64)
        self.count = np.bincount(self.set_of, minlength=n_sets)
        self.start = np.cumsum(self.count) - self.count
        self.full = self.set_of * np.int64(self._n_items_at_build) + self.item
        top = np.maximum.reduceat(self.score, self.start)
        self.e = np.exp((self.score - np.repeat(top, self.count)) / self.temperature)  # max 1 per set
        self.big_e = np.add.reduceat(self.e, self.start)
        # dense score ranks, for "how many candidates score higher / the same" lookups (topk)
        _, self._rank = np.unique(self.score, return_inverse=True)
        self._n_ranks = int(self._rank.max()) + 1
        rk = self.set_of * np.int64(self._n_ranks + 1) + self._rank
        self._rank_sorted = np.sort(rk)
        # candidates by set in decreasing score, for the topk slot distributions
        self._desc = np.lexsort((self.item, -self.score, self.set_of))

    def describe(self) -> dict:
        return {"kind": self.kind, "temperature": self.temperature if self.kind == "plackett-luce" else None,
                "keyed_by_request": self.keyed, "n_score_sets": int(self.count.size),
                "n_items": len(self.vocab), "candidates_per_set_max": int(self.count.max()),
                "source": self.source}

    # -- lookups -----------------------------------------------------------------------
    def _sets(self, block: SlateBlock) -> np.ndarray:
        if not self.keyed:
            return np.zeros(block.lists.n_lists, dtype=np.int64)
        s = self.keys.get_indexer(pd.Index(block.request_keys)).astype(np.int64)
        if (s < 0).any():
            miss = block.request_keys[s < 0]
            raise InputError(
                f"the target score table has no scores for {miss.size} logged request(s), e.g. {show_key(miss[0])}",
                column="request_id",
                fix="score the candidates of every logged request, or drop request_id from the score table to "
                "use the same scores for every request")
        return s

    def _candidate(self, sets_row: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Index into the flat candidate arrays of each (set, item), -1 if the set does not score it."""
        if not self.keyed:  # one set: a lookup table by item code
            if getattr(self, "_lut", None) is None:
                self._lut = np.full(self._n_items_at_build + 1, -1, dtype=np.int64)
                self._lut[self.item] = np.arange(self.item.size)
            if items.size and items.max() < self._n_items_at_build:  # every item known: one gather
                return np.take(self._lut, items)
            return self._lut[np.where(items < self._n_items_at_build, items, self._n_items_at_build)]
        ok = items < self._n_items_at_build
        q = sets_row * np.int64(self._n_items_at_build) + np.where(ok, items, 0)
        j = np.searchsorted(self.full, q)
        jc = np.minimum(j, self.full.size - 1)
        return np.where(ok & (self.full[jc] == q), jc, -1)

    def _count_rank(self, sets_row: np.ndarray, rank: np.ndarray, side: str) -> np.ndarray:
        q = sets_row * np.int64(self._n_ranks + 1) + rank
        return np.searchsorted(self._rank_sorted, q, side=side) - np.searchsorted(
            self._rank_sorted, sets_row * np.int64(self._n_ranks + 1), side="left")

    # -- binding -----------------------------------------------------------------------
    def bind(self, block: SlateBlock) -> BoundSlateTarget:
        lists = block.lists
        sets_list = self._sets(block)
        # one score set: every row's set is 0 (a zero page, not a gather over the rows)
        sets_row = sets_list[lists.list_of_row] if self.keyed else np.zeros(lists.n, dtype=np.int64)
        dup = lists.any_above(block.items)  # item already placed above: the target cannot repeat it
        if self.kind == "plackett-luce":
            e_code = self._e_by_code()
            if e_code is not None and not dup.any() and not (block.items.size and
                                                              block.items.max() >= self._n_items_at_build):
                # every row a new item that the one score set scores: e from the item code, one gather
                # (the candidate indices are looked up only if the marginals are asked for)
                return self._bind_pl(block, sets_list, sets_row, None, None, by_code=True)
        cand = self._candidate(sets_row, block.items)
        new = (cand >= 0) & ~dup
        if self.kind == "plackett-luce":
            return self._bind_pl(block, sets_list, sets_row, cand, new)
        return self._bind_topk(block, sets_list, sets_row, cand, new)

    def _remaining_exact(self, block, sets_row, rows, first_slot) -> np.ndarray:
        """``E - e(prefix)`` summed over the remaining candidates (for rows where subtraction cancels)."""
        r, e = _expand(self.start[sets_row[rows]], self.count[sets_row[rows]], rows)
        out_prefix = first_slot(block.lists.list_of_row[r], self.item[e]) >= block.slot[r]
        return np.bincount(np.searchsorted(rows, r), weights=self.e[e] * out_prefix, minlength=rows.size)

    def _e_by_code(self) -> np.ndarray | None:
        """``e`` of each item code of a context-free target that scores every item of its vocabulary
        (the same numbers as ``e[candidate(code)]``), else ``None``."""
        if self.keyed:
            return None
        cached = getattr(self, "_e_code", None)
        if cached is None:
            n = self._n_items_at_build
            cand = self._candidate(np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64))
            cached = self._e_code = (np.take(self.e, cand),) if (cand >= 0).all() else (None,)
        return cached[0]

    def _bind_pl(self, block, sets_list, sets_row, cand, new, by_code: bool = False) -> BoundSlateTarget:
        """``by_code``: every row is a new item that the one score set scores (``cand``/``new`` are
        then ``None``, looked up only for the marginals), and ``e``/``rem`` come by item code."""
        lists = block.lists
        cond = self._cond_by_code(lists, block.items) if by_code else None
        if cond is not None:  # no risky row: e and rem are rebuilt from the items where needed
            e_row = rem = None
            risky = np.zeros(0, dtype=np.int64)
        else:
            if by_code:
                e_row = np.take(self._e_by_code(), block.items)
            else:  # every row a new, scored item (the usual log): one gather, no masking
                e_row = np.take(self.e, cand) if new.all() else np.where(new, self.e[np.maximum(cand, 0)], 0.0)
            big, rem = self._remaining(lists, e_row, sets_row)
            risky = np.flatnonzero(rem < 1e-8 * big)
        first_slot = None
        if risky.size:  # the prefix holds nearly all the mass: sum what remains instead
            first_slot = _first_logged_slot(block, len(self.vocab))
            rem[risky] = self._remaining_exact(block, sets_row, risky, first_slot)
        if cond is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                cond = e_row / rem
        if risky.size:
            cond[rem <= 0] = 0.0

        def remaining() -> np.ndarray:
            nonlocal rem
            if rem is None:
                rem = self._remaining(lists, np.take(self._e_by_code(), block.items), None)[1]
            return rem

        def n_cand():
            return self.count[sets_row]

        def marginal():
            nonlocal cand, new
            if cand is None:
                cand = self._candidate(sets_row, block.items)
                new = cand >= 0
            return self._pl_marginal(block, sets_list, sets_row, cand, new)

        def pairs(rows: np.ndarray) -> Pairs:
            nonlocal first_slot
            if first_slot is None:
                first_slot = _first_logged_slot(block, len(self.vocab))
            r, e = _expand(self.start[sets_row[rows]], self.count[sets_row[rows]], rows)
            free = first_slot(lists.list_of_row[r], self.item[e]) >= block.slot[r]
            rem_r = remaining()[r]
            with np.errstate(divide="ignore", invalid="ignore"):
                p = np.where(free & (rem_r > 0), self.e[e] / np.where(rem_r > 0, rem_r, 1.0), 0.0)
            return Pairs(r, self.item[e], block.slot[r], p)

        def cells(q: np.ndarray, fill: np.ndarray, folds: np.ndarray) -> np.ndarray:
            return self.pl_cells(lists, block.items, bound.cells_state, q, fill, folds)

        bound = BoundSlateTarget(self, block, cond, marginal_fn=marginal, pairs_fn=pairs, cells_fn=cells,
                                 n_candidates=n_cand)
        # all that pl_cells needs besides the lists and items (with whether every rem is > 0: no risky row);
        # e and rem taken by item code with no risky row are rebuilt from the items (None: what a block kept
        # for Cascade-DR's model term needs is then 16 bytes a row less)
        if e_row is None:
            bound.cells_state = (None, None, None, True)
        else:
            bound.cells_state = (sets_list, e_row, rem, risky.size == 0)
        return bound

    def _cond_by_code(self, lists: Lists, items: np.ndarray) -> np.ndarray | None:
        """``e_k / rem_k`` of every row of lists of one length, by item code (see :meth:`_e_by_code`),
        computed in chunks of lists with the operations of :meth:`_remaining` (the same numbers, and
        no block-sized ``e`` and ``rem``); ``None`` for ragged lists or when a row is risky
        (``rem < 1e-8 E``: the caller then takes the exact path)."""
        ell = lists.single_length
        if ell is None:
            return None
        e_code, big = self._e_by_code(), self.big_e[0]
        cond = np.empty(lists.n)
        items2, cond2 = np.asarray(items).reshape(-1, ell), cond.reshape(-1, ell)
        step = max(1, CELL_CHUNK_ROWS // ell)
        for lo in range(0, lists.n_lists, step):
            e = np.take(e_code, items2[lo:lo + step])
            rem = Lists(np.full(e.shape[0], ell)).cumsum(e.reshape(-1), exclusive=True).reshape(e.shape)
            np.subtract(big, rem, out=rem)
            if (rem < 1e-8 * big).any():
                return None
            with np.errstate(divide="ignore", invalid="ignore"):
                np.divide(e, rem, out=cond2[lo:lo + step])
        return cond

    def _remaining(self, lists: Lists, e_row: np.ndarray, sets_row) -> tuple:
        """``(E, rem)``: the set's total mass and ``rem_k = E - sum_{j < k} e_j``, the mass left for slot
        ``k`` (before the exact sum of the rows where the subtraction cancels)."""
        big = self.big_e[sets_row] if self.keyed else self.big_e[0]  # one set: a scalar, no gather
        rem = lists.cumsum(e_row, exclusive=True)
        np.subtract(big, rem, out=rem)
        return big, rem

    def pl_cells(self, lists: Lists, items: np.ndarray, state, q, fill, folds, logged: bool = False,
                 folds_list: np.ndarray | None = None):
        """``sum_{a not above} e_a q_f(a, k) / rem_k`` per row, from a (fold, item, slot) table ``q``.

        ``sum_a e_a q_f(a, k)`` over the set's candidates minus the items above, each term
        exact: no (row, candidate) pairs. ``state = (sets_list, e_row, rem, rem_positive)`` of
        :meth:`_bind_pl` (kept by the streamed evaluation so that the block can be scored after
        the outcome model is fitted without binding it again).

        ``logged=True`` also returns ``q_f(a_k, k)`` of each row's own item, gathered from the
        same per-slot tables (``(terms, q_logged)``), or ``None`` in its place when a logged item
        is unknown to the target (the table holds the fill value for it, not its own cell).
        ``folds=None`` with ``folds_list``: the fold of each list (folds follow the request).
        """
        sets_list, e_row, rem = state[:3]
        rem_positive = len(state) > 3 and state[3]  # rem >= 1e-8 * the set's total mass > 0 on every row
        # bound by item code with no risky row: e and rem are rebuilt by the same operations as in
        # _bind_pl, in the slot-major layout below for lists of one length (no list-major copies)
        rebuild = e_row is None and lists.single_length is not None
        if e_row is None and not rebuild:
            e_row = np.take(self._e_by_code(), np.asarray(items, dtype=np.int64))
            rem = self._remaining(lists, e_row, None)[1]
        ell = int(lists.lengths.max()) if lists.n_lists else 0
        qk, by_slot, s_ctx = self._cell_tables(q, fill, ell)
        if folds is None:  # per list: rows' folds only where a path below needs them
            f_list = np.asarray(folds_list, dtype=np.int64)
            if self.keyed or lists.single_length is None:
                folds = np.repeat(f_list, lists.lengths)
        else:
            f_list = folds[lists.starts] if lists.n_lists else np.zeros(0, dtype=np.int64)
        # totals per (set, fold, slot); a context-free set needs one per fold
        if self.keyed:
            s_tot = np.zeros((lists.n_lists, max(ell, 1)))
            lst = np.arange(lists.n_lists)
            r, e = _expand(self.start[sets_list], self.count[sets_list], lst)
            _bincount_rows(s_tot, r, self.e[e][:, None] * qk[f_list[r], self.item[e], :])
            tot_row = s_tot[lists.list_of_row, lists.slot]
        else:
            tot_row = None if lists.single_length is not None else s_ctx[folds, lists.slot]
        known = not (items.size and items.max() >= self._n_items_at_build)
        items_c = items if known else np.minimum(items, self._n_items_at_build)  # unknown items: the fill row
        width = self._n_items_at_build + 1
        res = np.empty(lists.n)
        one = lists.single_length is not None
        # the own-item gather equals the model's cell only for items the target knows (else: fill)
        own = np.empty(lists.n) if logged and known else None
        if one:  # one length: chunks of lists, so that every temporary below stays in cache
            length = lists.single_length
            step = max(1, CELL_CHUNK_ROWS // length)
            pieces = [(length, slice(lo, min(lo + step, lists.n_lists))) for lo in range(0, lists.n_lists, step)]
        else:
            pieces = lists.groups
        for length, ix in pieces:
            # one small (folds x items) table per slot k, gathered at the items above it, in slot-major
            # layout: the slots above k are one contiguous (k, lists) block, so each slot is one gather
            # and one weighted column sum (no strided (lists, k) slices). Lists are independent, so
            # chunks give the same numbers as one pass.
            if one:  # a single list length: reshaped views, no gathers
                def part(x, ix=ix, length=length):
                    return x.reshape(-1, length)[ix]
            else:
                def part(x, ix=ix):
                    return x[ix]
            n_l = ix.stop - ix.start if one else ix.shape[0]
            f_grp = f_list[ix] if one else folds[ix[:, 0]]
            base_t = np.empty((length, n_l), dtype=np.int64)
            er_t = np.empty((length, n_l))
            rem_t = None
            items_t = part(items_c).T
            np.add(items_t, (f_grp * width)[None, :], out=base_t)
            if rebuild:  # e by item code and rem_k = E - sum_{j<k} e_j, slot by slot (as Lists.cumsum)
                np.take(self._e_by_code(), items_t, out=er_t, mode="clip")
                rem_t = np.empty(er_t.shape)
                rem_t[0] = 0.0
                if length > 1:
                    rem_t[1] = er_t[0]
                for k in range(2, length):
                    np.add(rem_t[k - 1], er_t[k - 1], out=rem_t[k])
                np.subtract(self.big_e[0], rem_t, out=rem_t)
            else:
                er_t[:] = part(e_row).T
            # slot-major (total - above): the same number as -((above - total)), later divided by rem
            out_t = np.empty(base_t.shape)
            if tot_row is None:  # context-free: the total depends on the fold and slot only
                for k in range(length):
                    np.take(s_ctx[:, k], f_grp, out=out_t[k], mode="clip")
            else:
                out_t[:] = part(tot_row).T
            own_t = np.empty(base_t.shape) if own is not None else None
            # the gathers of every slot reuse one buffer; the indices are in range by construction, so
            # mode="clip" changes no index and lets numpy write into the buffer without a copy
            above = np.empty(base_t.shape)
            dot = np.empty(n_l)
            for k in range(length):
                if own_t is not None:  # the row's own item, from the slot's table
                    np.take(by_slot[k], base_t[k], out=own_t[k], mode="clip")
                if k:
                    np.take(by_slot[k], base_t[:k], out=above[:k], mode="clip")
                    out_t[k] -= np.einsum("jn,jn->n", above[:k], er_t[:k], out=dot)
            if rem_t is not None:  # divided here, element by element as below (rem > 0 on every row)
                with np.errstate(divide="ignore", invalid="ignore"):
                    np.divide(out_t, rem_t, out=out_t)
            if one:
                res.reshape(-1, length)[ix] = out_t.T
                if own_t is not None:
                    own.reshape(-1, length)[ix] = own_t.T
            else:
                res[ix] = out_t.T
                if own_t is not None:
                    own[ix] = own_t.T
        if not rebuild:
            with np.errstate(divide="ignore", invalid="ignore"):
                np.divide(res, rem, out=res)
        if not rem_positive:
            bad = rem <= 0
            if bad.any():
                res[bad] = 0.0
        return (res, own) if logged else res

    def _cell_tables(self, q: np.ndarray, fill: np.ndarray, ell: int):
        """The (fold, item code, slot) table in the target's item codes (unknown items, slots: the fill),
        the same laid out per slot, and the context-free totals ``sum_a e_a q_f(a, k)``; cached per model."""
        key = (id(q), q.shape, ell)
        cached = getattr(self, "_cells_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        n_f, n_a, n_k = q.shape
        width = self._n_items_at_build + 1
        qk = np.empty((n_f, width, max(ell, 1)))
        qk[:] = fill[:, None, None]
        m, kk = min(n_a, self._n_items_at_build), min(n_k, ell)
        qk[:, :m, :kk] = q[:, :m, :kk]
        by_slot = np.ascontiguousarray(np.moveaxis(qk, 2, 0)).reshape(qk.shape[2], n_f * width)  # [k, f * A + a]
        s_ctx = None
        if not self.keyed:
            lo, hi = self.start[0], self.start[0] + self.count[0]
            s_ctx = np.einsum("a,fak->fk", self.e[lo:hi], qk[:, self.item[lo:hi], :])
        self._cells_cache = (key, (qk, by_slot, s_ctx))
        return qk, by_slot, s_ctx

    def _pl_marginal(self, block, sets_list, sets_row, cand, new) -> np.ndarray:
        ell = int(block.lists.lengths.max()) if block.lists.n_lists else 1
        if not self.keyed:  # one candidate set: a (batches, candidates, slots) table, computed once
            cached = getattr(self, "_cf_table", None)
            if cached is None or cached.shape[2] < ell:
                cached = self._cf_table = self._marginal_table(np.zeros(1, dtype=np.int64), max(ell, 1))
            return np.where(cand >= 0, cached[:, np.maximum(cand, 0), block.slot], 0.0)
        used = np.unique(sets_list)
        idx = _expand(self.start[used], self.count[used], np.arange(used.size))[1]
        loc = np.full(self.e.shape[0], -1, dtype=np.int64)
        loc[idx] = np.arange(idx.size)
        sub_count = self.count[used]
        sub_start = np.cumsum(sub_count) - sub_count
        if pl.use_exact(sub_count, ell):
            self.last_marginal_method = "exact"
            table = pl.exact_marginals(self.e[idx], sub_start, sub_count, ell)
            return np.where(cand >= 0, table[np.maximum(loc[np.maximum(cand, 0)], 0), block.slot], 0.0)[None, :]
        self.last_marginal_method = "monte_carlo"
        local_set = np.searchsorted(used, sets_row)
        local_cand = np.where(cand >= 0, cand - self.start[sets_row], -1)
        return pl.mc_marginals(self.e[idx], sub_start, sub_count, self._set_keys[used], ell, self.mc_samples,
                               MC_BATCHES, local_set, local_cand, block.slot)

    def _marginal_table(self, sets: np.ndarray, ell: int) -> np.ndarray:
        """``(B, N, ell)`` marginals of every candidate of a context-free target."""
        m = int(self.count[0])
        if pl.use_exact(self.count[sets], ell):
            self.last_marginal_method = "exact"
            return pl.exact_marginals(self.e, self.start, self.count, ell)[None, :, :]
        self.last_marginal_method = "monte_carlo"
        qc = np.repeat(np.arange(m), ell)
        qk = np.tile(np.arange(ell), m)
        est = pl.mc_marginals(self.e, self.start, self.count, self._set_keys, ell, self.mc_samples, MC_BATCHES,
                              np.zeros(qc.size, dtype=np.int64), qc, qk)
        return est.reshape(MC_BATCHES, m, ell)

    def _bind_topk(self, block, sets_list, sets_row, cand, new) -> BoundSlateTarget:
        lists = block.lists
        rank = np.where(cand >= 0, self._rank[np.maximum(cand, 0)], 0)
        n_le = self._count_rank(sets_row, rank, "right")
        n_lt = self._count_rank(sets_row, rank, "left")
        higher_all = self.count[sets_row] - n_le
        equal_all = n_le - n_lt
        s = np.where(new, self.score[np.maximum(cand, 0)], np.nan)
        higher_above = lists.pairwise_above(s, np.greater)
        equal_above = lists.pairwise_above(s, np.equal)
        eq_left = equal_all - equal_above
        with np.errstate(divide="ignore", invalid="ignore"):
            cond = np.where(new & (higher_all - higher_above == 0) & (eq_left > 0), 1.0 / np.maximum(eq_left, 1), 0.0)
        first_slot = None

        def marginal():
            k = block.slot
            inside = (cand >= 0) & (higher_all <= k) & (k < higher_all + equal_all)
            return np.where(inside, 1.0 / np.maximum(equal_all, 1), 0.0)[None, :]

        def pairs(rows: np.ndarray) -> Pairs:
            # the best remaining item scores at least the (k+1)-th best of the set
            nonlocal first_slot
            if first_slot is None:
                first_slot = _first_logged_slot(block, len(self.vocab))
            st = self.start[sets_row[rows]]
            cnt = self.count[sets_row[rows]]
            kth = self._desc[st + np.minimum(block.slot[rows], cnt - 1)]
            n_ge = cnt - self._count_rank(sets_row[rows], self._rank[kth], "left")
            r, d = _expand(st, n_ge, rows)
            c = self._desc[d]
            free = first_slot(lists.list_of_row[r], self.item[c]) >= block.slot[r]
            sc = np.where(free, self.score[c], -np.inf)
            seg = np.searchsorted(r, rows)  # pairs are grouped by row, in the order of rows
            has = n_ge > 0
            best = np.full(rows.size, -np.inf)
            if r.size:
                best[has] = np.maximum.reduceat(sc, seg[has])
            top = free & (sc == best[np.searchsorted(rows, r)]) & np.isfinite(sc)
            n_top = np.bincount(np.searchsorted(rows, r), weights=top, minlength=rows.size)
            p = np.where(top, 1.0 / np.maximum(n_top[np.searchsorted(rows, r)], 1), 0.0)
            return Pairs(r, self.item[c], block.slot[r], p)

        return BoundSlateTarget(self, block, cond, marginal_fn=marginal, pairs_fn=pairs,
                                n_candidates=block.slot + 1)


def _bincount_rows(out: np.ndarray, rows: np.ndarray, vals: np.ndarray) -> None:
    for k in range(out.shape[1]):
        out[:, k] += np.bincount(rows, weights=vals[:, k], minlength=out.shape[0])


def resolve_slate_target(target, *, schema: LogSchema, kind: str | None = None, temperature: float = 1.0,
                         mc_samples: int = 1000, seed: int = 0):
    """A slate target from a DataFrame or CSV/Parquet path (``kind`` set: a score table)."""
    if isinstance(target, (SlateTableTarget, ScoreTarget)):
        return target
    source = "table"
    if not isinstance(target, pd.DataFrame):
        if callable(target):
            raise InputError("slate estimators take a target table or target scores, not a callable",
                             column="target", fix="write the target's probabilities (request_id, position, "
                             "item_id, prob) or scores (request_id, item_id, score) to a table")
        source = str(target)
        target = read_table(target)
    if kind is not None:
        return ScoreTarget(target, schema=schema, kind=kind, temperature=temperature, mc_samples=mc_samples,
                           seed=seed, source=source)
    if "score" in target.columns and "prob" not in target.columns:
        raise InputError("the target table has scores but no probabilities", column="target_kind",
                         fix="say how scores become a ranking: --target-kind plackett-luce [--temperature T] "
                         "or --target-kind topk")
    return SlateTableTarget(target, schema=schema, source=source)
