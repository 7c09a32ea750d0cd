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
from causalrec.ope.estimators import ESTIMATORS, OPEArrays, OPEEstimator, _clipped


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


EMBEDDING_ESTIMATORS: dict[str, type[OPEEstimator]] = {c.name: c for c in (MIPS, SNMIPS, OffCEM)}
ESTIMATORS.update(EMBEDDING_ESTIMATORS)  # registry entries: make_estimators finds them by name


def is_embedding(est) -> bool:
    return bool(getattr(est, "embedding", False))


__all__ = ["MIPS", "SNMIPS", "OffCEM", "EMBEDDING_ESTIMATORS", "is_embedding", "cluster_weight"]
