"""Off-policy evaluation of a Spark DataFrame: the streaming arithmetic, one partition per batch stream.

``causalrec.ope.evaluate(spark_df, ...)`` lands here after the in-process option checks.
Each partition runs the in-process code of :mod:`causalrec.ope.evaluation` on its Arrow
batches (validation, policy binding, outcome-model prediction, each estimator's per-row
terms ``(c, a, b)``) and returns the mergeable statistics the streaming path keeps:
per estimator :class:`~causalrec.ope.estimators.Moments`, the
:class:`~causalrec.ope.weights.WeightStats` and the outcome's moments. The driver merges
them and finishes with ``evaluation._finish``, so estimate, SE and diagnostics are those of
the in-process streaming path (weight quantiles from the same histogram).

Passes (each a Spark job over the log's needed columns only):

0. row counts per partition, so every partition knows its global row numbers (folds
   and row-keyed policies; see :mod:`causalrec.engines.spark`);
1. the outcome model. The default cell-mean model: outcome sums and counts per (fold,
   item, position) from every partition, added on the driver (fitting is additive). A
   scikit-learn model (:class:`~causalrec.ope.outcome.SklearnOutcome`): every partition
   returns the columns the model reads (covariates, item code, position, outcome, fold)
   of its rows, the driver stacks them in row order and calls the in-process
   ``partial_fit`` (one fold model per fold, each fitted on the other folds' rows, by
   :func:`causalrec.models.crossfit.cross_fit`). Above ``fit_rows`` rows the partitions
   return a seeded sample instead (:func:`causalrec.models.folds.row_hash_sample`, rate
   ``fit_rows / n``, independent of the fold hash), so every fold is sampled at the same
   rate and each fold model sees the sampled rows of the other folds (said in
   ``config["spark"]["outcome_fit"]`` and a warning). At or below ``fit_rows`` the fold models are the in-process ones, fitted on the same rows in the
   same order;
2. the per-row terms and their moments, with the fitted model broadcast to the executors
   (it predicts there, the in-process ``predict`` on each batch).

Clusters (``cluster=COL``, by default the request column): a cluster may span partitions,
so each partition emits, per cluster it holds, the partial totals ``(C, N, A, B)`` of
every estimator as Spark rows; ``groupBy(cluster).sum`` completes them (the only shuffle,
one row per cluster), and a last job reduces the complete totals to
:class:`~causalrec.ope.clusters.ClusterMoments` per partition. The driver never sees a
row or a cluster, only moments.

Not on Spark (raise ``InputError``): the bootstrap and the slate estimators.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from causalrec.engines.spark import (
    Shipped,
    empty_frame,
    grouped_totals,
    partition_offsets,
    run_partitions,
    spark_type,
)
from causalrec.errors import InputError
from causalrec.inference import check_clusters


def _target_frame(target):
    from causalrec.engines import is_spark_dataframe

    if is_spark_dataframe(target):  # a policy table in Spark: one Arrow transfer, then shipped with the tasks
        return target.toPandas()
    return target


def evaluate_spark(sdf, target, *, schema, ests, model, ci_level: float, seed: int, n_folds: int, config: dict,
                   cluster: str | None, fit_rows: int = 1_000_000):
    """The Spark engine behind :func:`causalrec.ope.evaluate` (see the module docstring)."""
    from causalrec.ope import evaluation as ev
    from causalrec.ope.clusters import ClusterMoments
    from causalrec.ope.estimators import Moments, _dense
    from causalrec.ope.outcome import CellMeanOutcome, SklearnOutcome
    from causalrec.ope.policy import resolve_target
    from causalrec.ope.weights import WeightStats

    probe = empty_frame(sdf)
    policy = resolve_target(_target_frame(target), schema=schema)
    cols, roles = ev._columns(probe, schema, policy.needs_request_id(), model)
    cols = ev._with_cluster(cols, probe, cluster)
    keep = ev._context_columns(cols, schema, model)
    narrow = sdf.select(*cols)
    offsets, n_total, collected = partition_offsets(narrow)
    if n_total == 0:
        raise InputError("the log has no rows", column=config["logs"], fix="check the table")

    def batches(pid, it):
        off = offsets.get(pid, 0)
        for b in it:
            if len(b) == 0:
                continue
            canon = ev._validate(b, schema, roles, keep)
            keys = b[cluster].to_numpy() if cluster is not None else None
            if keys is not None:
                check_clusters(cluster, n_missing=int(pd.isna(keys).sum()))
            yield off, canon, keys
            off += len(canon)

    passes = 1
    fit_info = fit_warning = None
    if model is not None:
        model.begin(policy.vocab, schema)
        if isinstance(model, CellMeanOutcome):
            passes = 2
            fresh = copy.deepcopy(model)

            def fit_part(pid, it):
                m = copy.deepcopy(fresh)
                for off, canon, keys in batches(pid, it):
                    ev._fit_batch(m, canon, policy, off, ev._inputs(canon, policy, off, n_folds, seed, True, keys))
                return m._s, m._n, m._ss

            res = run_partitions(narrow, fit_part)
            collected += res.nbytes
            for s, c, ss in res.values:
                model.merge_sums(s, c, ss)
        elif isinstance(model, SklearnOutcome):
            passes = 2
            nbytes, fit_info, fit_warning = _fit_on_driver(narrow, model, batches, policy, n_total, fit_rows,
                                                           n_folds, seed)
            collected += nbytes
        model.finalize()
    ship = Shipped(sdf, model)  # the fitted model goes to each executor once, not with every task
    has_model = model is not None  # (the closure below must not capture the model itself)

    n_est = len(ests)
    clip = config["clip"]

    def terms_part(pid, it, with_keys: bool = False):
        """Generator: yields ``(keys, dense terms)`` per batch when ``with_keys``; returns the moments."""
        moments = [Moments() for _ in ests]
        wstats = WeightStats(clip)
        y_mom = Moments()
        n = 0
        fitted = ship.value()
        for off, canon, keys in batches(pid, it):
            inputs = ev._inputs(canon, policy, off, n_folds, seed, has_model, keys)
            arrays, p = ev._batch_arrays(canon, policy, fitted, off, inputs)
            wstats.update(arrays.w, p)
            y_mom = y_mom.merge(Moments.of_terms(None, arrays.y, None))
            terms = [e.terms_checked(arrays) for e in ests]
            for i, t in enumerate(terms):
                moments[i] = moments[i].merge(Moments.of_terms(*t))
            if with_keys:
                yield keys, [_dense(*t) for t in terms]
            n += arrays.n
        return {"moments": moments, "wstats": wstats, "y": y_mom, "n": n}

    try:
        if cluster is None:
            res = run_partitions(narrow, lambda pid, it: _drain(terms_part(pid, it)))
            parts, nbytes = res.values, res.nbytes
            n_parts = res.n_partitions
        else:
            parts, nbytes, n_parts, cmoments, n_clusters, max_size = _clustered(
                narrow, terms_part, cluster, n_est, spark_type(sdf, cluster), ClusterMoments)
    finally:
        ship.release()
    collected += nbytes
    moments = [Moments() for _ in ests]
    wstats = WeightStats(clip)
    y_mom = Moments()
    n = 0
    for part in parts:
        for i in range(n_est):
            moments[i] = moments[i].merge(part["moments"][i])
        wstats.merge(part["wstats"])
        y_mom = y_mom.merge(part["y"])
        n += part["n"]
    values = [m.estimate_se() for m in moments]
    extras = clusters = None
    if cluster is not None:
        check_clusters(cluster, n_missing=0, n_clusters=n_clusters)
        extras = [{"se_iid": se} for _, se in values]
        values = [cm.estimate_se() for cm in cmoments]
        clusters = ev._cluster_diag(cluster, n_clusters, n, max_size)
    config["mode"] = f"spark ({passes + 1} jobs{', cluster shuffle' if cluster is not None else ''})"
    config["engine"] = "spark"
    config["spark"] = {"partitions": n_parts, "bytes_collected": int(collected)}
    if fit_info is not None:
        config["spark"]["outcome_fit"] = fit_info
    res = ev._finish(n, ests, values, [None] * n_est, wstats, float(y_mom.mean[1] * y_mom.n), float(y_mom.m2[1, 1]),
                     ci_level, policy, model, config, extras=extras, clusters=clusters)
    if fit_warning:
        res.warnings.append(fit_warning)
    return res


def _fit_on_driver(narrow, model, batches, policy, n_total: int, fit_rows: int, n_folds: int,
                   seed: int) -> tuple[int, dict, str | None]:
    """Fit a :class:`~causalrec.ope.outcome.SklearnOutcome` on the driver (see the module docstring, pass 1);
    returns ``(bytes collected, what was fitted on, a warning when sampled)``."""
    from causalrec.models.folds import row_hash_sample
    from causalrec.ope import evaluation as ev

    rate = 1.0 if n_total <= fit_rows else fit_rows / n_total
    covs = list(model.covariates)

    def rows_part(pid, it):
        out = []
        for off, canon, keys in batches(pid, it):
            items, pos, y, folds = inputs = ev._inputs(canon, policy, off, n_folds, seed, True, keys)
            if (items < 0).any():
                policy.bind(canon, items, pos, off)  # names the items the target does not know
            keep = slice(None) if rate >= 1.0 else np.flatnonzero(row_hash_sample(off, len(canon), rate, seed))
            del inputs
            # a missing or non-numeric covariate travels as it is: partial_fit on the driver words the error
            frame = canon[[c for c in covs if c in canon.columns]].iloc[keep].reset_index(drop=True)
            out.append((frame, items[keep], pos[keep], y[keep], folds[keep]))
        return out

    res = run_partitions(narrow, rows_part)
    chunks = [c for part in res.values for c in part]  # partition order, then batch order: the log's row order
    if not chunks:
        raise InputError("no rows were drawn to fit the outcome model", column="spark_fit_rows",
                         fix="raise spark_fit_rows")
    frame = pd.concat([c[0] for c in chunks], ignore_index=True)
    items, pos, y, folds = (np.concatenate([c[i] for c in chunks]) for i in range(1, 5))
    model.partial_fit(frame, items, pos, y, folds)
    fit = {"fit_rows": int(fit_rows), "rows_fitted": int(len(y)), "rows": int(n_total),
           "fit_sample": None if rate == 1.0 else {"rate": rate, "how": "seeded row hash, the same rate in every fold"}}
    warning = None
    if rate < 1.0:
        warning = (f"the outcome model {model.name} was fitted on the driver from a sample of {len(y):,} of "
                   f"{n_total:,} rows (rate {rate:.3g}, the same in every fold; spark_fit_rows={fit_rows:,}); "
                   "DM and the DR family differ from an in-process fit on every row")
    return res.nbytes, fit, warning


def _clustered(narrow, terms_part, cluster: str, n_est: int, key_type: str, ClusterMoments):
    """Per-partition moments plus complete cluster totals (:func:`~causalrec.engines.spark.grouped_totals`).

    Per estimator the summed columns are ``(C, N, A, B)``: its terms ``c, a, b`` and a count."""

    def keyed_terms(pid, it):
        gen = terms_part(pid, it, True)
        try:
            while True:
                keys, dense = next(gen)
                ones = np.ones(len(keys))
                yield keys, np.vstack([np.vstack([c, ones, a, b]) for c, a, b in dense])
        except StopIteration as stop:
            return stop.value

    def reduce_part(pid, blocks):
        cms = [ClusterMoments() for _ in range(n_est)]
        g = biggest = 0
        for z in blocks:
            z = z.reshape(n_est, 4, z.shape[1])
            for e in range(n_est):
                cms[e] = cms[e].merge(ClusterMoments.of_array(z[e]))
            g += z.shape[2]
            biggest = max(biggest, int(z[0, 1].max()))
        return cms, g, biggest

    parts, reduced, nbytes, n_parts = grouped_totals(narrow, keyed_terms, 4 * n_est, key_type, reduce_part)
    cmoments = [ClusterMoments() for _ in range(n_est)]
    n_clusters = max_size = 0
    for cms, g, biggest in reduced:
        for e in range(n_est):
            cmoments[e] = cmoments[e].merge(cms[e])
        n_clusters += g
        max_size = max(max_size, biggest)
    return parts, nbytes, n_parts, cmoments, n_clusters, max_size


def _drain(gen):
    """Run a generator to its end and return its return value."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


__all__ = ["evaluate_spark"]
