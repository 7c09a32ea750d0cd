"""Clustered rows for off-policy evaluation: cluster-robust moments and streaming (folds
that keep a cluster together: :func:`causalrec.models.folds.cluster_hash_folds`).

The positions of one slate (or the requests of one user) share a context, so their
outcomes are dependent and a standard error that treats rows as independent is too
small. With clusters ``g`` the per-row terms ``(c, a, b)`` of an estimator (see
:mod:`causalrec.ope.estimators`) are summed per cluster into ``(C_g, N_g, A_g, B_g)``
(``N_g`` the cluster's rows) and the estimate is the same,

    V_hat = sum C / sum N + sum A / sum B = V1 + R,

with the cluster-level influence value
``psi_g = (C_g - V1 N_g) / mean(N) + (A_g - R B_g) / mean(B)`` and
``se^2 = sum_g psi_g^2 / (G (G - 1))``. This equals
:func:`causalrec.inference.cluster_se` on the row influence values (the ``G / (G - 1)``
factor included), but only needs mergeable moments of four numbers per cluster, so a file
can be streamed: :class:`ClusterStream` sums contiguous runs of a cluster key batch by
batch and carries the last, possibly unfinished, run into the next batch. Streaming needs
the log sorted by the cluster column (checked); in memory any order works.

Why hand-written: the statistics libraries offer cluster-robust covariances for
regressions fitted in memory, not for ratio estimators accumulated over batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from causalrec.errors import InputError
from causalrec.inference import check_clusters
from causalrec.models.folds import cluster_hash_folds as cluster_folds  # noqa: F401  (the one fold spec)
from causalrec.ope.estimators import Moments


@dataclass
class ClusterMoments(Moments):
    """Mergeable moments of the cluster totals ``z_g = (C_g, N_g, A_g, B_g)``: count,
    means and the centred co-moment matrix; build with ``ClusterMoments.of_array(z)`` from a
    ``(4, G)`` array, merge with :meth:`Moments.merge`."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros(4))
    m2: np.ndarray = field(default_factory=lambda: np.zeros((4, 4)))

    def estimate_se(self) -> tuple[float, float]:
        """``(V_hat, cluster-robust se)``."""
        mc, mn, ma, mb = self.mean
        if self.n == 0 or mb == 0 or mn == 0:
            return float("nan"), float("nan")
        v1, r = mc / mn, ma / mb
        if self.n < 2:
            return float(v1 + r), float("nan")
        u = np.array([1.0 / mn, -v1 / mn, 1.0 / mb, -r / mb])
        ss = float(u @ self.m2 @ u)
        return float(v1 + r), float(np.sqrt(max(ss, 0.0) / (self.n - 1) / self.n))


def cluster_moments_of_many(totals: list[np.ndarray]) -> list[ClusterMoments]:
    """``[ClusterMoments.of_array(t) for t in totals]`` for the ``(4, G)`` totals of several
    estimators over the same clusters, with one centring and one co-moment product.

    Why: under SLOPE a batch carries a dozen candidates' totals, and most rows repeat: ``N`` is
    every estimator's, ``C`` is all zeros and ``B = N`` for the estimators without a control
    variate or self-normalisation (MIPS, IPS). The distinct rows are stacked once (``N``, then
    each estimator's non-zero ``C``, its ``A``, and its ``B`` unless it equals ``N``), their means
    and centred products ``Z Z^T`` computed once and each estimator's 4 x 4 block read off (a
    zero row has mean 0 and no co-moments). The means are the same row means as ``of_array``'s, so
    the estimates are identical; the co-moments are the same sums grouped differently by BLAS
    (last-bit differences in the standard errors)."""
    if not totals:
        return []
    if totals[0].shape[1] == 0:
        return [ClusterMoments() for _ in totals]
    rows, index = [totals[0][1]], []
    for t in totals:
        if not np.array_equal(t[1], totals[0][1]):  # not the same clusters: no sharing
            return [ClusterMoments.of_array(u) for u in totals]
        ic = -1 if not t[0].any() else len(rows)
        if ic >= 0:
            rows.append(t[0])
        rows.append(t[2])
        ia = len(rows) - 1
        ib = 0 if np.array_equal(t[3], t[1]) else len(rows)
        if ib:
            rows.append(t[3])
        index.append([ic, 0, ia, ib])
    z = np.stack(rows)
    mean = z.mean(axis=1)
    zc = z - mean[:, None]
    m2 = zc @ zc.T
    r = len(rows)  # index -1 reads the appended zero row/column
    mean = np.r_[mean, 0.0]
    m2 = np.pad(m2, ((0, 1), (0, 1)))
    n = z.shape[1]
    return [ClusterMoments(n, mean[ix].copy(), m2[np.ix_(ix, ix)].copy()) for ix in
            (np.where(np.asarray(i) < 0, r, i) for i in index)]


def _run_starts(keys: np.ndarray) -> np.ndarray:
    change = np.empty(len(keys), dtype=bool)
    change[:1] = True
    change[1:] = keys[1:] != keys[:-1]
    return np.flatnonzero(change)


@dataclass
class ClusterStream:
    """Sums per-row terms over contiguous runs of a cluster key, batch after batch.

    ``add(keys, terms)`` takes a batch's keys and, per estimator, its ``(c, a, b)`` (``c = None``
    for zeros and ``b = None`` for ones, as :meth:`causalrec.ope.estimators.Moments.of_terms`);
    it returns, per estimator, the ``(4, G)`` totals of the clusters that are complete,
    holding the batch's last run back in case the next batch continues it. ``flush()``
    returns the held-back cluster at the end. Keys must be non-decreasing across the whole
    log (an unsorted log could split a cluster silently), which is checked.
    """

    column: str
    _carry: np.ndarray | None = None  # (n_estimators, 4)
    _carry_n: float | None = None  # rows of the held-back cluster (counted without any terms)
    _last_key: object = None
    n_clusters: int = 0
    max_size: int = 0

    def add(self, keys: np.ndarray, terms: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        keys = np.asarray(keys)
        if len(keys) == 0:
            return [np.zeros((4, 0)) for _ in terms]
        s = pd.Series(keys)
        check_clusters(self.column, n_missing=int(s.isna().sum()))
        if not s.is_monotonic_increasing or (self._last_key is not None and keys[0] < self._last_key):
            raise InputError(f"streaming with cluster-robust errors needs the log sorted by '{self.column}'",
                             column=self.column, fix=f"sort the file by {self.column}, or drop batch_size "
                             "(--batch-size) to evaluate in memory, where any order works")
        starts = _run_starts(keys)
        sizes = np.diff(np.r_[starts, len(keys)]).astype(float)
        # (E, 4, runs), filled in place; c = None (zeros) and b = None (ones) need no sums: their
        # totals are 0 and the run sizes exactly (integers below 2**53), what reduceat would give
        # column 0 is kept free for the previous batch's held-back cluster, so the complete clusters
        # are a view (no concatenated copy of E x 4 x runs floats per batch)
        totals = np.empty((len(terms), 4, starts.size + 1))
        # one row per cluster (e.g. one impression per request): each total is the row's own value,
        # which a copy gives exactly and several times faster than reduceat
        single = starts.size == len(keys)

        def run_sums(z, out):
            if single:
                out[:] = z
            else:
                np.add.reduceat(z, starts, out=out)

        for i, (c, a, b) in enumerate(terms):
            if c is None:
                totals[i, 0, 1:] = 0.0
            else:
                run_sums(c, totals[i, 0, 1:])
            totals[i, 1, 1:] = sizes
            run_sums(a, totals[i, 2, 1:])
            if b is None:
                totals[i, 3, 1:] = sizes
            else:
                run_sums(b, totals[i, 3, 1:])
        first = 1
        if self._carry is not None:
            if keys[0] == self._last_key:
                totals[:, :, 1] += self._carry
            else:
                totals[:, :, 0] = self._carry
                first = 0
        if self._carry_n is not None:
            if keys[0] == self._last_key:
                sizes[0] += self._carry_n
            else:
                sizes = np.r_[self._carry_n, sizes]
        self._carry = totals[:, :, -1].copy()
        self._carry_n = float(sizes[-1])
        self._last_key = keys[-1]
        self._count(sizes[:-1])
        return list(totals[:, :, first:-1])

    def flush(self) -> list[np.ndarray]:
        if self._carry is None:
            return []
        out = self._carry[:, :, None]
        self._count(np.array([self._carry_n]))
        self._carry = self._carry_n = None
        return list(out)

    @staticmethod
    def single_rows(keys: np.ndarray) -> np.ndarray:
        """Rows of a batch that are whole clusters of one row: runs of length one other than the
        batch's first (it may continue the previous batch's last cluster) and last (the next batch
        may continue it). Keys as for :meth:`add` (sorted; :meth:`add` checks them)."""
        keys = np.asarray(keys)
        n = len(keys)
        single = np.zeros(n, dtype=bool)
        if n > 2:
            diff = keys[1:] != keys[:-1]  # diff[i]: rows i and i + 1 belong to different clusters
            single[1:-1] = diff[:-1] & diff[1:]
        return single

    def _count(self, sizes: np.ndarray) -> None:
        """Count complete clusters of ``sizes`` rows (terms or no terms)."""
        if sizes.size:
            self.n_clusters += int(sizes.size)
            self.max_size = max(self.max_size, int(sizes.max()))
