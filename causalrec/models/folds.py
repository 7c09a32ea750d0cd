"""The one fold spec of causalrec's cross-fitting: which fold each row belongs to.

Three ways to assign rows to ``K`` folds, one function each, all here so every estimator
(uplift, debias, CUPAC, OPE, slates; in memory, streamed or on Spark) draws its folds from
the same place:

- :func:`make_folds` -- in memory, scikit-learn splitters: shuffled ``KFold``,
  ``StratifiedKFold`` by label, grouped (no group, e.g. a user, in two folds) or both
  (``StratifiedGroupKFold``).
- :func:`row_hash_folds` -- streaming, by the *global row number*: the same folds whatever
  the batch size, without seeing the whole file.
- :func:`cluster_hash_folds` -- streaming, by a *cluster key* (user, request):
  ``fold = floor(K * h(key) / 2^32)`` with ``h`` a seeded 64-bit hash (upper 32 bits), i.e.
  ``hash(unit) mod K`` done by multiply-shift (balanced for any ``K``). A cluster never
  straddles folds and the fold depends on nothing but the key and the seed, so an executor
  of the Spark engine computes the same fold as the in-memory path.

:class:`FoldSpec` names one of these with its parameters; ``FoldSpec.assign`` returns the
fold ids. Why hand-written: the row and cluster hashes must be batch- and engine-invariant,
which scikit-learn's splitters (they see all rows at once) cannot be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causalrec.errors import InputError

KINDS = ("split", "row_hash", "cluster_hash")


def _check_k(n: int, n_folds: int) -> None:
    if n_folds < 2:
        raise InputError(f"n_folds must be >= 2, got {n_folds}", column="n_folds", fix="use 2 or more folds")
    if n < n_folds:
        raise InputError(f"{n} rows cannot be split into {n_folds} folds", column="n_folds",
                         fix="use fewer folds or more rows")


def make_folds(n: int, n_folds: int = 5, *, groups=None, stratify=None, random_state: int = 0) -> np.ndarray:
    """Fold id (0..n_folds-1) of each of ``n`` rows: shuffled, grouped and/or stratified.

    Grouped without stratification: ``GroupKFold`` (greedy, balances fold sizes) on group
    labels relabelled by a seeded permutation, so ties are broken at random; this works on
    every supported scikit-learn (``GroupKFold(shuffle=...)`` needs >= 1.6). Stratification
    falls back to plain ``KFold`` when a class has fewer than ``n_folds`` rows.
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    _check_k(n, n_folds)
    idx = np.zeros(n)
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise InputError(f"groups has {len(groups)} entries for {n} rows", column="groups",
                             fix="pass one group label per row")
        _, codes = np.unique(groups, return_inverse=True)
        n_groups = int(codes.max()) + 1 if n else 0
        if n_groups < n_folds:
            raise InputError(f"only {n_groups} distinct groups for {n_folds} folds", column="groups",
                             fix="use fewer folds, or no grouping")
        if stratify is not None:
            splits = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state).split(
                idx, stratify, codes)
        else:
            perm = np.random.default_rng(random_state).permutation(n_groups)
            splits = GroupKFold(n_splits=n_folds).split(idx, groups=perm[codes])
    elif stratify is not None:
        _, counts = np.unique(stratify, return_counts=True)
        if counts.min() < n_folds:
            splits = KFold(n_folds, shuffle=True, random_state=random_state).split(idx)
        else:
            splits = StratifiedKFold(n_folds, shuffle=True, random_state=random_state).split(idx, stratify)
    else:
        splits = KFold(n_folds, shuffle=True, random_state=random_state).split(idx)
    folds = np.full(n, -1, dtype=np.int64)
    for k, (_, test) in enumerate(splits):
        folds[test] = k
    return folds


def row_hash_folds(start: int, n: int, n_folds: int, seed: int = 0) -> np.ndarray:
    """Folds of the global rows ``start .. start + n - 1`` by Fibonacci (multiplicative) hashing.

    ``h = (row + s) * 0x9E3779B97F4A7C15 mod 2^64``, ``fold = floor(K * (h >> 32) / 2^32)``:
    the folds form an equidistributed Weyl sequence in the row number, so they are
    balanced, seeded (``s`` derives from ``seed``), and independent of how the file is
    split into batches. ``n_folds <= 1`` puts every row in fold 0.
    """
    if n_folds <= 1:
        return np.zeros(n, dtype=np.int64)
    offset = (seed * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) % 2**64
    h = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h += np.uint64((offset + start) % 2**64)
        h *= np.uint64(0x9E3779B97F4A7C15)
    h >>= np.uint64(32)
    h *= np.uint64(n_folds)
    h >>= np.uint64(32)
    return h.view(np.int64)


def cluster_hash_folds(keys, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold of each row from a seeded hash of its cluster key (``hash(key) mod K`` by
    multiply-shift), so a cluster stays in one fold and the folds do not depend on row
    order, batching or engine. ``n_folds <= 1`` puts every row in fold 0."""
    import pandas as pd

    keys = np.asarray(keys)
    if n_folds <= 1:
        return np.zeros(len(keys), dtype=np.int64)
    h = pd.util.hash_array(keys, hash_key=f"causalrec{seed % 10**7:07d}")
    return ((h >> np.uint64(32)) * np.uint64(n_folds) >> np.uint64(32)).astype(np.int64)


def row_hash_sample(start: int, n: int, rate: float, seed: int = 0) -> np.ndarray:
    """Which of the global rows ``start .. start + n - 1`` a seeded ``rate`` sample keeps (bool).

    Row ``i`` is kept when ``SipHash_seed(i) / 2^64 < rate``: a Bernoulli(``rate``) draw per row
    that depends only on the row number and the seed (the same rows whatever the batching or
    engine). SipHash, not the Weyl hash of :func:`row_hash_folds`: a second Weyl sequence in the
    row number would be a shifted copy of the folds' and keep whole folds; this one is
    independent of the fold, so every fold is sampled at the same rate.
    """
    import pandas as pd

    if rate >= 1.0:
        return np.ones(n, dtype=bool)
    h = pd.util.hash_array(np.arange(start, start + n, dtype=np.int64), hash_key=f"rowsample{seed % 10**7:07d}")
    return (h >> np.uint64(11)).astype(np.float64) < rate * 2.0**53


@dataclass(frozen=True)
class FoldSpec:
    """How rows are assigned to folds: ``kind`` one of ``"split"`` (:func:`make_folds`),
    ``"row_hash"`` (:func:`row_hash_folds`), ``"cluster_hash"`` (:func:`cluster_hash_folds`).

    ``assign(n, groups=..., stratify=..., start=...)``: for ``"split"`` ``groups`` groups
    and ``stratify`` stratifies; for ``"cluster_hash"`` ``groups`` are the cluster keys
    (required); for ``"row_hash"`` ``start`` is the global number of the first row.
    """

    n_folds: int = 5
    kind: str = "split"
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"unknown fold kind {self.kind!r}", column="folds", fix=f"use one of {KINDS}")

    def assign(self, n: int, *, groups=None, stratify=None, start: int = 0) -> np.ndarray:
        if self.kind == "split":
            return make_folds(n, self.n_folds, groups=groups, stratify=stratify, random_state=self.seed)
        if self.kind == "row_hash":
            return row_hash_folds(start, n, self.n_folds, self.seed)
        if groups is None:
            raise InputError("cluster-hashed folds need the cluster keys", column="groups",
                             fix="pass groups=<one key per row>, or use kind='split'")
        if len(groups) != n:
            raise InputError(f"groups has {len(groups)} entries for {n} rows", column="groups",
                             fix="pass one cluster key per row")
        return cluster_hash_folds(groups, self.n_folds, self.seed)

    def to_dict(self) -> dict:
        return {"n_folds": int(self.n_folds), "kind": self.kind, "seed": int(self.seed)}


__all__ = ["FoldSpec", "make_folds", "row_hash_folds", "cluster_hash_folds", "row_hash_sample"]
