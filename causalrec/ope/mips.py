"""Large-catalogue estimators that weight item *clusters* instead of items: MIPS, SNMIPS, OffCEM.

Notation as in :mod:`causalrec.ope.estimators`, plus an item representation ``e = phi(a)``:
the cluster of the item's text embedding (:mod:`causalrec.ope.catalogue`), ``K`` clusters.

- ``p(e | x, pi) = sum_{a: phi(a) = e} pi(a | x, k)``, the policy's probability of showing
  *some* item of cluster ``e`` (at the row's position);
- ``w~_i = p(e_i | x_i, pi_e) / p(e_i | x_i, pi_0)``, the marginalised (cluster) weight.

**MIPS** (Saito & Joachims 2022, "Off-policy evaluation for large action spaces via
embeddings"): ``V_MIPS = (1/n) sum_i w~_i y_i``. Unbiased when the logging policy covers
every cluster the target uses (common embedding support) and the item affects the reward
only through its cluster (no direct effect, ``a _||_ y | x, e``); it has far less variance
than IPS when clusters hold many items. With fewer clusters the bias from a direct effect
grows and the variance shrinks: ``K`` is chosen by SLOPE (:mod:`causalrec.ope.selection`).

**SNMIPS**: ``sum_i w~_i y_i / sum_i w~_i`` (self-normalised; delta-method influence).

**OffCEM** (Saito, Ren & Joachims 2023, "Off-policy evaluation for large action spaces via
conjunct effect modeling"): ``V = (1/n) sum_i [ qpi_i + w~_i (y_i - qhat_i) ]`` with an
outcome model ``q(x, a, k) = g(e(a), k) + h(a, k)``, a cluster-level mean plus an item-level
residual, both cross-fitted (the default cell means shrunk towards the cluster's mean of the
same ``K``, empirical-Bayes pseudo-counts: :meth:`causalrec.ope.outcome.CellMeanOutcome.clustered`;
a scikit-learn or fixed outcome model is used as given). It is unbiased when the cluster
weights are right and ``q``'s error is the same for the items of one cluster (the residual
``h`` captures the direct, within-cluster effect; Saito et al.'s local correctness); with
``q = 0`` it is MIPS. An item-level model shrunk towards the *global* mean (DR's) breaks that
condition on large catalogues: the never-logged items the target favours all get the log's
average, and OffCEM inherits that bias.

When no logging table is given the cluster weight is estimated, as in the MIPS paper, by
regressing the item weight on the cluster, ``w~ = E[w | x, e]``; causalrec's regression is
the mean of ``w`` per (cluster, position) over the log (it ignores other context), and
the result says so.

All three are in the common ``(c, a, b)`` form, so streaming, cluster-robust standard
errors and the bootstrap work unchanged. Why hand-written: no maintained package offers
them on Python >= 3.11 without dense (rows x items) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from causalrec.errors import InputError
from causalrec.ope.clusters import ClusterMoments, ClusterStream, cluster_moments_of_many
from causalrec.ope.estimators import ESTIMATORS, Moments, OPEArrays, OPEEstimator, _clipped


def cluster_weight(d: OPEArrays, clusters: int | None, name: str) -> np.ndarray:
    """The row's cluster weight ``w~`` for ``clusters`` (K) from ``d.w_emb``."""
    return d.w_emb[cluster_count(d, clusters, name)]


def cluster_count(d: OPEArrays, clusters: int | None, name: str) -> int:
    """The K that ``clusters`` means here (the only one computed when ``None``), checked."""
    if d.w_emb is None:
        raise InputError(f"estimator '{name}' weights item clusters, but no item catalogue was given",
                         column="items", fix="pass the catalogue with --items CATALOG --item-key COL --item-text "
                         "COL (and the logging policy's table with --logging-policy)")
    if clusters is None:
        if len(d.w_emb) != 1:
            raise InputError(f"estimator '{name}' has no cluster count and {len(d.w_emb)} are available",
                             column="embedding_clusters", fix="fix it with --embedding-clusters K")
        return next(iter(d.w_emb))
    if clusters not in d.w_emb:
        raise InputError(f"estimator '{name}' asks for {clusters} clusters, which were not computed",
                         column="embedding_clusters", fix="use one of " + ", ".join(map(str, d.w_emb)))
    return clusters


@dataclass
class MIPS(OPEEstimator):
    """Marginalised IPS: ``V = (1/n) sum_i min(w~_i, clip) y_i`` (see the module docstring)."""

    name: ClassVar[str] = "mips"
    embedding: ClassVar[bool] = True
    clusters: int | None = None
    clip: float | None = None

    def terms(self, d):
        return None, _clipped(cluster_weight(d, self.clusters, self.name), self.clip) * d.y, None

    def params(self):
        return {"clusters": self.clusters, "clip": self.clip}


@dataclass
class SNMIPS(OPEEstimator):
    """Self-normalised MIPS: ``V = sum_i w~_i y_i / sum_i w~_i``."""

    name: ClassVar[str] = "snmips"
    embedding: ClassVar[bool] = True
    clusters: int | None = None
    clip: float | None = None

    def terms(self, d):
        w = _clipped(cluster_weight(d, self.clusters, self.name), self.clip)
        return None, w * d.y, w

    def params(self):
        return {"clusters": self.clusters, "clip": self.clip}


@dataclass
class OffCEM(OPEEstimator):
    """OffCEM: ``V = (1/n) sum_i [ qpi_i + w~_i (y_i - qhat_i) ]`` (cluster weights + item-level model)."""

    name: ClassVar[str] = "offcem"
    embedding: ClassVar[bool] = True
    needs_outcome_model: ClassVar[bool] = True
    clusters: int | None = None
    clip: float | None = None

    def terms(self, d):
        k = cluster_count(d, self.clusters, self.name)
        w = _clipped(d.w_emb[k], self.clip)
        # the cell-mean model shrunk towards the K clusters (cluster level + item residual); another
        # model (scikit-learn, a known function) is used as given
        q_logged, q_target = d.q_emb(k) if d.q_emb is not None else (d.q_logged, d.q_target)
        return q_target, w * (d.y - q_logged), None

    def params(self):
        return {"clusters": self.clusters, "clip": self.clip}


# -- candidates pooled per (item, position) cell ----------------------------------------

def pools_cells(est) -> bool:
    """Whether ``est``'s terms are ``(0, f(cell) y, 1)`` (MIPS) or ``(0, f(cell) y, f(cell))`` (SNMIPS)
    with ``f`` a per-(item, position) table, the clipped cluster weight of context-free tables."""
    return type(est) in (MIPS, SNMIPS)


@dataclass
class CellSums:
    """Mergeable per-cell statistics of the outcome: rows ``n_c``, mean ``ybar_c`` and centred sum of
    squares ``ss_c = sum_{i in c} (y_i - ybar_c)^2`` for every (item, position) cell ``c``.

    Why: when a candidate's per-row terms depend on the row only through its cell and ``y``
    (:func:`pools_cells`), every candidate's sums follow from these three numbers per cell, so
    SLOPE's dozen MIPS candidates cost one pass of three ``bincount`` over the rows plus
    ``O(cells)`` work each (:meth:`moments`), instead of a dozen per-row weights, products and
    co-moments per batch. Batches merge per cell with Chan et al.'s update (no
    ``sum y^2 - n ybar^2`` cancellation), as :class:`causalrec.ope.estimators.Moments` does.
    """

    n: np.ndarray
    mean: np.ndarray
    ss: np.ndarray

    @classmethod
    def empty(cls, m: int) -> CellSums:
        return cls(np.zeros(m), np.zeros(m), np.zeros(m))

    @classmethod
    def of(cls, cells: np.ndarray, y: np.ndarray, m: int) -> CellSums:
        n = np.bincount(cells, minlength=m).astype(np.float64)
        mean = np.divide(np.bincount(cells, weights=y, minlength=m), n, out=np.zeros(m), where=n > 0)
        r = mean[cells]  # two passes (deviations from the cell means), in place: one row-length temporary
        np.subtract(y, r, out=r)
        np.multiply(r, r, out=r)
        return cls(n, mean, np.bincount(cells, weights=r, minlength=m))

    def merge(self, other: CellSums) -> CellSums:
        n = self.n + other.n
        frac = np.divide(other.n, n, out=np.zeros_like(n), where=n > 0)
        delta = other.mean - self.mean
        return CellSums(n, self.mean + delta * frac, self.ss + other.ss + delta * delta * self.n * frac)

    def moments(self, f: np.ndarray, self_normalised: bool):
        """``(Moments, ClusterMoments)`` of the rows' terms ``(0, f_c y, 1 or f_c)``: the row moments
        (:class:`~causalrec.ope.estimators.Moments`) and the same rows as clusters of one row each
        (:class:`~causalrec.ope.clusters.ClusterMoments`, ``N = 1``).

        With ``a = f_c y``: ``mean(a) = sum_c n_c f_c ybar_c / n`` and
        ``sum (a - mean(a))^2 = sum_c [f_c^2 ss_c + n_c (f_c ybar_c - mean(a))^2]``; ``b = f_c`` is
        constant within a cell, so its co-moments have no within-cell part. Cells without rows
        (``f`` may be NaN there: clusters the logging policy never shows) are left out."""
        keep = self.n > 0
        nc, yb, ss, fc = self.n[keep], self.mean[keep], self.ss[keep], f[keep]
        n = int(round(nc.sum()))
        if n == 0:
            return Moments(), ClusterMoments()
        fy = fc * yb
        ma = float(nc @ fy) / n
        da = fy - ma
        aa = float(fc * fc @ ss + nc @ (da * da))
        mb, ab, bb = 1.0, 0.0, 0.0
        if self_normalised:
            mb = float(nc @ fc) / n
            db = fc - mb
            ab, bb = float(nc @ (da * db)), float(nc @ (db * db))
        m3 = np.array([[0.0, 0.0, 0.0], [0.0, aa, ab], [0.0, ab, bb]])
        m4 = np.zeros((4, 4))
        m4[2:, 2:] = m3[1:, 1:]
        return Moments(n, np.array([0.0, ma, mb]), m3), ClusterMoments(n, np.array([0.0, 1.0, ma, mb]), m4)


class CellPool:
    """The streamed sums of the MIPS / SNMIPS estimators of a run whose cluster weights are
    per-cell tables (context-free target and logging tables), from :class:`CellSums`.

    ``add(cells, y, keys)`` per batch; ``finish()`` gives each estimator's row moments and, with a
    cluster column, its cluster moments. Clusters of one row (one impression per request: the
    usual log) are rows, so their moments come from the per-cell sums; the rows of longer clusters
    and of each batch's first and last cluster (which may span batches) get their per-row weights
    and go through a :class:`~causalrec.ope.clusters.ClusterStream` of their own, as every
    estimator's rows do without pooling, and the two parts' moments merge (Chan et al.), so the
    result is the unpooled one up to rounding (the tests compare them to 1e-12).
    """

    def __init__(self, ests, tables: dict[int, np.ndarray], cluster: str | None):
        self.f = [_clipped(tables[_pool_k(e, tables)], e.clip) for e in ests]
        self.sn = [isinstance(e, SNMIPS) for e in ests]
        self.m = next(iter(tables.values())).shape[0]
        self.all = CellSums.empty(self.m)
        self.single = CellSums.empty(self.m) if cluster is not None else None
        self.rest = ClusterStream(cluster) if cluster is not None else None
        self.rest_moments = [ClusterMoments() for _ in ests]

    @classmethod
    def of_run(cls, ests, tables: dict[int, np.ndarray] | None, cluster: str | None):
        """``(pool, positions)`` for the poolable estimators of ``ests``, or ``(None, [])`` when fewer
        than two are (a single MIPS keeps its per-row path: ``--embedding-clusters K`` unchanged)."""
        if tables is None:
            return None, []
        idx = [i for i, e in enumerate(ests) if pools_cells(e) and _pool_k(e, tables) is not None]
        if len(idx) < 2:
            return None, []
        return cls([ests[i] for i in idx], tables, cluster), idx

    def add(self, cells: np.ndarray, y: np.ndarray, keys: np.ndarray | None = None) -> None:
        if self.rest is None:
            self.all = self.all.merge(CellSums.of(cells, y, self.m))
            return
        if len(keys) == 0:
            return
        one = ClusterStream.single_rows(keys)
        if one[1:-1].all():  # the usual log: all but the batch's edge rows are whole clusters (views, no copies)
            rest = np.r_[0, len(keys) - 1] if len(keys) > 1 else np.array([0])
            s1 = CellSums.of(cells[1:-1], y[1:-1], self.m)
        else:
            rest = np.flatnonzero(~one)
            s1 = CellSums.of(cells[one], y[one], self.m)
        cr, yr = cells[rest], y[rest]
        self.single = self.single.merge(s1)
        self.all = self.all.merge(s1).merge(CellSums.of(cr, yr, self.m))
        terms = []
        for f, sn in zip(self.f, self.sn, strict=True):
            w = f[cr]
            terms.append((None, w * yr, w if sn else None))
        self._merge_rest(self.rest.add(keys[rest], terms))

    def _merge_rest(self, totals) -> None:
        for i, cm in enumerate(cluster_moments_of_many(totals)):
            self.rest_moments[i] = self.rest_moments[i].merge(cm)

    def finish(self) -> list[tuple[Moments, ClusterMoments | None]]:
        if self.rest is not None:
            self._merge_rest(self.rest.flush())
        out = []
        for f, sn, rm in zip(self.f, self.sn, self.rest_moments, strict=True):
            cm = None
            if self.single is not None:
                cm = self.single.moments(f, sn)[1].merge(rm)
            out.append((self.all.moments(f, sn)[0], cm))
        return out


def _pool_k(est, tables: dict) -> int | None:
    """The K whose table ``est`` reads (``clusters=None``: the only one), or ``None``."""
    if est.clusters is None:
        return next(iter(tables)) if len(tables) == 1 else None
    return est.clusters if est.clusters in tables else None


EMBEDDING_ESTIMATORS: dict[str, type[OPEEstimator]] = {c.name: c for c in (MIPS, SNMIPS, OffCEM)}
ESTIMATORS.update(EMBEDDING_ESTIMATORS)  # registry entries: make_estimators finds them by name


def is_embedding(est) -> bool:
    return bool(getattr(est, "embedding", False))


__all__ = ["MIPS", "SNMIPS", "OffCEM", "EMBEDDING_ESTIMATORS", "is_embedding", "cluster_weight", "pools_cells",
           "CellSums", "CellPool"]
