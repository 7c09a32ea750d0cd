"""``evaluate``: the value of a target policy from logged impressions.

In memory, the whole log becomes one set of per-row arrays ``(y, w, qhat, qpi)`` and
every estimator computes its estimate, influence values and (optionally) bootstrap
replicates from them. Above ``CHUNK_ABOVE_ROWS`` rows (without bootstrap) the outcome
model is still fitted on the whole log, but the per-row terms are computed in blocks of
``CHUNK_ROWS`` and merged as moments: the same numbers, with less memory and fewer page
faults than whole-array temporaries. Streaming (``batch_size`` set, or a Parquet file with more than
``AUTO_STREAM_ROWS`` rows) reads the file batch by batch and keeps only mergeable
sufficient statistics (:class:`causalrec.ope.estimators.Moments`, weight sums and a
histogram), so peak memory is one batch. The default cell-mean outcome model needs
two passes when streaming (one to sum outcomes per cell and fold, one to estimate);
IPS/SNIPS alone, or a fixed outcome function, need one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.readers import column_names, iter_batches, parquet_num_rows, read_table
from causalrec.data.schema import LogSchema
from causalrec.data.validation import validate_log
from causalrec.errors import InputError
from causalrec.inference import bootstrap_ci, check_clusters, cluster_codes, cluster_se, z_value
from causalrec.models.folds import cluster_hash_folds as cluster_folds
from causalrec.models.folds import row_hash_folds as fold_ids
from causalrec.ope.clusters import ClusterMoments, ClusterStream, cluster_moments_of_many
from causalrec.ope.estimators import (
    Moments,
    OPEArrays,
    OPEEstimator,
    _dense,
    influence_se_fast,
    make_estimators,
    run_names,
    summarise,
)
from causalrec.ope.mips import CellPool
from causalrec.ope.outcome import CellMeanOutcome, make_outcome_model
from causalrec.ope.policy import resolve_target
from causalrec.ope.result import OPEResult
from causalrec.ope.weights import WeightStats
from causalrec.results import Estimate

DEFAULT_ESTIMATORS = ("dm", "ips", "snips", "dr")
#: the default with an item catalogue (``items=``): the item-level baselines and the cluster estimators.
#: ``mips`` stays Saito & Joachims' (and Open Bandit Pipeline's) unnormalised estimator; ``snmips`` and
#: ``offcem`` (self-normalised / with an outcome model) are its lower-variance versions, measured side by
#: side in reports/ope_catalogue.md
CATALOGUE_ESTIMATORS = ("ips", "snips", "mips", "snmips", "offcem")
AUTO_STREAM_ROWS = 20_000_000
PAIR_CHUNK = 2_000_000  # (row, item) pairs materialised at once for the DM term
TARGET = "policy_value"
CHUNK_ABOVE_ROWS = 2_000_000  # above this (and without bootstrap), work in blocks; quantiles from the histogram
CHUNK_ROWS = 500_000
PAIRED_MAX_FLOATS = 30_000_000  # influence values kept for SLOPE's paired rule (240 MB); above, the interval rule


def evaluate(
    logs: str | os.PathLike | pd.DataFrame,
    target: Any,
    *,
    items: Any = None,
    item_key: str = "item_id",
    item_text: str = "title",
    logging_policy: Any = None,
    embedding_clusters: int | str | Sequence[int] | None = None,
    embedder: Any = None,
    slope_width: float = 2.0,
    clip: float | str | None = None,
    switch_tau: float | str = 100.0,
    dros_lambda: float | str = 100.0,
    **options: Any,
) -> OPEResult:
    """Estimate the target policy's value per impression from logged data.

    Every option of :func:`_evaluate` (documented there) plus, for large catalogues and
    hyper-parameter selection (:mod:`causalrec.ope.mips`, :mod:`causalrec.ope.catalogue`,
    :mod:`causalrec.ope.selection`):

    items, item_key, item_text:
        The item catalogue (DataFrame or CSV/Parquet path) with the item id column and its
        text; the text is embedded by ``embedder`` (default the packaged MiniLM
        ``TextEmbedder``) and clustered (Ward's tree up to 5,000 distinct texts, k-means above;
        for a SLOPE grid above, one k-means at the largest K and Ward's merges of its clusters for the
        smaller K: :func:`causalrec.ope.catalogue.item_clusters_grid`).
        Needed by ``mips, snmips, offcem``; with ``items`` the default estimators are
        ``CATALOGUE_ESTIMATORS`` (ips, snips, mips, snmips, offcem).
    logging_policy:
        The logging policy's full distribution, a table in the target's format; without it
        the cluster weights are estimated by regression (and the result says so).
    embedding_clusters:
        ``K``; ``None``/``"slope"`` chooses it by SLOPE over a grid (reported).
    clip, switch_tau, dros_lambda:
        A number, or ``"slope"`` to choose it by SLOPE over a grid (``slope_width`` is the
        interval half-width in standard errors); the chosen value and every candidate's
        estimate appear under ``diagnostics["selection"]``.
    """
    from causalrec.ope import selection
    from causalrec.ope.catalogue import is_catalogue_request, prepare_catalogue

    clip, sel_clip = selection.parse_choice(clip, "clip")
    tau, sel_tau = selection.parse_choice(switch_tau, "switch_tau")
    lam, sel_lam = selection.parse_choice(dros_lambda, "dros_lambda")
    tau = 100.0 if tau is None else tau
    lam = 100.0 if lam is None else lam
    names = options.get("estimators", CATALOGUE_ESTIMATORS if items is not None else DEFAULT_ESTIMATORS)
    catalogue = items is not None or logging_policy is not None or is_catalogue_request(names)
    if not (catalogue or sel_clip or sel_tau or sel_lam):
        return _evaluate(logs, target, clip=clip, switch_tau=tau, dros_lambda=lam, **options)
    if options.get("target_kind") is not None:
        raise InputError("the catalogue estimators and SLOPE selection work on item-level logs, not ranked lists",
                         column="target_kind", fix="drop --target-kind, or run the slate estimators without "
                         "--items/--logging-policy/'slope'")
    schema = options.get("schema", LogSchema())
    ests = make_estimators(names, clip=clip, switch_tau=tau, dros_lambda=lam)
    cand = None
    if catalogue:
        if items is None:
            raise InputError("mips, snmips and offcem (and --logging-policy) need the item catalogue", column="items",
                             fix="pass --items CATALOG --item-key COL --item-text COL")
        target = prepare_catalogue(logs, target, schema=schema, items=items, item_key=item_key, item_text=item_text,
                                   logging_policy=logging_policy, embedding_clusters=embedding_clusters,
                                   embedder=embedder, seed=options.get("seed", 0))
        if target.info["cluster_choice"] == "slope":
            cand = target.info["cluster_candidates"]
        else:
            k = target.info["cluster_candidates"][0]
            ests = [replace(e, clusters=k) if hasattr(e, "clusters") else e for e in ests]
    grid = selection.grids({"clip": sel_clip, "switch_tau": sel_tau, "dros_lambda": sel_lam}, cand)
    ests, groups = selection.expand(ests, grid)
    res = _evaluate(logs, target, estimators=ests, clip=clip, switch_tau=tau, dros_lambda=lam,
                    **{k: v for k, v in options.items() if k != "estimators"})
    res = selection.apply(res, groups, slope_width)
    res.config["estimators"] = [e.estimator for e in res.estimates]
    res.config["estimator_params"] = {e.estimator: {k: v for k, v in e.extra.items() if k in ("clip", "tau", "lambda",
                                      "clusters")} for e in res.estimates}
    res.config.update(clip="slope" if sel_clip else clip, switch_tau="slope" if sel_tau else tau,
                      dros_lambda="slope" if sel_lam else lam, slope_width=slope_width)
    if catalogue:
        info = target.info
        res.config.update(items=info["source"], item_key=item_key, item_text=item_text,
                          logging_policy=info["logging_policy"], embedding_clusters=embedding_clusters)
        res.diagnostics["catalogue"] = {k: info[k] for k in ("n_items", "embedding_dim", "clustering",
                                                              "cluster_candidates", "cluster_choice",
                                                              "cluster_weights")}
        if logging_policy is None:
            res.warnings.append("no --logging-policy: the cluster weights of mips/snmips/offcem are estimated by "
                                "regressing the item weight on the cluster (mean per cluster and position), as in "
                                "Saito & Joachims (2022); give the logging policy's table for exact weights")
            if target.row_key is not None:  # the paper's E[w | x, e]; this regression has no x to condition on
                res.warnings.append(f"the target is keyed by {target.row_key}, but the estimated cluster weights "
                                    "do not condition on it: they are E[w | e, position] averaged over all rows, "
                                    "not E[w | x, e], so mips/snmips/offcem may be biased when the policies differ "
                                    "by request; give --logging-policy (keyed the same way) for exact weights")
    return res


def _evaluate(
    logs: str | os.PathLike | pd.DataFrame,
    target: Any,
    *,
    schema: LogSchema = LogSchema(),
    estimators: Sequence[str | OPEEstimator] = DEFAULT_ESTIMATORS,
    clip: float | None = None,
    outcome_model: Any = None,
    bootstrap: int = 0,
    ci_level: float = 0.95,
    seed: int = 0,
    batch_size: int | None = None,
    n_folds: int = 5,
    switch_tau: float = 100.0,
    dros_lambda: float = 100.0,
    progress: bool | None = None,
    cluster: str | None = "auto",
    propensity_marginal: str | None = None,
    target_kind: str | None = None,
    temperature: float = 1.0,
    mc_samples: int = 1000,
    value_per: str = "impression",
    allow_unequal_lists: bool = False,
    engine: str = "auto",
    spark_master: str | None = None,
    spark_fit_rows: int = 1_000_000,
) -> OPEResult:
    """Estimate the target policy's value per impression from logged data.

    Parameters
    ----------
    logs:
        DataFrame or CSV/Parquet path, one row per impression, with the item, outcome,
        logging propensity and (optionally) position columns named by ``schema``.
    target:
        Policy table (DataFrame or path; ``[request_id|row], item_id, [position], prob``)
        or a callable (see :mod:`causalrec.ope.policy`).
    estimators:
        Names among ``dm, ips, snips, dr, sndr, switch_dr, dros`` or estimator instances.
    clip:
        Cap on the importance weights of every weighting estimator.
    outcome_model:
        ``None`` (cross-fitted per item x position means), a scikit-learn estimator on
        ``schema.covariates`` + one-hot item/position (cross-fitted, ``n_folds``), or a
        fixed function ``q(frame) -> array``.
    bootstrap:
        Number of percentile-bootstrap replicates (0 = none); the influence-function
        interval is always reported.
    batch_size:
        Stream the file in batches of this many rows (constant memory).
    cluster:
        Column whose rows are not independent of each other, typically the request (the
        positions of one slate share the user, the context and the logging draw). Standard
        errors become cluster-robust (influence values summed per cluster, see
        :func:`causalrec.inference.cluster_se`), the bootstrap resamples whole clusters and
        the outcome model's cross-fitting folds keep a cluster together. Each estimate also
        reports ``se_iid``, the standard error that treats rows as independent. With
        ``batch_size`` the file must be sorted by this column (see
        :mod:`causalrec.ope.clusters`). The default ``"auto"`` clusters by the schema's
        request column when the log has it (``config["cluster_choice"]`` says so); ``None``
        or ``"none"`` treats rows as independent.
    propensity_marginal, target_kind, temperature, mc_samples, value_per, allow_unequal_lists:
        Ranked lists (the slate estimators ``sips, snsips, iips, sniips, rips, snrips,
        cascade_dr, pi, snpi``; see :mod:`causalrec.ope.slate` and
        :mod:`causalrec.ope.slate_eval`): there ``propensity`` is the logging policy's
        probability of the item given the items above it and ``propensity_marginal`` names
        the column with its marginal item-at-slot probability (iips, pi). The target is a
        table ``request_id, position, item_id, prob [, prob_marginal]`` or, with
        ``target_kind`` ``"plackett-luce"`` (``temperature``) or ``"topk"``, target scores
        ``[request_id,] item_id, score``; Monte Carlo marginals use ``mc_samples`` draws.
        ``value_per="list"`` estimates the value per list instead of per impression;
        ``allow_unequal_lists`` lets sips/pi run on lists of different lengths.
    engine, spark_master:
        ``"auto"`` runs in process, or on Spark when ``logs`` is a Spark DataFrame;
        ``"spark"`` also reads a path or table name with Spark (on ``spark_master``, e.g.
        ``local[*]``). On Spark the per-row terms are computed on the executors and only
        moments are collected (:mod:`causalrec.engines.spark_ope`); the numbers equal the
        in-process streaming path's.
    spark_fit_rows:
        On Spark, a scikit-learn outcome model is cross-fitted on the driver from the rows'
        needed columns; above this many rows, from a seeded sample of about this many rows
        drawn at the same rate in every fold (``config["spark"]["fit_sample"]`` and a warning
        say so). At or below it the fold models, and so every number, equal the in-process ones.

    Assumptions (stated in the report): the logged propensities are the logging
    policy's true probabilities of each (item, position) given everything the target
    conditions on, and are positive wherever the target puts mass (positivity).
    """
    from causalrec.ope.slate_eval import VALUE_PER
    from causalrec.ope.slate_policy import target_kind_name

    # option values are checked before any data is read, so a typo fails in a second
    if value_per not in VALUE_PER:
        raise InputError(f"unknown value_per '{value_per}'", column="--value-per",
                         fix="--value-per impression (mean outcome per slot) or list (per request)")
    if target_kind is not None:
        target_kind = target_kind_name(target_kind)
    ests = make_estimators(estimators, clip=clip, switch_tau=switch_tau, dros_lambda=dros_lambda)
    try:
        z_value(ci_level)
    except ValueError as exc:
        raise InputError(str(exc), column="ci_level", fix="use a level such as 0.95") from exc
    if bootstrap < 0 or bootstrap == 1:
        raise InputError(f"bootstrap must be 0 or >= 2, got {bootstrap}", column="bootstrap",
                         fix="pass the number of replicates, e.g. --bootstrap 500")
    if n_folds < 1:
        raise InputError("n_folds must be >= 1", column="n_folds", fix="use 5 (or 1 for no cross-fitting)")
    if target_kind is not None and tuple(estimators) == DEFAULT_ESTIMATORS:  # scores given: rank-aware defaults
        ests = make_estimators(["rips", "snrips", "cascade_dr"] + (["iips", "sniips"] if propensity_marginal else []),
                               clip=clip)
    logs, spark = _engine(logs, engine, spark_master)
    probe = _spark_probe(logs) if spark else logs
    cluster, cluster_choice = _resolve_cluster(cluster, probe, schema)
    # -- ranked lists: their own path (causalrec.ope.slate_eval) --------------------------
    if target_kind is not None or any(getattr(e, "slate", False) for e in ests):
        if spark:
            raise InputError("the slate estimators do not run on Spark yet", column="--engine",
                             fix="evaluate ranked lists in process (drop --engine spark; a Parquet file streams)")
        return _evaluate_slates(logs, target, schema, ests, outcome_model, bootstrap, ci_level, seed, batch_size,
                                n_folds, progress, cluster, cluster_choice, clip, dict(
                                    propensity_marginal=propensity_marginal, target_kind=target_kind,
                                    temperature=temperature, mc_samples=mc_samples, value_per=value_per,
                                    allow_unequal_lists=allow_unequal_lists))
    needs_model = any(e.needs_outcome_model for e in ests)
    model = make_outcome_model(outcome_model, n_folds=n_folds, covariates=schema.covariates) if needs_model else None
    if model is not None:  # a model object passed in brings its own number of folds
        n_folds = getattr(model, "n_folds", 1)

    streaming = batch_size is not None
    # no automatic streaming with a cluster the user chose: streaming needs the file sorted by
    # the cluster column, while in memory any order works (an automatic request cluster is
    # checked while streaming, and the error says how to opt out)
    if not streaming and not spark and cluster_choice != "user" and not isinstance(logs, pd.DataFrame):
        nrows = parquet_num_rows(logs) if Path(logs).exists() else None
        if nrows is not None and nrows > AUTO_STREAM_ROWS and (model is None or model.supports_streaming):
            streaming, batch_size = True, 1_000_000
    if streaming and batch_size is not None and batch_size < 1:
        raise InputError("batch_size must be >= 1", column="batch_size", fix="e.g. --batch-size 1000000")
    config = {
        "estimators": run_names(ests),
        "estimator_params": {n: e.params() for n, e in zip(run_names(ests), ests, strict=True)},
        "clip": clip, "cluster": cluster, "cluster_choice": cluster_choice, "bootstrap": bootstrap,
        "ci_level": ci_level, "seed": seed, "batch_size": batch_size if streaming else None, "n_folds": n_folds,
        "schema": schema.to_dict(),
        "logs": "<Spark DataFrame>" if spark else str(logs) if not isinstance(logs, pd.DataFrame) else "<DataFrame>",
    }
    if spark:
        if bootstrap:
            raise InputError("the bootstrap does not run on Spark", column="bootstrap",
                             fix="drop --bootstrap (the influence-function interval is always reported)")
        if isinstance(spark_fit_rows, bool) or not isinstance(spark_fit_rows, (int, np.integer)) or spark_fit_rows < 1:
            raise InputError(f"spark_fit_rows must be a positive integer, got {spark_fit_rows!r}",
                             column="spark_fit_rows", fix="e.g. spark_fit_rows=1_000_000")
        from causalrec.engines.spark_ope import evaluate_spark

        config["batch_size"] = None
        return evaluate_spark(logs, target, schema=schema, ests=ests, model=model, ci_level=ci_level, seed=seed,
                              n_folds=n_folds, config=config, cluster=cluster, fit_rows=int(spark_fit_rows))
    if streaming:
        if model is not None and not model.supports_streaming:
            raise InputError(
                f"the outcome model {model.name} needs the whole log in memory; it cannot be used with batch_size",
                column="outcome_model", fix="drop batch_size, or use the default cell-mean outcome model")
        return _evaluate_streaming(logs, target, schema, ests, model, bootstrap, ci_level, seed,
                                   batch_size, n_folds, config, progress, cluster)
    return _evaluate_in_memory(logs, target, schema, ests, model, bootstrap, ci_level, seed, n_folds, config,
                               cluster)


# -- shared pieces ------------------------------------------------------------

def _engine(logs, engine: str, spark_master: str | None):
    """``(logs, on_spark)``: a path becomes a Spark DataFrame with ``engine="spark"``."""
    from causalrec.engines import is_spark_dataframe

    if engine not in ("auto", "spark", "local"):
        raise InputError(f"unknown engine {engine!r}", column="--engine", fix="use auto, local or spark")
    if is_spark_dataframe(logs):
        return logs, True
    if engine == "spark":
        from causalrec.engines.spark import read_source, spark_session

        if isinstance(logs, pd.DataFrame):
            return spark_session(spark_master).createDataFrame(logs), True
        return read_source(spark_session(spark_master), logs), True
    return logs, False


def _spark_probe(sdf) -> pd.DataFrame:
    from causalrec.engines.spark import empty_frame

    return empty_frame(sdf)


def _columns(source, schema: LogSchema, policy_needs_request: bool | None, model) -> tuple[list[str], list[str]]:
    """(columns to read, roles to require) for this source."""
    available = column_names(source)
    roles = ["item_id", "outcome", "propensity"]
    # name missing columns against everything in the file, not just what would be read
    schema.require(pd.DataFrame(columns=available), roles, command="ope")
    if schema.position and schema.position in available:
        roles.append("position")
    if policy_needs_request is not False and schema.request_id and schema.request_id in available:
        roles.append("request_id")
    cols = [getattr(schema, r) for r in roles if getattr(schema, r) in available]
    # the schema's covariates are read even where no model uses them: validation checks them (as it
    # does for an in-memory frame, which has every column), so a file, Spark and a frame agree
    covs = list(schema.covariates)
    if model is not None and hasattr(model, "fn"):  # a fixed function sees every column
        covs = [c for c in available if c not in cols]
    cols += [c for c in covs if c in available and c not in cols]
    return cols, roles


def _context_columns(cols: list[str], schema: LogSchema, model) -> list[str]:
    if model is None or not hasattr(model, "fn"):
        return []
    mapped = {getattr(schema, r) for r in ("item_id", "outcome", "propensity", "position", "request_id")}
    return [c for c in cols if c not in mapped]


def _validate(batch: pd.DataFrame, schema: LogSchema, roles: list[str], keep: list[str] = ()) -> pd.DataFrame:
    # Integer positions only need a range check; anything else (floats, strings, out of
    # range) goes through the full check, which also words the error.
    fast_pos = "position" in roles and _integer_positions_ok(batch, schema)
    req = tuple(r for r in roles if not (fast_pos and r == "position"))
    canon = validate_log(batch, schema, require=req, command="ope")
    extra = {c: batch[c].to_numpy() for c in keep if c in batch.columns and c not in canon.columns}
    if extra:  # context columns for a fixed outcome function
        canon = canon.assign(**extra)
    if "position" in canon.columns and not pd.api.types.is_integer_dtype(canon["position"]):
        canon["position"] = canon["position"].astype(np.int64)
    return canon


def _integer_positions_ok(batch: pd.DataFrame, schema: LogSchema) -> bool:
    col = schema.position
    if col not in batch.columns or not pd.api.types.is_integer_dtype(batch[col]) or len(batch) == 0:
        return False
    v = batch[col].to_numpy()
    lo, hi = int(v.min()) - schema.position_base, int(v.max()) - schema.position_base
    return lo >= 0 and (schema.n_positions is None or hi < schema.n_positions)


def _inputs(canon: pd.DataFrame, policy, row_offset: int, n_folds: int, seed: int, with_folds: bool,
            cluster_keys: np.ndarray | None = None):
    """Item codes, 0-based positions, outcomes and folds of one validated batch (with
    ``cluster_keys``, folds that keep each cluster together)."""
    n = len(canon)
    items = policy.vocab.encode(canon["item_id"].to_numpy())
    if getattr(policy, "positional", False) and "position" not in canon.columns:
        raise InputError("the target policy gives probabilities per position but the log has no position column",
                         column="position", fix="name the log's position column with --position COL, or drop "
                         "'position' from the target table")
    pos = (canon["position"].to_numpy(dtype=np.int64) if "position" in canon.columns
           else np.zeros(n, dtype=np.int64))
    y = canon["outcome"].to_numpy(dtype=np.float64)
    if not with_folds:
        folds = None
    elif cluster_keys is not None:
        folds = cluster_folds(cluster_keys, n_folds, seed)
    else:
        folds = fold_ids(row_offset, n, n_folds, seed)
    return items, pos, y, folds


def _batch_arrays(canon: pd.DataFrame, policy, model, row_offset: int, inputs) -> tuple[OPEArrays, np.ndarray]:
    """Per-row arrays for one validated batch (model already fitted)."""
    items, pos, y, folds = inputs
    p = canon["propensity"].to_numpy(dtype=np.float64)
    bound = policy.bind(canon, items, pos, row_offset)
    w = bound.logged / p
    qa = qpi = None
    if model is not None:
        qa, qpi = _outcome_terms(model, canon, bound, items, pos, folds)
    arrays = OPEArrays(y=y, w=w, q_logged=qa, q_target=qpi)
    emb = getattr(policy, "embedding_weights", None)  # large catalogues: cluster weights (ope/catalogue.py)
    if emb is not None:
        arrays.w_emb = emb(canon, items, pos, row_offset, p)
        if isinstance(model, CellMeanOutcome):
            arrays.q_emb = _cluster_outcomes(model, policy, canon, bound, items, pos, folds)
    return arrays, p


def _outcome_terms(model, canon, bound, items, pos, folds) -> tuple[np.ndarray, np.ndarray]:
    """``(q(x_i, a_i, k_i), sum_a pi_e(a | x_i, k_i) q(x_i, a, k_i))`` per row of one batch."""
    n = len(canon)
    cells = isinstance(model, CellMeanOutcome)  # needs no row indices
    rows = None if cells and bound.matrix is not None else np.arange(n)
    qa = model.predict(canon, rows, items, pos, folds)
    if rows is None:
        return qa, model.target_value(bound.matrix, pos, folds)
    qpi = np.zeros(n)
    step = max(1, PAIR_CHUNK // max(1, _pairs_per_row(bound, rows[: min(n, 1000)])))
    for lo in range(0, n, step):
        pr = bound.pairs(rows[lo:lo + step])
        if pr.row.size:
            q = model.predict(canon, pr.row, pr.item, pr.pos, folds[pr.row])
            qpi += np.bincount(pr.row, weights=pr.prob * q, minlength=n)
    return qa, qpi


def _cluster_outcomes(model: CellMeanOutcome, policy, canon, bound, items, pos, folds):
    """``K -> (q_logged, q_target)`` of the cell means shrunk towards the K clusters' means
    (:meth:`CellMeanOutcome.clustered`, OffCEM's cluster-level model plus item residual), computed
    on first use (only OffCEM asks) and kept per K on the model, so each batch reuses the fit."""
    views = model.__dict__.setdefault("_cluster_views", {})
    done: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def get(k: int):
        if k not in done:
            if k not in views:
                views[k] = model.clustered(policy.t_cluster[k])
            done[k] = _outcome_terms(views[k], canon, bound, items, pos, folds)
        return done[k]

    return get


def _pairs_per_row(bound, sample_rows: np.ndarray) -> int:
    if sample_rows.size == 0:
        return 1
    return max(1, int(np.ceil(bound.pairs(sample_rows).row.size / sample_rows.size)))


def _fit_batch(model, canon, policy, row_offset, inputs) -> None:
    items, pos, y, folds = inputs
    if (items < 0).any():
        # the policy binding names the missing items with the standard message
        policy.bind(canon, items, pos, row_offset)
    model.partial_fit(canon, items, pos, y, folds)


def _finish(n: int, ests, values: list[tuple[float, float]], boot: list[tuple[float, float, float] | None],
            wstats: WeightStats, y_sum: float, y_ss: float, ci_level: float, policy, model, config,
            extras: list[dict] | None = None, clusters: dict | None = None) -> OPEResult:
    estimates = []
    names = run_names(ests)
    for i, (e, (est, se), b) in enumerate(zip(ests, values, boot, strict=True)):
        extra: dict[str, Any] = {k: v for k, v in e.params().items() if v is not None}
        if extras is not None:
            extra.update(extras[i])
        if b is not None:
            extra.update(boot_ci_low=b[0], boot_ci_high=b[1], boot_se=b[2])
        estimates.append(Estimate.normal(names[i], TARGET, est, se, ci_level, **extra))
    diag = wstats.diagnostics()
    if clusters:
        diag.update(clusters)
    mean_y = y_sum / n
    diag["logged_mean_outcome"] = mean_y
    diag["logged_mean_outcome_se"] = float(np.sqrt(max(y_ss, 0.0) / (n - 1) / n)) if n > 1 else float("nan")
    if model is not None and isinstance(model, CellMeanOutcome):
        diag["outcome_cells_observed"] = int((model.cell_counts_ > 0).sum())
    warnings = wstats.warnings()
    for nm, (est, _se) in zip(names, values, strict=True):
        if not np.isfinite(est):
            warnings.append(f"estimator '{nm}' is undefined on these data (all weights zero?)")
    if any(e.name == "dm" for e in ests):
        # DM's influence values vary only with the context, so its interval ignores the
        # outcome model's own estimation error; say so where the number is read.
        warnings.append("the DM interval reflects sampling of contexts only, not the outcome model's "
                        "error, so it is too narrow; read DR/SNDR intervals for inference")
    return OPEResult(
        command="ope", n_rows=n, estimates=estimates, diagnostics=diag, warnings=warnings, config=config,
        weight_histogram=wstats.histogram(), target_policy=policy.describe(),
        outcome_model=model.describe() if model is not None else None,
    )


# -- in memory -----------------------------------------------------------------

def _evaluate_in_memory(logs, target, schema, ests, model, bootstrap, ci_level, seed, n_folds, config,
                        cluster: str | None = None) -> OPEResult:
    probe = resolve_target(target, schema=schema) if not _is_table_like(target) else None
    needs_req = probe.needs_request_id() if probe is not None else _table_needs_request(target, schema)
    cols, roles = _columns(logs, schema, needs_req, model)
    cols = _with_cluster(cols, logs, cluster)
    df = read_table(logs, columns=cols) if not isinstance(logs, pd.DataFrame) else logs
    canon = _validate(df, schema, roles, _context_columns(cols, schema, model))
    policy = probe if probe is not None else resolve_target(target, schema=schema)
    n = len(canon)
    codes = cluster_codes(df[cluster], cluster) if cluster is not None else None
    wstats = WeightStats(config["clip"])
    if n > CHUNK_ABOVE_ROWS and not bootstrap:
        # Large logs: the per-row terms are computed in cache-sized blocks and merged as
        # moments (exactly the streaming arithmetic); numpy's whole-array temporaries cost
        # more in page faults than the computation itself at 10M rows. With clusters, the
        # blocks add their terms into per-cluster totals (4 numbers per cluster and estimator).
        blocks = [(lo, canon.iloc[lo:lo + CHUNK_ROWS]) for lo in range(0, n, CHUNK_ROWS)]
        keys = df[cluster].to_numpy() if cluster is not None else None

        def block_inputs(lo, sub, with_folds):
            return _inputs(sub, policy, lo, n_folds, seed, with_folds,
                           None if keys is None else keys[lo:lo + len(sub)])

        if model is not None:
            model.begin(policy.vocab, schema)
            for lo, sub in blocks:
                _fit_batch(model, sub, policy, lo, block_inputs(lo, sub, True))
            model.finalize()
        moments = [Moments() for _ in ests]
        totals = [np.zeros((4, int(codes.max()) + 1)) for _ in ests] if codes is not None else None
        y_mom = Moments()
        for lo, sub in blocks:
            arrays, p = _batch_arrays(sub, policy, model, lo, block_inputs(lo, sub, model is not None))
            wstats.update(arrays.w, p)
            y_mom = y_mom.merge(Moments.of_terms(None, arrays.y, None))
            for i, e in enumerate(ests):
                t = e.terms_checked(arrays)
                moments[i] = moments[i].merge(Moments.of_terms(*t))
                if totals is not None:
                    g = codes[lo:lo + len(sub)]
                    width = totals[i].shape[1]
                    for row, z in zip((0, 2, 3), _dense(*t), strict=True):  # (C, N, A, B) totals
                        totals[i][row] += np.bincount(g, weights=z, minlength=width)
                    totals[i][1] += np.bincount(g, minlength=width)
        config["mode"] = "in_memory (blocks)"
        values = [m.estimate_se() for m in moments]
        extras = clusters = None
        if totals is not None:
            extras = [{"se_iid": se} for _, se in values]
            values = [ClusterMoments.of_array(t).estimate_se() for t in totals]
            sizes = totals[0][1]
            clusters = _cluster_diag(cluster, int(sizes.size), n, int(sizes.max()))
        return _finish(n, ests, values, [None] * len(ests), wstats, float(y_mom.mean[1] * n), float(y_mom.m2[1, 1]),
                       ci_level, policy, model, config, extras=extras, clusters=clusters)
    # with clusters, whole clusters per fold: no row is predicted by a model that saw its cluster-mates
    inputs = _inputs(canon, policy, 0, n_folds, seed, model is not None,
                     df[cluster].to_numpy() if cluster is not None else None)
    if model is not None:
        model.begin(policy.vocab, schema)
        _fit_batch(model, canon, policy, 0, inputs)
        model.finalize()
    arrays, p = _batch_arrays(canon, policy, model, 0, inputs)
    wstats.update(arrays.w, p)
    wstats.set_exact_quantiles(arrays.w)
    values, boot, extras = [], [], []
    # SLOPE's paired rule (ope/selection.py) needs the candidates' influence values, summed per
    # cluster (rows are their own clusters without one); kept only while they fit a budget
    paired = [i for i, e in enumerate(ests) if getattr(e, "paired_selection", False)]
    n_groups = int(codes.max()) + 1 if codes is not None and n else n
    keep = set(paired) if len(paired) * n_groups <= PAIRED_MAX_FLOATS else set()
    influence: dict[int, np.ndarray] = {}
    for i, e in enumerate(ests):
        est, psi = summarise(*e.terms_checked(arrays))
        if i in keep:
            influence[i] = psi.copy() if codes is None else np.bincount(codes, weights=psi, minlength=n_groups)
        se_iid = influence_se_fast(psi)
        if codes is None:
            values.append((est, se_iid))
        else:
            values.append((est, cluster_se(psi, codes)))
            extras.append({"se_iid": se_iid})
        del psi
        if bootstrap:
            lo, hi, bse, _ = bootstrap_ci(e.bootstrap_statistic(arrays), n, bootstrap, ci_level, seed,
                                          batch=max(1, min(64, 4_000_000 // max(n, 1))), groups=codes)
            boot.append((lo, hi, bse))
        else:
            boot.append(None)
    y = arrays.y
    config["mode"] = "in_memory"
    clusters = None
    if codes is not None:
        sizes = np.bincount(codes)
        clusters = _cluster_diag(cluster, int(sizes.size), n, int(sizes.max()))
    res = _finish(n, ests, values, boot, wstats, float(y.sum()), float(((y - y.mean()) ** 2).sum()),
                  ci_level, policy, model, config, extras=extras or None, clusters=clusters)
    if influence:
        sizes = np.ones(n) if codes is None else np.bincount(codes, minlength=n_groups).astype(float)
        res._paired_influence = {"psi": influence, "sizes": sizes, "n": n}  # read (and dropped) by selection.apply
    return res


def _with_cluster(cols: list[str], logs, cluster: str | None) -> list[str]:
    if cluster is None or cluster in cols:
        return cols
    if cluster not in column_names(logs):
        raise InputError(f"cluster column '{cluster}' is not in the log", column=cluster,
                         fix="name an existing column (e.g. the request id) with --cluster COL")
    return [*cols, cluster]


def _cluster_diag(column: str, n_clusters: int, n_rows: int, max_size: int) -> dict:
    return {"cluster_column": column, "n_clusters": n_clusters,
            "rows_per_cluster_mean": n_rows / n_clusters if n_clusters else float("nan"),
            "rows_per_cluster_max": max_size}


def _is_table_like(target) -> bool:
    return isinstance(target, (pd.DataFrame, str, os.PathLike))


def _table_needs_request(target, schema: LogSchema) -> bool:
    if isinstance(target, pd.DataFrame):
        cols = target.columns
    else:
        cols = column_names(target)
    return "request_id" in cols or (schema.request_id is not None and schema.request_id in cols)


# -- streaming -----------------------------------------------------------------

def _evaluate_streaming(logs, target, schema, ests, model, bootstrap, ci_level, seed, batch_size,
                        n_folds, config, progress, cluster: str | None = None) -> OPEResult:
    policy = resolve_target(target, schema=schema)
    cols, roles = _columns(logs, schema, policy.needs_request_id(), model)
    cols = _with_cluster(cols, logs, cluster)
    total = parquet_num_rows(logs) if not isinstance(logs, pd.DataFrame) else len(logs)
    keep = _context_columns(cols, schema, model)

    def batches(desc: str):
        from tqdm.auto import tqdm

        it = iter_batches(logs, columns=None if isinstance(logs, pd.DataFrame) else cols, batch_size=batch_size)
        bar = tqdm(total=total, desc=desc, unit="rows", disable=_no_progress(progress), leave=False)
        offset = 0
        for b in it:
            if isinstance(logs, pd.DataFrame):
                b = b[cols]
            canon = _validate(b, schema, roles, keep)
            yield offset, canon, (b[cluster].to_numpy() if cluster is not None else None)
            offset += len(canon)
            bar.update(len(canon))
        bar.close()

    passes = 1
    if model is not None:
        model.begin(policy.vocab, schema)
        if isinstance(model, CellMeanOutcome):
            passes = 2
            for offset, canon, keys in batches("ope pass 1/2 (outcome model)"):
                _fit_batch(model, canon, policy, offset, _inputs(canon, policy, offset, n_folds, seed, True, keys))
        model.finalize()
    moments = [Moments() for _ in ests]
    wstats = WeightStats(config["clip"])
    y_mom = Moments()
    rng = np.random.default_rng(seed)
    boot_acc = [np.zeros((4, bootstrap)) for _ in ests] if bootstrap else None
    stream = ClusterStream(cluster) if cluster is not None else None
    cmoments = [ClusterMoments() for _ in ests]
    # SLOPE's MIPS / SNMIPS candidates with per-cell weight tables: summed per (item, position)
    # cell once for all of them (causalrec.ope.mips.CellPool); the bootstrap needs per-row terms
    cell_weights = getattr(policy, "cell_weights", None)
    pool, pooled = CellPool.of_run(ests, cell_weights() if cell_weights and not bootstrap else None, cluster)
    live = [i for i in range(len(ests)) if i not in pooled]

    def add_clusters(totals: list[np.ndarray]) -> None:
        for i, cm in zip(live, cluster_moments_of_many(totals), strict=True):  # one centring for all estimators
            cmoments[i] = cmoments[i].merge(cm)
        if bootstrap and totals and totals[0].shape[1]:
            _poisson_bootstrap(rng, [(t[0], t[2], t[3]) for t in totals], boot_acc, bootstrap, sizes=totals[0][1])

    n = 0
    desc = f"ope pass {passes}/{passes}" if passes > 1 else "ope"
    for offset, canon, keys in batches(desc):
        inputs = _inputs(canon, policy, offset, n_folds, seed, model is not None, keys)
        arrays, p = _batch_arrays(canon, policy, model, offset, inputs)
        wstats.update(arrays.w, p)
        y_mom = y_mom.merge(Moments.of_terms(None, arrays.y, None))
        terms = [ests[i].terms_checked(arrays) for i in live]
        for i, t in zip(live, terms, strict=True):
            moments[i] = moments[i].merge(Moments.of_terms(*t))
        if pool is not None:
            pool.add(policy.weight_cells(inputs[0], inputs[1]), arrays.y, keys)
        if stream is not None:
            add_clusters(stream.add(keys, terms))  # None terms: zeros / ones, summed without arrays
        elif bootstrap:
            _poisson_bootstrap(rng, [_dense(*t) for t in terms], boot_acc, bootstrap)
        n += arrays.n
    if n == 0:
        raise InputError("the log has no rows", column=config["logs"], fix="check the file")
    if pool is not None:
        for i, (mom, cm) in zip(pooled, pool.finish(), strict=True):
            moments[i] = mom
            if cm is not None:
                cmoments[i] = cm
    values = [m.estimate_se() for m in moments]
    extras = clusters = None
    if stream is not None:
        add_clusters(stream.flush())
        check_clusters(cluster, n_missing=0, n_clusters=stream.n_clusters)
        extras = [{"se_iid": se} for _, se in values]
        values = [cm.estimate_se() for cm in cmoments]
        clusters = _cluster_diag(cluster, stream.n_clusters, n, stream.max_size)
    boot = [None if acc is None else poisson_interval(acc, ci_level) for acc in boot_acc or [None] * len(ests)]
    config["mode"] = f"streaming ({passes} pass{'es' if passes > 1 else ''})"
    if bootstrap:
        config["bootstrap_method"] = "poisson (streaming)" + (", whole clusters" if stream is not None else "")
    return _finish(n, ests, values, boot, wstats, float(y_mom.mean[1] * y_mom.n), float(y_mom.m2[1, 1]),
                   ci_level, policy, model, config, extras=extras, clusters=clusters)



def poisson_interval(acc: np.ndarray, ci_level: float) -> tuple[float, float, float]:
    """``(lo, hi, se)`` of the percentile interval from accumulated Poisson-bootstrap sums
    ``acc = (sum n, sum n c, sum n a, sum n b)`` per replicate."""
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = acc[1] / acc[0] + acc[2] / acc[3]
    reps = reps[np.isfinite(reps)]
    alpha = (1 - ci_level) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return float(lo), float(hi), float(np.std(reps, ddof=1))


def _poisson_bootstrap(rng, terms, acc, n_boot: int, cells: int = 4_000_000, sizes: np.ndarray | None = None) -> None:
    """Streaming bootstrap: Poisson(1) multiplicities (Hanley & MacGibbon 2006) of rows, or of
    clusters when ``terms`` are cluster totals and ``sizes`` their row counts; chunked."""
    n = terms[0][0].shape[0]
    step = max(1, cells // n_boot)
    for lo in range(0, n, step):
        counts = rng.poisson(1.0, size=(n_boot, min(step, n - lo))).astype(np.float64)
        tot = counts.sum(axis=1) if sizes is None else counts @ sizes[lo:lo + step]
        for (c, a, b), A in zip(terms, acc, strict=True):
            A[0] += tot
            A[1] += counts @ c[lo:lo + step]
            A[2] += counts @ a[lo:lo + step]
            A[3] += counts @ b[lo:lo + step]


def _no_progress(progress: bool | None) -> bool | None:
    if progress is None:
        return None  # tqdm decides: off when stderr is not a terminal
    return not progress


# -- cluster default and ranked lists (issue 10) ----------------------------------------

CLUSTER_NONE = ("none", "")


def _resolve_cluster(cluster, logs, schema: LogSchema) -> tuple[str | None, str]:
    """``(column or None, how it was chosen)``: ``"auto"`` is the request column when the log has it."""
    if cluster is None or (isinstance(cluster, str) and cluster.strip().lower() in CLUSTER_NONE):
        return None, "none"
    if isinstance(cluster, str) and cluster.strip().lower() == "auto":
        req = schema.request_id
        if req and req in column_names(logs):
            return req, "auto"
        return None, "auto (no request column)"
    return cluster, "user"


def _evaluate_slates(logs, target, schema, ests, outcome_model, bootstrap, ci_level, seed, batch_size, n_folds,
                     progress, cluster, cluster_choice, clip, slate_options: dict) -> OPEResult:
    from causalrec.ope.slate_eval import evaluate_slates

    if batch_size is not None and batch_size < 1:
        raise InputError("batch_size must be >= 1", column="batch_size", fix="e.g. --batch-size 1000000")
    if cluster is not None and cluster not in column_names(logs):
        raise InputError(f"cluster column '{cluster}' is not in the log", column=cluster,
                         fix="name an existing column (e.g. the request id) with --cluster COL, or --cluster none")
    config = {
        "estimators": run_names(ests),
        "estimator_params": {n: e.params() for n, e in zip(run_names(ests), ests, strict=True)},
        "clip": clip, "cluster": cluster, "cluster_choice": cluster_choice, "bootstrap": bootstrap,
        "ci_level": ci_level, "seed": seed, "batch_size": batch_size, "n_folds": n_folds,
        "schema": schema.to_dict(), "logs": str(logs) if not isinstance(logs, pd.DataFrame) else "<DataFrame>",
    }
    return evaluate_slates(logs, target, schema=schema, ests=ests, outcome_model=outcome_model, bootstrap=bootstrap,
                           ci_level=ci_level, seed=seed, batch_size=batch_size, n_folds=n_folds, progress=progress,
                           cluster=cluster, config=config, **slate_options)


__all__ = ["evaluate", "DEFAULT_ESTIMATORS", "CATALOGUE_ESTIMATORS"]
