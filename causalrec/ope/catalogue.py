"""Large catalogues: items represented by clusters of their text embeddings, and the policy
wrapper that gives the cluster weights of :mod:`causalrec.ope.mips` on every batch.

Pieces:

- :class:`Catalogue`: the item table (``item_key -> item_text``), checked (unique keys, no
  missing or blank text) and embedded once by a :class:`causalrec.features.TextEmbedder`
  (each unique text once, cached on disk);
- :func:`item_clusters`: clusters of the L2-normalised vectors (Ward's agglomerative tree for
  catalogues up to 5,000 distinct texts, k-means above); one assignment per candidate ``K``
  (:func:`cluster_grid`), nested for SLOPE's grid above 5,000 too (:func:`item_clusters_grid`:
  k-means at the largest ``K``, :func:`ward_merge_clusters` for the others);
- :class:`CataloguePolicy`: the target policy table plus, per ``K``, the target's and the
  logging policy's tables aggregated to clusters,
  ``p(e | x, pi) = sum_{a in e} pi(a | x, k)`` (a group-by of the sparse long tables, never a
  dense rows x items array). ``embedding_weights`` turns them into
  ``w~_i = p(e_i | x_i, pi_e) / p(e_i | x_i, pi_0)`` for the rows of one batch, which is what
  lets the same code run in memory, in blocks and streamed.

The logging table (``--logging-policy``) is the logging policy's full distribution in the
target's format (context-free, or keyed by ``request_id`` / ``row``, optionally per
position). Each batch checks that it gives every logged item a positive probability that
agrees with the log's propensity column (``|p_table - p| <= atol + rtol p``).

Without a logging table the cluster weight is the regression ``E[w | e, k]`` of the item
weight on the cluster (and position), fitted by a pass over the log (the mean weight per
cell; Saito & Joachims 2022, section 4.3, suggest a regression of ``w`` on ``(x, e)``; ours
ignores other context, which is exact for context-free policies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.readers import column_names, read_table
from causalrec.data.schema import LogSchema
from causalrec.data.validation import validate_log
from causalrec.errors import InputError
from causalrec.ope.lists import show_key
from causalrec.ope.policy import TablePolicy, resolve_target

PROPENSITY_ATOL = 1e-6
PROPENSITY_RTOL = 1e-3
#: candidate cluster counts for SLOPE (about x1.5 apart), capped by the catalogue and the log
CLUSTER_GRID = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)


@dataclass
class Catalogue:
    """Item table: unique keys and their texts."""

    keys: pd.Index
    texts: np.ndarray
    item_key: str = "item_id"
    item_text: str = "title"
    source: str = "table"
    _emb: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_table(cls, table, *, item_key: str = "item_id", item_text: str = "title") -> Catalogue:
        source = "<DataFrame>" if isinstance(table, pd.DataFrame) else str(table)
        df = table if isinstance(table, pd.DataFrame) else read_table(table)
        for col, opt in ((item_key, "--item-key"), (item_text, "--item-text")):
            if col not in df.columns:
                raise InputError(f"the item catalogue {source} has no column '{col}'; columns present: "
                                 f"{list(df.columns)[:10]}", column=col, fix=f"name the right column with {opt}")
        if len(df) == 0:
            raise InputError(f"the item catalogue {source} is empty", column=item_key, fix="check the file")
        keys = df[item_key]
        if keys.isna().any():
            raise InputError(f"{int(keys.isna().sum())} catalogue rows have no item key", column=item_key,
                             fix="give every catalogue row its item id")
        dup = keys.duplicated()
        if dup.any():
            raise InputError(f"{int(dup.sum())} item keys appear more than once in the catalogue (e.g. "
                             f"{show_key(keys[dup].iloc[0])})", column=item_key, fix="keep one row per item")
        text = df[item_text]
        blank = text.isna().to_numpy() | (text.astype(str).str.strip() == "").to_numpy()
        if blank.any():
            shown = ", ".join(show_key(v) for v in keys[blank].iloc[:5])
            raise InputError(f"{int(blank.sum())} catalogue items have no text (e.g. items {shown})",
                             column=item_text, fix="give every item a title/description (a placeholder such as "
                             "its category is better than nothing), or drop items that are never logged or targeted")
        return cls(pd.Index(keys.to_numpy()), text.astype(str).to_numpy(dtype=object), item_key, item_text, source)

    def __len__(self) -> int:
        return len(self.keys)

    def locate(self, values, what: str) -> np.ndarray:
        """Catalogue rows of ``values``; an error naming ``what`` when some are missing."""
        idx = np.asarray(self.keys.get_indexer(pd.Index(values)), dtype=np.int64)
        if (idx < 0).any():
            miss = pd.unique(np.asarray(values)[idx < 0])
            shown = ", ".join(show_key(v) for v in list(miss)[:5])
            raise InputError(
                f"{len(miss)} items of {what} are missing from the item catalogue {self.source} (e.g. {shown})",
                column=self.item_key, fix="add them (with their text) to the catalogue given by --items, or check "
                "that --item-key names the column holding the same ids as the log's item column")
        return idx

    def embeddings(self, embedder=None) -> np.ndarray:
        """``(n_items, dim)`` text vectors (computed once)."""
        if self._emb is None:
            if embedder is None:
                from causalrec.features import TextEmbedder

                embedder = TextEmbedder()
            emb = np.asarray(embedder.encode(list(self.texts)), dtype=np.float64)
            if emb.shape[0] != len(self):
                raise InputError("the embedder returned a wrong number of vectors", column="embedder",
                                 fix="return one vector per text")
            self._emb = emb
        return self._emb


def cluster_grid(n_distinct: int, n_rows: int | None = None) -> list[int]:
    """Candidate ``K`` (largest first: least bias, most variance, the order SLOPE walks):
    at most half the distinct texts and, with ``n_rows``, about 10 logged rows per cluster.

    Why not the item level itself (one cluster per text, i.e. IPS) as the least biased candidate:
    on 2,000-item development logs its standard error, from a few huge weights, was too small
    for the paired rule, which then stopped at IPS on some logs; on 100 items, where IPS is
    competitive, it did not help either. ``reports/ope_catalogue.md`` ("Where MIPS's error comes
    from") separates the cost of the clustering and of this choice from MIPS's own error."""
    cap = max(2, n_distinct // 2)
    if n_rows is not None:
        cap = min(cap, max(2, n_rows // 10))
    grid = [k for k in CLUSTER_GRID if k <= cap] or [2]
    return sorted(grid, reverse=True)


WARD_MAX_ITEMS = 5_000


def item_clusters(emb: np.ndarray, k: int, seed: int = 0, method: str = "auto") -> np.ndarray:
    """Cluster labels (0..k-1) of the rows of ``emb``.

    ``method="ward"``: agglomerative clustering with Ward's criterion (scipy), cut at ``k``
    clusters; one tree serves every ``k``, so the candidates are nested (fewer clusters only
    merge more), and on topic-worded titles it recovered the topics better than k-means
    (adjusted Rand 1.0 vs 0.89 at the true 20 topics of the simulator). Quadratic memory, so
    ``"auto"`` uses it up to ``WARD_MAX_ITEMS`` distinct texts and scikit-learn's k-means
    (k-means++, seeded, one thread: BLAS threads slowed it 15x on a busy 2-core machine) above
    (for one ``k``, ``"kmeans-ward"`` is that k-means: :func:`item_clusters_grid`).
    """
    return item_clusters_grid(emb, [k], seed, method)[int(k)]


#: distinct vectors per cluster in the sample that the finest k-means of ``"kmeans-ward"`` is fitted on
FINE_SAMPLE_PER_CLUSTER = 20


def item_clusters_grid(emb: np.ndarray, ks, seed: int = 0, method: str = "auto",
                       distinct: tuple[np.ndarray, np.ndarray] | None = None) -> dict[int, np.ndarray]:
    """Cluster labels for every ``k`` of ``ks``, with the distinct vectors found once (``np.unique``
    over the catalogue's rows cost as much as a small k-means; ``distinct``: its ``(uniq, inverse)``
    when the caller has it) and each ``k`` clustered on them.

    ``method``: ``"ward"`` (one tree, cut at each ``k``), ``"kmeans"`` (one k-means per ``k``,
    sharing the k-means++ seeds: :func:`_kmeans_seeds`), or ``"kmeans-ward"`` for a grid of
    several ``k``: the finest clusters, ``k_max = max(ks)``, by k-means (scikit-learn, k-means++,
    seeded) fitted on a uniform sample of ``FINE_SAMPLE_PER_CLUSTER * k_max`` distinct vectors
    (all of them when fewer), every vector then given its nearest centre; the smaller ``k`` by
    Ward's merging of those clusters, pair by pair (:func:`ward_merge_clusters`), so the candidates
    are nested, as with ``"ward"``. With one ``k`` it is ``"kmeans"`` on all vectors (the fixed
    ``--embedding-clusters K`` clusters). ``"auto"``: ``"ward"`` up to ``WARD_MAX_ITEMS`` distinct
    vectors, ``"kmeans-ward"`` above.

    Why ``"kmeans-ward"`` for the SLOPE grid: one k-means per ``k`` (13 on 10,000 MiniLM vectors)
    took 2.5-3 s of a benchmark whose IPS pass takes 2 s (``reports/benchmarks.md``, "Large
    catalogues"), and k-means at ``k = 128`` on all 10,000 alone about 1 s of CPU; on 2,560 sampled
    vectors it takes about 0.2 s, and merging 128 centroids milliseconds. This is k-means
    pre-clustering followed by Ward's agglomeration of the centres, the usual two-stage
    hierarchical clustering of large data sets: the merge cost of two clusters,
    ``n_a n_b / (n_a + n_b) ||mu_a - mu_b||^2`` (the rise in the within-cluster sum of squares),
    depends only on their sizes and centroids (computed on all their vectors), so it is Ward's
    tree grown from the k-means partition instead of from single vectors. On the 10,000-item
    benchmark catalogue (20 topics) its 20-cluster cut is the topics exactly (adjusted Rand 1.0;
    k-means at ``k = 20`` on all vectors: 0.935), and every cut from 20 up is topic-pure.
    """
    uniq, inv = distinct if distinct is not None else np.unique(emb, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    ks = [int(k) for k in ks]
    if method == "auto":
        method = "ward" if uniq.shape[0] <= WARD_MAX_ITEMS else "kmeans-ward"
    if method == "kmeans-ward" and len(set(ks)) == 1:
        method = "kmeans"  # one K: plain k-means, the fixed-K clusters
    if method == "kmeans-ward":
        fine = _sampled_kmeans(uniq, max(ks), seed)  # per distinct vector, 0..m-1
        m = int(fine.max()) + 1
        cuts = ward_merge_clusters(uniq, fine, [k for k in ks if k < m])
        return {k: (np.zeros(inv.shape[0], dtype=np.int64) if k <= 1 else fine[inv] if k >= m else cuts[k][inv])
                for k in ks}
    if method not in ("ward", "kmeans"):
        raise InputError(f"unknown clustering method {method!r}", column="method",
                         fix="use 'auto', 'ward', 'kmeans' or 'kmeans-ward'")
    seeds = _kmeans_seeds(uniq, ks, seed) if method == "kmeans" else {}
    return {k: _cluster_distinct(uniq, inv, k, seed, method, seeds) for k in ks}


def fine_sample(n: int, k: int, seed: int) -> np.ndarray:
    """Sorted indices of the ``min(n, FINE_SAMPLE_PER_CLUSTER * k)`` distinct vectors that the finest
    k-means of ``"kmeans-ward"`` is fitted on (uniform without replacement, seeded)."""
    size = min(n, FINE_SAMPLE_PER_CLUSTER * k)
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _sampled_kmeans(uniq: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Labels 0..m-1 (``m <= k``, empty clusters dropped) of every distinct vector: the nearest
    centre of ``KMeans(k, n_init=1, random_state=seed)`` fitted on :func:`fine_sample`."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    x = uniq.astype(np.float32)
    k = int(min(k, x.shape[0]))
    idx = fine_sample(x.shape[0], k, seed)
    with threadpool_limits(1):
        km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(x[idx])
        lab = km.predict(x) if idx.size < x.shape[0] else km.labels_
    return np.unique(lab, return_inverse=True)[1].reshape(-1).astype(np.int64)


def ward_merge_clusters(x: np.ndarray, labels: np.ndarray, ks) -> dict[int, np.ndarray]:
    """Ward's agglomeration of the clusters ``labels`` (0..m-1, none empty) of the rows of ``x``:
    ``{k: labels}`` for every ``1 < k < m`` of ``ks``, each cluster a union of given ones (nested cuts).

    From the clusters' sizes ``n`` and centroids ``mu`` (means of their rows, float64), each step
    merges the pair with the smallest rise in the within-cluster sum of squares,
    ``n_a n_b / (n_a + n_b) ||mu_a - mu_b||^2`` (ties: the first pair in row-major order), and
    recomputes the merged cluster's costs from its new size and centroid (Ward's criterion itself,
    no Lance-Williams recurrence). ``m - 1`` steps of ``O(m d)`` work: milliseconds for the
    ``m = 128`` clusters of the SLOPE grid. It is the cut of Ward's tree on the rows of ``x`` with
    every row moved to its cluster's centroid (the tests compare it with scipy's). A cut's labels
    are numbered in the order of their smallest given cluster.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    m = int(labels.max()) + 1 if labels.size else 0
    want = sorted({int(k) for k in ks if 1 < int(k) < m}, reverse=True)
    if not want:
        return {}
    size = np.bincount(labels, minlength=m).astype(np.float64)
    if (size == 0).any():
        raise InputError("a cluster to merge has no rows", column="labels", fix="number the clusters 0..m-1")
    order = np.argsort(labels, kind="stable")  # clusters' rows together: one reduceat (np.add.at is slow)
    cent = np.add.reduceat(np.asarray(x, dtype=np.float64)[order], np.r_[0, np.cumsum(size[:-1])].astype(np.int64))
    cent /= size[:, None]
    sq = np.sum(cent ** 2, axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (cent @ cent.T), 0.0)  # no m x m x d array
    cost = size[:, None] * size[None, :] / (size[:, None] + size[None, :]) * dist
    np.fill_diagonal(cost, np.inf)
    active = np.ones(m, dtype=bool)
    group = np.arange(m)  # given cluster -> the merged cluster holding it (named by its smallest member)
    out: dict[int, np.ndarray] = {}
    for n_now in range(m, want[-1], -1):
        if n_now in want:
            out[n_now] = group.copy()
        a, b = sorted(divmod(int(np.argmin(cost)), m))
        cent[a] = (size[a] * cent[a] + size[b] * cent[b]) / (size[a] + size[b])
        size[a] += size[b]
        group[group == b] = a
        active[b] = False
        cost[b, :] = cost[:, b] = np.inf
        other = active.copy()
        other[a] = False
        d = np.sum((cent[other] - cent[a]) ** 2, axis=1)
        cost[a, other] = cost[other, a] = size[a] * size[other] / (size[a] + size[other]) * d
    out[want[-1]] = group
    return {k: np.unique(g, return_inverse=True)[1].reshape(-1)[labels].astype(np.int64) for k, g in out.items()}


def _trials(k: int) -> int:
    """k-means++'s candidates per step for ``k`` centres (scikit-learn's default, ``2 + floor(log k)``)."""
    return 2 + int(np.log(k))


def _kmeans_seeds(uniq: np.ndarray, ks, seed: int) -> dict[int, np.ndarray]:
    """k-means++ seed indices shared across the grid: ``{trials: indices}``, one run per number of
    trials, for the largest ``k`` that uses it.

    Why exact: scikit-learn's k-means++ (``KMeans(init="k-means++", n_init=1, random_state=seed)``)
    draws the first centre, then ``trials`` uniforms per further centre from one generator, and each
    step depends only on the centres already chosen; so for ``k < k'`` with the same ``trials`` the
    first ``k`` seeds of the ``k'`` run are the ``k`` run's seeds. It is run here as ``KMeans.fit``
    runs it (float32, centred on the column means, the same generator and weights), and the
    seeds are handed to ``KMeans`` as its initial centres (which it centres the same way), so the
    clusters are those of ``KMeans(n_clusters=k, n_init=1, random_state=seed)``. On the grid 2..128
    this halves the seeding work (200 seeding steps instead of 443); the test suite checks the labels
    against scikit-learn's own runs."""
    from sklearn.cluster import kmeans_plusplus
    from threadpoolctl import threadpool_limits

    n = uniq.shape[0]
    top: dict[int, int] = {}
    for k in ks:
        k = int(min(k, n))
        if k > 1:
            top[_trials(k)] = max(top.get(_trials(k), 0), k)
    if not top:
        return {}
    x = uniq.astype(np.float32)
    x = x - x.mean(axis=0)  # KMeans.fit's centring (X -= X.mean(axis=0)), so the distances are its own
    with threadpool_limits(1):
        return {t: kmeans_plusplus(x, k, random_state=seed, n_local_trials=t)[1] for t, k in top.items()}


def _cluster_distinct(uniq: np.ndarray, inv: np.ndarray, k: int, seed: int, method: str,
                      seeds: dict | None = None) -> np.ndarray:
    """Labels of the catalogue rows (``inv``: row -> distinct vector) for ``k`` clusters of ``uniq``
    (k-means from the shared k-means++ ``seeds`` of :func:`_kmeans_seeds` when given)."""
    k = int(min(k, uniq.shape[0]))
    if k <= 1:
        return np.zeros(inv.shape[0], dtype=np.int64)
    if method == "ward":
        from scipy.cluster.hierarchy import fcluster

        lab = fcluster(_ward_tree(uniq), k, criterion="maxclust") - 1
        _, lab = np.unique(lab, return_inverse=True)
        return lab.astype(np.int64).reshape(-1)[inv]
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    x = uniq.astype(np.float32)
    idx = (seeds or {}).get(_trials(k))
    init = x[idx[:k]] if idx is not None else "k-means++"
    with threadpool_limits(1):
        km = KMeans(n_clusters=k, init=init, n_init=1, random_state=seed).fit(x)
    return km.labels_.astype(np.int64)[inv]


_TREES: dict = {}


def _ward_tree(uniq: np.ndarray):
    from scipy.cluster.hierarchy import linkage

    key = (uniq.shape, hash(uniq.tobytes()))
    if key not in _TREES:
        _TREES.clear()  # one catalogue at a time
        import warnings

        with warnings.catch_warnings():  # one-hot or very regular vectors look like a distance matrix to scipy
            warnings.simplefilter("ignore")
            _TREES[key] = linkage(uniq.astype(np.float64), "ward")
    return _TREES[key]


def _cluster_table(pol: TablePolicy, clusters_of_items: np.ndarray, schema: LogSchema) -> TablePolicy:
    """The policy aggregated to clusters: ``item_id`` becomes the cluster, probabilities summed."""
    t = pol._validated
    codes = pol.vocab.encode(t["item_id"].to_numpy())
    agg = pd.DataFrame({c: t[c].to_numpy() for c in t.columns if c not in ("item_id", "prob")})
    agg["item_id"] = clusters_of_items[codes]
    agg["prob"] = t["prob"].to_numpy()
    keys = [c for c in agg.columns if c != "prob"]
    agg = agg.groupby(keys, sort=False, as_index=False)["prob"].sum()
    return TablePolicy(agg, schema=schema, source=f"{pol.source} (by cluster)")


def _cluster_sums(pol: TablePolicy, cmaps: dict[int, np.ndarray], sizes: dict[int, int],
                  schema: LogSchema) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{K: (S, present)}`` for a context-free table: ``S[c, q]``, the summed probability of the
    table's items of cluster ``c`` (``cmaps[K]``: cluster per item code, ``sizes[K]`` clusters) at
    position ``q``, and ``present[c]``, whether the table has an item in ``c``.

    One groupby over every K at once instead of one cluster table per K (26 tables took 0.4 s
    under SLOPE); pandas sums each group's rows in table order whatever the other groups, so the
    sums are :func:`_cluster_table`'s entries bit for bit (the tests compare the two paths exactly)."""
    t = pol._validated
    codes = pol.vocab.encode(t["item_id"].to_numpy())
    n, ks = len(t), list(cmaps)
    pos = (t["position"].to_numpy().astype(np.int64) - schema.position_base if pol.positional
           else np.zeros(n, dtype=np.int64))
    frame = pd.DataFrame({"k": np.repeat(np.arange(len(ks)), n), "c": np.concatenate([cmaps[k][codes] for k in ks]),
                          "q": np.tile(pos, len(ks)), "prob": np.tile(t["prob"].to_numpy(), len(ks))})
    g = frame.groupby(["k", "c", "q"], sort=False)["prob"].sum()
    kk, cc, qq = (g.index.get_level_values(i).to_numpy() for i in range(3))
    val = g.to_numpy(dtype=np.float64)
    out = {}
    for j, k in enumerate(ks):
        sel = kk == j
        tab, present = np.zeros((sizes[k], pol.n_pos)), np.zeros(sizes[k], dtype=bool)
        tab[cc[sel], qq[sel]] = val[sel]
        present[cc[sel]] = True
        out[k] = (tab, present)
    return out


class CataloguePolicy:
    """A target table plus cluster-level tables of the target and logging policies (see module docstring)."""

    def __init__(self, target: TablePolicy, catalogue: Catalogue, labels: dict[int, np.ndarray], *,
                 schema: LogSchema, logging: TablePolicy | None = None,
                 regression: dict[int, np.ndarray] | None = None, info: dict | None = None,
                 atol: float = PROPENSITY_ATOL, rtol: float = PROPENSITY_RTOL):
        self.target, self.catalogue, self.logging = target, catalogue, logging
        self.schema, self.atol, self.rtol = schema, atol, rtol
        self.info = info or {}
        t_rows = catalogue.locate(target.vocab.index.to_numpy(), "the target policy")
        self.t_cluster = {k: lab[t_rows] for k, lab in labels.items()}  # cluster per target item code
        self.n_clusters = {k: int(lab.max()) + 1 if lab.size else 1 for k, lab in labels.items()}
        self.l_cluster = {}
        if logging is not None:
            l_rows = catalogue.locate(logging.vocab.index.to_numpy(), "the logging policy table")
            self.l_cluster = {k: lab[l_rows] for k, lab in labels.items()}  # cluster per logging item code
        self.regression = regression  # K -> (K, n_pos) mean item weight per cluster x position
        self._w_lookup = self._weight_lookup()

    @cached_property
    def t_tables(self) -> dict[int, TablePolicy]:
        """The target aggregated to each K's clusters (built when the per-row path first needs them)."""
        return {k: _cluster_table(self.target, c, self.schema) for k, c in self.t_cluster.items()}

    @cached_property
    def l_tables(self) -> dict[int, TablePolicy]:
        """The logging table aggregated to each K's clusters (empty without one)."""
        return {k: _cluster_table(self.logging, c, self.schema) for k, c in self.l_cluster.items()}

    def _weight_lookup(self):
        """``(P, Ks, W)`` with ``W[j, a * P + k] = p(e_K(a) | k, pi_e) / p(e_K(a) | k, pi_0)`` for every
        target item ``a``, position ``k < P`` and candidate ``K = Ks[j]``, when both tables are
        context-free (``None`` otherwise: keyed tables need the per-row bind).

        Why: a context-free cluster weight depends on the row only through (item, position), so
        the catalogue's (items x positions) weights are computed once per ``K`` and every batch
        takes all candidates' weights with one gather, instead of encoding the batch's clusters
        and binding two tables per candidate (13 candidates under SLOPE). The same divisions of the
        same sums as the per-row path's cluster tables (:func:`_cluster_sums`), so the weights are
        bit-identical. Entries of
        clusters the logging table lacks are NaN: no logged row can reach them (its item, hence its
        cluster, is in the logging table, which ``check_logging`` verifies on every batch).
        """
        lp = self.logging
        if lp is None or self.target.row_key is not None or lp.row_key is not None or not self.t_cluster:
            return None
        tp = self.target
        n_pos = max(tp.n_pos if tp.positional else 1, lp.n_pos if lp.positional else 1)
        ks = list(self.t_cluster)
        t_sums = _cluster_sums(tp, self.t_cluster, self.n_clusters, self.schema)
        l_sums = _cluster_sums(lp, self.l_cluster, self.n_clusters, self.schema)
        table = np.full((len(ks), len(tp.vocab) * n_pos), np.nan)
        for j, k in enumerate(ks):
            cmap, (tsum, _), (lsum, present) = self.t_cluster[k], t_sums[k], l_sums[k]
            ok = present[cmap]
            for q in range(n_pos):
                num = tsum[cmap, min(q, tp.n_pos - 1) if tp.positional else 0]
                den = np.full(cmap.size, np.nan)
                den[ok] = lsum[cmap[ok], min(q, lp.n_pos - 1) if lp.positional else 0]
                with np.errstate(divide="ignore", invalid="ignore"):
                    table[j, q::n_pos] = num / den
        return n_pos, ks, table

    def cell_weights(self) -> dict[int, np.ndarray] | None:
        """``{K: W_K}``, the cluster weight of every (item, position) cell (index
        :meth:`weight_cells`), when both tables are context-free; ``None`` otherwise."""
        if self._w_lookup is None:
            return None
        _, ks, table = self._w_lookup
        return {k: table[j] for j, k in enumerate(ks)}

    def weight_cells(self, items: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Cell index ``item * P + position`` of each row into :meth:`cell_weights`' tables."""
        n_pos = self._w_lookup[0]
        return items * n_pos + pos if n_pos > 1 else items

    # -- the target policy's interface (delegated) --------------------------------------
    @property
    def vocab(self):
        return self.target.vocab

    @property
    def positional(self):
        return self.target.positional

    @property
    def row_key(self):
        return self.target.row_key

    @property
    def kind(self):
        return self.target.kind

    def needs_request_id(self) -> bool:
        return self.target.needs_request_id() or (self.logging is not None and self.logging.needs_request_id())

    def describe(self) -> dict:
        d = self.target.describe()
        d["catalogue"] = dict(self.info)
        return d

    def bind(self, batch: pd.DataFrame, items: np.ndarray, pos: np.ndarray, row_offset: int):
        if (items < 0).any():  # name the catalogue first when the item is unknown everywhere
            self.catalogue.locate(batch["item_id"].to_numpy()[items < 0], "the log")
        return self.target.bind(batch, items, pos, row_offset)

    # -- cluster weights ------------------------------------------------------------------
    def check_logging(self, batch: pd.DataFrame, pos: np.ndarray, row_offset: int, p: np.ndarray) -> None:
        """The logging table must give each logged item a positive probability equal to its propensity."""
        lp = self.logging
        codes = lp.vocab.encode(batch["item_id"].to_numpy())
        if (codes < 0).any():
            miss = pd.unique(batch["item_id"].to_numpy()[codes < 0])
            raise InputError(f"{len(miss)} logged items are missing from the logging policy table {lp.source} "
                             f"(e.g. {', '.join(show_key(v) for v in list(miss)[:5])}, rows from {row_offset} on)",
                             column="item_id", fix="the logging table must give the logging policy's full "
                             "distribution, including every item it logged")
        try:
            p0 = lp.bind(batch, codes, pos, row_offset).logged
        except InputError as exc:  # the table's own check words it for a target: say which table it is
            msg = str(exc).split("\n")[0].split("': ", 1)[-1].replace("the target policy", "the logging policy table")
            raise InputError(msg, column=exc.column, fix="--logging-policy must give the logging policy's "
                             "distribution for every logged request/row (and position)") from None
        zero = p0 <= 0
        if zero.any():
            i = int(np.flatnonzero(zero)[0])
            raise InputError(
                f"the logging policy table gives the logged item {show_key(batch['item_id'].iloc[i])} of row "
                f"{row_offset + i} probability 0 ({int(zero.sum())} rows in this batch): the logging policy "
                "could not have shown it", column="prob",
                fix="check that --logging-policy is the policy that produced this log (and its keys/positions)")
        bad = np.abs(p0 - p) > self.atol + self.rtol * p
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"the logging policy table and the propensity column '{self.schema.propensity}' disagree on "
                f"{int(bad.sum())} rows of this batch (e.g. row {row_offset + i}: table {p0[i]:.6g}, column "
                f"{p[i]:.6g}; tolerance {self.atol:g} + {self.rtol:g} p)", column=self.schema.propensity,
                fix="pass the logging policy that produced the log, or fix the propensity column")

    def embedding_weights(self, batch: pd.DataFrame, items: np.ndarray, pos: np.ndarray, row_offset: int,
                          p: np.ndarray) -> dict[int, np.ndarray]:
        """``{K: w~}`` for the rows of one batch (``items``: target codes, ``pos``: 0-based positions)."""
        if self.logging is not None:
            self.check_logging(batch, pos, row_offset, p)
        if self._w_lookup is not None:  # context-free tables: each candidate's weight is a gather
            _, ks, table = self._w_lookup
            return _Gathered(ks, table, self.weight_cells(items, pos))
        out = {}
        for k, cmap in self.t_cluster.items():
            e = cmap[items]
            tt = self.t_tables[k]
            num = tt.bind(batch, tt.vocab.encode(e), pos, row_offset).logged
            if self.logging is not None:
                lt = self.l_tables[k]
                den = lt.bind(batch, lt.vocab.encode(e), pos, row_offset).logged
                out[k] = num / den  # den >= p0(logged item) > 0, checked above
            else:
                tab = self.regression[k]
                out[k] = tab[e, np.minimum(pos, tab.shape[1] - 1)]
        return out


class _Gathered(Mapping):
    """``{K: w~}`` of one batch, each K's weights gathered from its row of the per-cell table when
    first read (estimators pooled per cell, :class:`causalrec.ope.mips.CellSums`, never read theirs)."""

    def __init__(self, ks, table: np.ndarray, cells: np.ndarray):
        self._row = {k: j for j, k in enumerate(ks)}
        self._table, self._cells, self._done = table, cells, {}

    def __getitem__(self, k):
        if k not in self._done:
            self._done[k] = np.take(self._table[self._row[k]], self._cells)
        return self._done[k]

    def __iter__(self):
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)


def prepare_catalogue(logs, target, *, schema: LogSchema, items, item_key: str = "item_id",
                      item_text: str = "title", logging_policy=None, embedding_clusters=None, embedder=None,
                      seed: int = 0, propensity_tol: tuple[float, float] | None = None) -> CataloguePolicy:
    """Read, check, embed and cluster the catalogue; wrap the target (see :class:`CataloguePolicy`).

    ``embedding_clusters``: an int fixes ``K``; ``None`` (or ``"slope"``) computes every
    ``K`` of :func:`cluster_grid` for SLOPE to choose from; a list gives the candidates.
    ``embedder``: an object with ``encode(texts) -> (n, dim)``; default the packaged MiniLM.
    """
    tpol = resolve_target(target, schema=schema)
    if not isinstance(tpol, TablePolicy):
        raise InputError("the cluster estimators (mips, snmips, offcem) need the target as a table",
                         column="target", fix="pass the target policy as a long table item_id, [position], prob "
                         "(optionally keyed by request_id or row)")
    cat = items if isinstance(items, Catalogue) else Catalogue.from_table(items, item_key=item_key, item_text=item_text)
    lpol = None
    if logging_policy is not None:
        lpol = logging_policy if isinstance(logging_policy, TablePolicy) else TablePolicy(
            logging_policy if isinstance(logging_policy, pd.DataFrame) else read_table(logging_policy),
            schema=schema, source="<DataFrame>" if isinstance(logging_policy, pd.DataFrame) else str(logging_policy))
    emb = cat.embeddings(embedder)
    distinct = np.unique(emb, axis=0, return_inverse=True)  # once, for the grid and the clustering
    n_distinct = int(distinct[0].shape[0])
    n_rows = len(logs) if isinstance(logs, pd.DataFrame) else _num_rows(logs)
    if embedding_clusters is None or (isinstance(embedding_clusters, str) and embedding_clusters.lower() == "slope"):
        grid, how = cluster_grid(n_distinct, n_rows), "slope"
    elif isinstance(embedding_clusters, (list, tuple)):
        grid, how = sorted({int(k) for k in embedding_clusters}, reverse=True), "slope"
    else:
        grid, how = [int(embedding_clusters)], "fixed"
    if any(k < 1 for k in grid):
        raise InputError(f"the number of clusters must be >= 1, got {grid}", column="embedding_clusters",
                         fix="e.g. --embedding-clusters 32, or leave it out to let SLOPE choose")
    labels = item_clusters_grid(emb, grid, seed, distinct=distinct)
    info: dict[str, Any] = {
        "source": cat.source, "n_items": len(cat), "item_key": item_key, "item_text": item_text,
        "embedder": repr(embedder) if embedder is not None else "TextEmbedder(all-MiniLM-L6-v2)",
        "embedding_dim": int(emb.shape[1]), "clustering": ("ward (scipy)" if n_distinct <= WARD_MAX_ITEMS else
                                                         f"k-means (scikit-learn), seed {seed}" if len(grid) == 1 else
                                                         f"k-means (scikit-learn), seed {seed}, at K = {max(grid)} "
                                                         f"on {min(n_distinct, FINE_SAMPLE_PER_CLUSTER * max(grid))} "
                                                         "sampled vectors, all assigned; smaller K by Ward's "
                                                         "merging of its clusters"),
        "cluster_candidates": grid, "cluster_choice": how,
        "logging_policy": lpol.source if lpol is not None else None,
        "cluster_weights": ("exact: p(e | x, pi_e) / p(e | x, pi_0) from the logging policy table" if lpol is not None
                            else "estimated: E[w | e, position], the mean item weight per cluster and position over "
                            "the log (regression as in Saito & Joachims 2022; no logging table was given)"),
    }
    regression = None
    if lpol is None:
        regression = _fit_regression(logs, tpol, cat, labels, schema)
    atol, rtol = propensity_tol or (PROPENSITY_ATOL, PROPENSITY_RTOL)
    return CataloguePolicy(tpol, cat, labels, schema=schema, logging=lpol, regression=regression, info=info,
                           atol=atol, rtol=rtol)


def _num_rows(logs) -> int | None:
    from causalrec.data.readers import parquet_num_rows

    try:
        return parquet_num_rows(logs)
    except Exception:  # CSV: unknown without reading
        return None


def _fit_regression(logs, tpol: TablePolicy, cat: Catalogue, labels: dict, schema: LogSchema) -> dict:
    """Mean item weight ``w = pi_e / p`` per (cluster, position) over the whole log, per ``K``."""
    avail = column_names(logs)
    roles = ["item_id", "propensity"] + [r for r in ("position", "request_id")
                                          if getattr(schema, r) and getattr(schema, r) in avail]
    cols = [getattr(schema, r) for r in roles]
    df = logs[cols] if isinstance(logs, pd.DataFrame) else read_table(logs, columns=cols)
    canon = validate_log(df, schema, require=roles, command="ope")
    pos = canon["position"].to_numpy(dtype=np.int64) if "position" in canon.columns else np.zeros(len(canon), np.int64)
    raw = canon["item_id"].to_numpy()
    codes = tpol.vocab.encode(raw)
    if (codes < 0).any():
        cat.locate(raw[codes < 0], "the log")
    w = tpol.bind(canon, codes, pos, 0).logged / canon["propensity"].to_numpy(dtype=np.float64)
    t_rows = cat.locate(tpol.vocab.index.to_numpy(), "the target policy")
    n_pos = int(pos.max()) + 1 if pos.size else 1
    out = {}
    for k, lab in labels.items():
        e = lab[t_rows][codes]
        kk = int(lab.max()) + 1
        cell = e * n_pos + pos
        s = np.bincount(cell, weights=w, minlength=kk * n_pos)
        c = np.bincount(cell, minlength=kk * n_pos)
        with np.errstate(invalid="ignore", divide="ignore"):
            tab = np.where(c > 0, s / np.maximum(c, 1), 0.0)
        out[k] = tab.reshape(kk, n_pos)
    return out


def is_catalogue_request(estimators) -> bool:
    from causalrec.ope.mips import is_embedding

    return any(is_embedding(e) or str(e).strip().lower() in ("mips", "snmips", "offcem") for e in estimators)


__all__ = ["Catalogue", "CataloguePolicy", "prepare_catalogue", "item_clusters", "item_clusters_grid",
           "cluster_grid", "ward_merge_clusters"]
