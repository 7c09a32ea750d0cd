"""Evaluation of a target ranking policy from logged lists (called by ``causalrec.ope.evaluate``).

The log is cut into blocks of **complete lists** (a request's rows never straddle two
blocks): in memory, after sorting by (request, position); streamed, batch by batch from a
file sorted by request, the last (possibly unfinished) list of a batch being carried into
the next. For each block the per-slot ratios become the cascade, whole-list, marginal and
PseudoInverse weights (:class:`causalrec.ope.lists.Lists`), the estimators turn them into
per-row terms ``(c, a, b)`` (:mod:`causalrec.ope.slate`), and only sums leave the block:

- per-row moments (the standard error that treats rows as independent, ``se_iid``);
- per-unit totals ``(C, N, A, B)`` merged as :class:`causalrec.ope.clusters.ClusterMoments`,
  whose units are the requests (the default: a list's slots share the user, the context and
  the logging draw), another cluster column, or the rows (``cluster=None``);
- bootstrap replicates (multinomial over units in memory, Poisson multiplicities streamed);
- one set of unit totals per Monte Carlo batch of the target's marginals (iips, pi), whose
  spread is the Monte Carlo standard error reported as ``mc_se``.

Cascade-DR's outcome model ``Qhat_k`` is fitted on the reward to go ``sum_{j >= k} y_j``
with the outcome models of :mod:`causalrec.ope.outcome` (cross-fitted per request fold,
:func:`causalrec.ope.clusters.cluster_folds`); a fixed function is taken as ``Qhat`` itself.
The default cell means per (item, slot) need the whole log before any row can be scored:
streamed with a Plackett-Luce score target, the file is read once (each block is checked,
weighted, bound to the target and fed to the model's sums) and every block is kept in a
compact form (no frame: the cascade weights, outcomes and item codes, about 11 bytes a row
for a context-free score table, whose Plackett-Luce masses and normalisers are rebuilt from
the item codes by the same operations when the block is scored; about 27 bytes a row with
the normalisers for other score tables) until the model is fitted, then scored; when the
kept blocks would exceed ``REPLAY_BYTES``, or for other targets, the file is read a second
time instead.
Both give the same numbers (every sum is added in the same block order). Its model term
``sum_a pi(a | a_<k) Qhat_k(a)`` is computed in closed form for a Plackett-Luce target with
cell means (no (row, item) pairs, so a 10,000-item catalogue costs what a 10-item one
does), and otherwise over the target's (row, item) pairs, in chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.readers import column_names, iter_batches, read_table
from causalrec.data.schema import LogSchema
from causalrec.data.validation import check_numeric, check_propensity
from causalrec.errors import InputError
from causalrec.inference import bootstrap_ci, check_clusters, cluster_codes
from causalrec.models.folds import cluster_hash_folds as cluster_folds
from causalrec.ope.clusters import ClusterMoments, ClusterStream, cluster_moments_of_many
from causalrec.ope.estimators import Moments, _dense, vdot
from causalrec.ope.lists import Lists, check_slots, show_key, sort_by_list
from causalrec.ope.outcome import CellMeanOutcome, SklearnOutcome, make_outcome_model
from causalrec.ope.slate import SlateArrays, is_slate
from causalrec.ope.slate_policy import PAIR_LIMIT, SlateBlock, resolve_slate_target
from causalrec.ope.weights import WeightStats

BLOCK_ROWS = 1_000_000
PAIR_CHUNK = 2_000_000
VALUE_PER = ("impression", "list")


@dataclass
class _Prepared:
    block: SlateBlock
    y: np.ndarray
    p: np.ndarray
    p_marg: np.ndarray | None
    folds: np.ndarray | None  # fold per row (see row_folds)
    unit_keys: np.ndarray | None  # cluster keys per row when the cluster is not the request
    folds_list: np.ndarray | None = None  # fold per list, when folds follow the request

    def row_folds(self) -> np.ndarray | None:
        """The fold of each row: folded by request, the list's fold repeated over its rows (built
        on first use; the one read of a streamed file for Cascade-DR needs only the list's)."""
        if self.folds is None and self.folds_list is not None:
            self.folds = np.repeat(self.folds_list, self.block.lists.lengths)
        return self.folds


def evaluate_slates(logs, target, *, schema: LogSchema, ests, outcome_model, bootstrap: int, ci_level: float,
                    seed: int, batch_size: int | None, n_folds: int, progress, cluster: str | None,
                    config: dict, propensity_marginal: str | None = None, target_kind: str | None = None,
                    temperature: float = 1.0, mc_samples: int = 1000, value_per: str = "impression",
                    allow_unequal_lists: bool = False):
    """See :func:`causalrec.ope.evaluate` (the slate estimators' options are documented there)."""
    from causalrec.ope.evaluation import (
        _cluster_diag,
        _finish,
        _no_progress,
        _validate,
        poisson_interval,
    )

    bad = [e.name for e in ests if not is_slate(e)]
    if bad:
        raise InputError(
            f"{', '.join(bad)} cannot be mixed with the slate estimators: they read the propensity as the item's "
            "probability at its slot, while the slate estimators read it as the probability given the items above",
            column="estimators", fix="run them separately (ips on a log whose propensity is the marginal), or use "
            "their slate counterparts: iips (for ips), sniips (for snips), cascade_dr (for dr)")
    available = column_names(logs)
    if not schema.request_id or schema.request_id not in available:
        raise InputError(f"the slate estimators need the request column '{schema.request_id}', which the log "
                         "lacks", column=schema.request_id or "request_id",
                         fix="name the column that identifies a list with --request COL")
    if not schema.position or schema.position not in available:
        raise InputError(f"the slate estimators need the position column '{schema.position}', which the log lacks",
                         column=schema.position or "position", fix="name the slot column with --position COL")
    if propensity_marginal is not None and propensity_marginal not in available:
        raise InputError(f"column '{propensity_marginal}' (--propensity-marginal) is not in the log",
                         column=propensity_marginal, fix="name the column with the logging policy's marginal "
                         "probability of each item at its slot")
    need_marg = any(e.needs_marginal for e in ests)
    if need_marg and propensity_marginal is None:
        names = ", ".join(e.name for e in ests if e.needs_marginal)
        raise InputError(
            f"{names} need the logging policy's marginal probability of each item at its slot, which the "
            "propensity column (the probability given the items above) is not", column="propensity_marginal",
            fix="pass it with --propensity-marginal COL (for a logging policy that fills slots independently it "
            "is the propensity column itself), or use sips/rips/cascade_dr")
    policy = resolve_slate_target(target, schema=schema, kind=target_kind, temperature=temperature,
                                  mc_samples=mc_samples, seed=seed)
    model = None
    if any(e.needs_outcome_model for e in ests):
        model = make_outcome_model(outcome_model, n_folds=n_folds, covariates=schema.covariates)
    streaming = batch_size is not None
    if streaming and model is not None and not model.supports_streaming:
        raise InputError(f"the outcome model {model.name} needs the whole log in memory; it cannot be used with "
                         "batch_size", column="outcome_model",
                         fix="drop batch_size, or use the default cell-mean outcome model")
    roles = ["item_id", "outcome", "propensity", "position", "request_id"]
    cols = [getattr(schema, r) for r in roles]
    keep = [c for c in (propensity_marginal, cluster) if c is not None and c not in cols]
    if model is not None and isinstance(model, SklearnOutcome):
        keep += [c for c in schema.covariates if c not in cols + keep]
    if model is not None and hasattr(model, "fn"):  # a fixed function sees every column
        keep += [c for c in available if c not in cols + keep]
    for c in keep:
        if c not in available:
            raise InputError(f"column '{c}' is not in the log", column=c, fix="check the column names")
    cols = cols + keep
    unit = "lists" if cluster == schema.request_id else ("rows" if cluster is None else "other")
    fold_key = "request_id" if unit != "other" else cluster
    ctx = _Context(schema, policy, roles, keep, propensity_marginal, fold_key, n_folds, seed, unit, cluster,
                   ests, allow_unequal_lists, _validate)

    if streaming:
        def blocks(desc: str, light: bool = False) -> Iterator[_Prepared]:
            from tqdm.auto import tqdm

            bar = tqdm(desc=desc, unit="rows", disable=_no_progress(progress), leave=False)
            for prep in ctx.stream(logs, cols, batch_size, light=light):
                bar.update(prep.block.n)
                yield prep
            bar.close()
    else:
        df = read_table(logs, columns=cols) if not isinstance(logs, pd.DataFrame) else logs[cols]
        if unit == "other":
            ctx.all_codes = cluster_codes(df[cluster], cluster)
        kept = list(ctx.in_memory(df, single=isinstance(model, SklearnOutcome)))

        def blocks(desc: str, light: bool = False) -> Iterator[_Prepared]:
            yield from kept

    passes = 1
    acc = _Accumulator(ests, unit, cluster, bootstrap, seed, clip=config["clip"], streaming=streaming)
    replayed = False
    if model is not None:
        model.begin(policy.vocab, schema)
        if isinstance(model, (CellMeanOutcome, SklearnOutcome)):
            replay = (streaming and isinstance(model, CellMeanOutcome) and unit != "other"
                      and getattr(policy, "kind", None) == "plackett-luce")
            if replay:  # one read of the file; the blocks are scored once the model is fitted
                replayed = _fit_and_keep(blocks, model, policy, ests, value_per, acc)
                if not replayed:  # the kept blocks outgrew REPLAY_BYTES: read the file again
                    acc = _Accumulator(ests, unit, cluster, bootstrap, seed, clip=config["clip"],
                                       streaming=streaming)
            else:
                for prep in blocks("ope pass 1/2 (outcome model)" if streaming else "outcome model", light=True):
                    b = prep.block
                    model.partial_fit(b.canon, b.items, b.slot, b.lists.revcumsum(prep.y), prep.row_folds())
            passes = 2 if streaming and not replayed else 1
        model.finalize()

    if replayed:
        kept = acc.kept
        acc.kept = None
        for i in range(len(kept)):
            prep, arrays = kept[i].restore(policy, model, ests, value_per)
            kept[i] = None  # freed as it is scored
            acc.add_terms(prep, arrays)
    else:
        desc = f"ope pass {passes}/{passes}" if passes > 1 else "ope"
        for prep in blocks(desc):
            arrays, bound = _arrays(prep, policy, model, ests, value_per)
            acc.add(prep, arrays, bound)
    if acc.n == 0:
        raise InputError("the log has no rows", column=config["logs"], fix="check the file")
    acc.finish()

    values = [cm.estimate_se() for cm in acc.cmoments]
    extras: list[dict[str, Any]] = [{} for _ in ests]
    if unit != "rows":
        for i, m in enumerate(acc.row_moments):
            extras[i]["se_iid"] = m.estimate_se()[1]
    mc_method = getattr(policy, "last_marginal_method", None)
    for i in range(len(ests)):
        if acc.mc_moments[i] is not None:
            reps = np.array([m.estimate_se()[0] for m in acc.mc_moments[i]])
            extras[i]["mc_se"] = float(np.std(reps, ddof=1) / np.sqrt(len(reps)))
    boot = [None] * len(ests)
    if bootstrap:
        for i in range(len(ests)):
            if streaming:
                boot[i] = poisson_interval(acc.boot_acc[i], ci_level)
            else:
                tot = np.concatenate(acc.unit_totals[i], axis=1) if unit != "other" else acc.other_totals[i]
                c_, n_, a_, b_ = tot

                def stat(counts, c_=c_, n_=n_, a_=a_, b_=b_):
                    with np.errstate(invalid="ignore", divide="ignore"):
                        return counts @ c_ / (counts @ n_) + (counts @ a_) / (counts @ b_)

                lo, hi, bse, _ = bootstrap_ci(stat, tot.shape[1], bootstrap, ci_level, seed,
                                              batch=max(1, min(64, 4_000_000 // max(tot.shape[1], 1))))
                boot[i] = (lo, hi, bse)
        config["bootstrap_method"] = ("poisson (streaming)" if streaming else "multinomial") + (
            "" if unit == "rows" else ", whole clusters")
    kept_note = "; outcome-model terms from the blocks kept in memory" if replayed else ""
    if replayed:
        config["kept_blocks_mb"] = round(acc.kept_bytes / 2**20, 1)
    config["mode"] = ("streaming" if streaming else "in_memory") + f" ({passes} pass{'es' if passes > 1 else ''}" \
        f"{kept_note})"
    config.update(value_per=value_per, propensity_marginal=propensity_marginal, target_kind=target_kind,
                  temperature=temperature if target_kind else None, mc_samples=mc_samples if mc_method ==
                  "monte_carlo" else None, allow_unequal_lists=allow_unequal_lists)
    clusters = None
    if unit != "rows":
        clusters = _cluster_diag(cluster, acc.n_units, acc.n, acc.max_unit)
    if acc.w_all:
        acc.wstats.set_exact_quantiles(np.concatenate(acc.w_all))
    res = _finish(acc.n, ests, values, boot, acc.wstats, acc.y_sum, acc.y_ss, ci_level, policy, model, config,
                  extras=extras, clusters=clusters)
    if value_per == "list":
        for e in res.estimates:
            e.target = "policy_value_per_list"
    res.title = "Off-policy evaluation of a ranking policy: value of the target lists"
    res.diagnostics.update(acc.slate_diagnostics(mc_method))
    res.diagnostics["weights_shown"] = "cascade weights W_k (rips): the ratio of the items at and above each slot"
    if value_per == "list":
        n_lists = acc.n_lists
        res.diagnostics["logged_mean_outcome_per_list"] = acc.y_sum / n_lists if n_lists else float("nan")
    res.warnings.extend(acc.slate_warnings(ests, propensity_marginal))
    res.target_policy["slate"] = True
    return res


# -- blocks ------------------------------------------------------------------------

class _Context:
    """Turns validated rows into prepared blocks of complete lists."""

    def __init__(self, schema, policy, roles, keep, pm_col, fold_key, n_folds, seed, unit, cluster, ests,
                 allow_unequal, validate):
        self.schema, self.policy, self.roles, self.keep = schema, policy, roles, keep
        self.pm_col, self.fold_key, self.n_folds, self.seed = pm_col, fold_key, n_folds, seed
        self.unit, self.cluster, self.validate = unit, cluster, validate
        self.whole_list = [e.name for e in ests if e.needs_whole_list]
        self.allow_unequal = allow_unequal
        self.length_seen: int | None = None
        self.ragged = False
        self.max_len = 0
        self.all_codes: np.ndarray | None = None
        self.needs_folds = any(e.needs_outcome_model for e in ests)

    def _canon(self, raw: pd.DataFrame, roles=None) -> pd.DataFrame:
        canon = self.validate(raw, self.schema, roles or self.roles, self.keep)
        miss = canon["request_id"].isna()
        if miss.any():
            raise InputError(f"column '{self.schema.request_id}' has {int(miss.sum())} missing value(s)",
                             column=self.schema.request_id, fix="give every row the id of its list (request)")
        return canon

    def prepare(self, canon: pd.DataFrame, codes: np.ndarray | None = None, contiguous: bool = False,
                light: bool = False) -> _Prepared:
        """``canon``: complete lists, any order within a list (sorted here by slot). ``light``: only
        what fitting the outcome model needs (the estimation pass checks everything else)."""
        pos = canon["position"].to_numpy()
        if pos.dtype.kind not in "iu":  # positions as read when integers (e.g. int8): only compared here
            pos = pos.astype(np.int64)
        order, sorted_lists, lengths = sort_by_list(canon["request_id"].to_numpy(), pos, contiguous=contiguous,
                                                    identity_as_none=True)
        if order is not None and not np.array_equal(order, np.arange(order.size)):
            canon = canon.iloc[order].reset_index(drop=True)
            pos = pos[order]
            if codes is not None:
                codes = codes[order]
        lists = Lists(lengths)
        req = canon["request_id"].to_numpy()
        keys = req[lists.starts]
        check_slots(keys, sorted_lists, pos, lists, self.schema.position_base, self.schema.position,
                    self.schema.request_id)
        items = self.policy.vocab.encode(canon["item_id"].to_numpy())
        if light:
            folds, folds_list = self._folds(canon, keys)
            return _Prepared(SlateBlock(canon, lists, keys, items), canon["outcome"].to_numpy(dtype=np.float64),
                             None, None, folds, None, folds_list)
        self._check_lengths(lists, keys)
        p = canon["propensity"].to_numpy(dtype=np.float64)
        p_marg = None
        if self.pm_col is not None:
            names = {"propensity_marginal": self.pm_col}
            p_marg = check_numeric(canon.rename(columns={self.pm_col: "propensity_marginal"}),
                                   "propensity_marginal", names).astype(np.float64)
            check_propensity(p_marg, "propensity_marginal", names)
            top = lists.starts
            off = np.abs(p_marg[top] - p[top]) > 1e-6 * np.maximum(1.0, p[top])
            if off.any():
                g = int(np.flatnonzero(off)[0])
                raise InputError(
                    f"'{self.pm_col}' disagrees with '{self.schema.propensity}' at the top slot of {int(off.sum())} "
                    f"list(s) (e.g. request {show_key(keys[g])}: {p_marg[top][g]:.6g} vs {p[top][g]:.6g}); at the top slot the "
                    "probability given the items above is the marginal", column=self.pm_col,
                    fix="check which column holds the conditional (--propensity) and which the marginal "
                    "(--propensity-marginal)")
        unit_keys = canon[self.cluster].to_numpy() if self.unit == "other" and self.cluster in canon.columns else None
        folds = folds_list = None
        if self.needs_folds:  # only an outcome model uses them
            folds, folds_list = self._folds(canon, keys)
        block = SlateBlock(canon, lists, keys, items)
        prep = _Prepared(block, canon["outcome"].to_numpy(dtype=np.float64), p, p_marg, folds, unit_keys, folds_list)
        if codes is not None:
            prep.unit_keys = codes
        return prep

    def _folds(self, canon: pd.DataFrame, keys: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(per row, per list)`` folds: a seeded hash of the request (or cluster) key. The hash is a
        function of the key alone, so folded by request it is computed once per list (the same folds
        as hashing every row, at a tenth of the cost for 10 slots) and repeated over the list's rows
        only where needed (:meth:`_Prepared.row_folds`); folded by another cluster column, per row."""
        if self.fold_key == "request_id":
            return None, cluster_folds(keys, self.n_folds, self.seed)
        return cluster_folds(canon[self.fold_key].to_numpy(), self.n_folds, self.seed), None

    def _check_lengths(self, lists: Lists, keys: np.ndarray) -> None:
        if lists.n_lists == 0:
            return
        self.max_len = max(self.max_len, int(lists.lengths.max()))
        usual = self.length_seen if self.length_seen is not None else int(np.bincount(lists.lengths).argmax())
        odd = np.flatnonzero(lists.lengths != usual)
        if odd.size:
            self.ragged = True
            if self.whole_list and not self.allow_unequal:
                g = int(odd[0])
                raise InputError(
                    f"lists have unequal lengths (e.g. request {show_key(keys[g])} has {int(lists.lengths[g])} slots, "
                    f"most have {usual}); {', '.join(self.whole_list)} weight each list by all its slots, so a list "
                    "that lost rows (e.g. logged only down to the last slot viewed) gets a wrong weight",
                    column="position",
                    fix="keep only complete lists, use rips/iips/cascade_dr (their weights use only the slots at and "
                    "above each row, so truncated lists are fine), or pass --allow-unequal-lists if the lists really "
                    "differ in length")
        self.length_seen = usual

    def in_memory(self, df: pd.DataFrame, single: bool) -> Iterator[_Prepared]:
        canon = self._canon(df)
        codes = self.all_codes
        pos = canon["position"].to_numpy(dtype=np.int64)
        order, sorted_lists, lengths = sort_by_list(canon["request_id"].to_numpy(), pos)
        canon = canon.iloc[order].reset_index(drop=True)
        if codes is not None:
            codes = codes[order]
        starts = np.cumsum(lengths) - lengths
        if single or canon.shape[0] <= BLOCK_ROWS:
            cuts = [0, canon.shape[0]]
        else:  # cut at list starts about every BLOCK_ROWS rows
            want = np.arange(BLOCK_ROWS, canon.shape[0], BLOCK_ROWS)
            at = np.minimum(np.searchsorted(starts, want), starts.size - 1)  # the first list starting there
            cuts = sorted({0, *starts[at].tolist(), canon.shape[0]})
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            if hi > lo:
                yield self.prepare(canon.iloc[lo:hi].reset_index(drop=True),
                                   None if codes is None else codes[lo:hi])

    def stream(self, logs, cols: list[str], batch_size: int, light: bool = False) -> Iterator[_Prepared]:
        """Prepared blocks of complete lists from a file sorted by request (checked), batch by batch."""
        carry: pd.DataFrame | None = None
        last_key = None
        roles = self.roles
        if light:  # the outcome model's pass reads and checks only what it uses
            roles = ["item_id", "outcome", "position", "request_id"]
            need = {getattr(self.schema, r) for r in roles} | ({self.fold_key} - {"request_id"})
            cols = [c for c in cols if c in need]
        src = iter_batches(logs, columns=None if isinstance(logs, pd.DataFrame) else cols, batch_size=batch_size)
        for raw in src:
            if isinstance(logs, pd.DataFrame):
                raw = raw[cols]
            canon = self._canon(raw, roles)
            if carry is not None:
                canon = pd.concat([carry, canon], ignore_index=True)
            req = canon["request_id"].to_numpy()
            if not _non_decreasing(req) or (last_key is not None and req[0] < last_key):
                raise InputError(
                    f"streaming ranked lists needs the log sorted by '{self.schema.request_id}' (each list's rows "
                    "together, lists in increasing order)", column=self.schema.request_id,
                    fix=f"sort the file by {self.schema.request_id}, or drop --batch-size to evaluate in memory, "
                    "where any order works")
            cut = int(np.searchsorted(req, req[-1], side="left")) if req.size else 0
            carry = canon.iloc[cut:]
            if cut:
                last_key = req[cut - 1]
                yield self.prepare(canon.iloc[:cut].reset_index(drop=True), contiguous=True, light=light)
        if carry is not None and len(carry):
            yield self.prepare(carry.reset_index(drop=True), contiguous=True, light=light)


def _non_decreasing(keys: np.ndarray) -> bool:
    """Whether the keys never decrease: numbers compared in numpy (``pd.Series(keys)`` would copy
    the batch's keys first), other keys (strings) by pandas."""
    if keys.dtype.kind in "iuf":  # request ids are checked non-missing, so no NaN here
        return keys.size < 2 or bool(np.greater_equal(keys[1:], keys[:-1]).all())
    return bool(pd.Series(keys, copy=False).is_monotonic_increasing)


# -- per block arrays ----------------------------------------------------------------

def _arrays(prep: _Prepared, policy, model, ests, value_per: str):
    arrays, bound = _free_arrays(prep, policy, ests, value_per, with_prev=model is not None)
    if model is not None:
        b = prep.block
        rows = np.arange(b.n)
        folds = prep.row_folds()
        arrays.q_logged = model.predict(b.canon, rows, b.items, b.slot, folds)
        arrays.q_target = _model_term(b, bound, model, folds, arrays.w_prev)
    return arrays, bound


def _free_arrays(prep: _Prepared, policy, ests, value_per: str, with_prev: bool):
    """The arrays that need no outcome model: weights, marginal weights, norms."""
    b = prep.block
    lists = b.lists
    bound = policy.bind(b)
    need_marg = any(e.needs_marginal for e in ests)
    if need_marg:  # a deterministic table's marginal is its conditional: keep it
        rho = bound.cond / prep.p
    else:  # the conditionals are used only here: the ratios, then the weights, in their buffer
        rho = np.divide(bound.cond, prep.p, out=bound.cond)
        bound.cond = None
    w = lists.cumprod(rho, out=rho)  # in place: the ratios are not needed once multiplied
    w_prev = lists.previous(w, 1.0) if with_prev else None
    arrays = SlateArrays(y=prep.y, w=w, w_prev=w_prev,
                         w_list=lists.last(w) if any(e.weight == "w_list" for e in ests) else None,
                         norm=(1.0 / lists.row_length) if value_per == "list" else None)
    if need_marg:
        om = bound.marginal() / prep.p_marg[None, :]  # (batches, n)
        per_list = np.add.reduceat(om, lists.starts, axis=1) if lists.n else om
        w_pi = np.repeat(per_list, lists.lengths, axis=1) - (lists.row_length - 1)[None, :]
        arrays.w_marg, arrays.w_pi = om.mean(axis=0), w_pi.mean(axis=0)
        if om.shape[0] > 1:
            arrays.w_marg_batches, arrays.w_pi_batches = om, w_pi
    return arrays, bound


# -- one read of a streamed file for Cascade-DR -------------------------------------------

REPLAY_BYTES = 768 * 2**20  # memory for blocks kept until the outcome model is fitted (else a 2nd read)


def _compact(x: np.ndarray) -> np.ndarray:
    """``x`` in the narrowest of int8 / float32 that holds it exactly (clicks: int8), else as is."""
    for dt in (np.int8, np.float32):
        c = x.astype(dt)
        if np.array_equal(c, x):
            return c
    return x


@dataclass
class _Kept:
    """What scoring a block needs once the outcome model is fitted, and nothing else (no frame, no
    per-row copies of what the list lengths give back, no Plackett-Luce masses that the item codes
    give back): for 10-slot lists of a context-free score target about 11 bytes a row (the cascade
    weight, the item code and the outcome), else about 27 (with the masses and normalisers)."""

    lengths: np.ndarray
    keys: np.ndarray
    y: np.ndarray  # compacted, exact
    items: np.ndarray  # item codes in the narrowest of int16 / int32 that holds them
    folds: np.ndarray  # one per list (folds follow the request)
    arrays: SlateArrays  # y, w_prev, w_list, norm, q_* dropped (rebuilt in restore)
    cells_state: tuple

    @classmethod
    def of(cls, prep: _Prepared, arrays: SlateArrays, bound) -> _Kept:
        b = prep.block
        lists = b.lists
        slim = replace(arrays, y=None, w_prev=None, w_list=None, norm=None, q_logged=None, q_target=None)
        top = int(b.items.max()) if b.items.size else 0
        items = b.items.astype(np.int16 if top < 2**15 else np.int32) if top < 2**31 - 1 else b.items
        raw = b.canon["outcome"].to_numpy() if b.canon is not None else None
        # an outcome column stored in one byte (clicks) is kept as read: exact, nothing to check
        y = raw if raw is not None and raw.dtype.itemsize == 1 and raw.dtype.kind in "iub" else _compact(prep.y)
        return cls(lists.lengths.astype(np.int32), b.request_keys, y, items,
                   _list_folds(prep).astype(np.int8), slim, bound.cells_state)

    @property
    def nbytes(self) -> int:
        arrs = [self.lengths, self.keys, self.y, self.items, self.folds, *self.cells_state]
        arrs += [v for v in vars(self.arrays).values() if isinstance(v, np.ndarray)]
        return int(sum(a.nbytes for a in arrs if isinstance(a, np.ndarray)))

    def restore(self, policy, model, ests, value_per: str) -> tuple[_Prepared, SlateArrays]:
        """The block's prepared rows and full arrays, with the outcome model's two terms."""
        lists = Lists(self.lengths.astype(np.int64))
        items = self.items  # narrow codes: pl_cells widens them chunk by chunk where they index
        y = self.y.astype(np.float64)
        block = SlateBlock(None, lists, self.keys, items)
        arrays = replace(self.arrays, y=y, w_prev=lists.previous(self.arrays.w, 1.0),
                         norm=(1.0 / lists.row_length) if value_per == "list" else None)
        if any(e.weight == "w_list" for e in ests):
            arrays.w_list = lists.last(arrays.w)
        f_list = self.folds.astype(np.int64)
        cells, own = policy.pl_cells(lists, items, self.cells_state, model.q_, model.global_, None, logged=True,
                                     folds_list=f_list)
        # the logged item's own cell from the same per-slot tables: model.predict's number, one gather
        if own is None:
            own = model.predict(None, None, items, lists.slot, np.repeat(f_list, lists.lengths))
        arrays.q_logged = own
        # the model term counts only where W_{k-1} > 0 (np.where(w_prev > 0, cells, 0), in place)
        keep = arrays.w_prev > 0
        if not keep.all():
            cells[~keep] = 0.0
        arrays.q_target = cells
        return _Prepared(block, y, None, None, None, None), arrays


def _fit_and_keep(blocks, model, policy, ests, value_per: str, acc) -> bool:
    """Read the file once: fit the outcome model, accumulate what needs no model and keep the
    compact blocks in ``acc.kept``. ``False`` (and nothing kept) when they outgrow ``REPLAY_BYTES``
    (the caller then reads the file a second time); the model is fitted either way."""
    kept: list[_Kept] | None = []
    used = 0
    for prep in blocks("ope (outcome model, weights)"):
        b = prep.block
        model.partial_fit_lists(b.items, b.lists, b.lists.revcumsum(prep.y), _list_folds(prep))
        if kept is None:
            continue
        arrays, bound = _free_arrays(prep, policy, ests, value_per, with_prev=False)
        k = _Kept.of(prep, arrays, bound)
        used += k.nbytes
        if used > REPLAY_BYTES:
            kept = None
            continue
        acc.add_free(prep, arrays, bound)
        kept.append(k)
    acc.kept = kept
    acc.kept_bytes = used if kept is not None else 0
    return kept is not None


def _list_folds(prep: _Prepared) -> np.ndarray:
    """The fold of each list (folds follow the request in the one-read path)."""
    if prep.folds_list is not None:
        return prep.folds_list
    return prep.folds[prep.block.lists.starts]


def _model_term(b: SlateBlock, bound, model, folds: np.ndarray, w_prev: np.ndarray) -> np.ndarray:
    """``sum_a pi(a | a_<k) Qhat_k(a)`` per row (0 where ``W_{k-1} = 0``: the term is multiplied by it)."""
    n = b.n
    out = np.zeros(n)
    if isinstance(model, CellMeanOutcome):
        fast = bound.dm_cells(model.q_, model.global_, folds)
        if fast is not None:
            return np.where(w_prev > 0, fast, 0.0)
    rows = np.flatnonzero(w_prev > 0)
    if rows.size == 0:
        return out
    per_row = np.asarray(bound.n_candidates)[rows].astype(np.int64)
    total = int(per_row.sum())
    if total > PAIR_LIMIT:
        raise InputError(
            f"cascade_dr would average its outcome model over {total:,} (row, item) pairs in one block",
            column="outcome_model", fix="use the default cell-mean outcome model (computed without pairs for a "
            "Plackett-Luce target), score fewer candidates per request, or use rips")
    cum = np.cumsum(per_row)
    edges = np.searchsorted(cum, np.arange(PAIR_CHUNK, total + PAIR_CHUNK, PAIR_CHUNK), side="left")
    lo = 0
    for hi in np.unique(np.r_[edges + 1, rows.size]):
        hi = int(min(hi, rows.size))
        if hi <= lo:
            continue
        pr = bound.pairs(rows[lo:hi])
        keep = pr.prob > 0
        if keep.any():
            r, it, ps, pb = pr.row[keep], pr.item[keep], pr.pos[keep], pr.prob[keep]
            q = model.predict(b.canon, r, it, ps, folds[r])
            out += np.bincount(r, weights=pb * q, minlength=n)
        lo = hi
    return out


# -- accumulation --------------------------------------------------------------------

class _Accumulator:
    """Sums that leave each block: row moments, unit totals, bootstrap and Monte Carlo replicates."""

    def __init__(self, ests, unit: str, cluster: str | None, bootstrap: int, seed: int, clip, streaming: bool):
        self.ests, self.unit, self.cluster, self.bootstrap, self.streaming = ests, unit, cluster, bootstrap, streaming
        k = len(ests)
        self.row_moments = [Moments() for _ in range(k)]
        self.cmoments = [ClusterMoments() for _ in range(k)]
        self.mc_moments: list[list[Moments] | None] = [None] * k
        self.unit_totals: list[list[np.ndarray]] = [[] for _ in range(k)]  # in memory, for the bootstrap
        self.other_totals: list[np.ndarray | None] = [None] * k  # in memory, cluster column != request
        self.boot_acc = [np.zeros((4, bootstrap)) for _ in range(k)] if bootstrap else None
        self.rng = np.random.default_rng(seed)
        self.stream = ClusterStream(cluster) if unit == "other" and streaming else None
        self.wstats = WeightStats(clip)
        self.w_all: list[np.ndarray] = []
        self.n = self.n_units = self.max_unit = self.n_lists = 0
        self.y_mom = Moments()
        self.fam = {name: np.zeros(4) for name in ("list", "marginal", "pi")}  # n, sum, sum2, zeros
        self.fam_max = {name: -np.inf for name in self.fam}
        self.n_unscored = 0
        self.pi_product_gap = 0
        self.pi_rows_below_top = 0
        self.mc_max_se = 0.0
        self.kept: list | None = None  # streamed blocks waiting for the outcome model (_fit_and_keep)
        self.kept_bytes = 0

    def _totals(self, prep: _Prepared, t) -> np.ndarray:
        if self.unit == "lists":
            c, a, b = t
            lists = prep.block.lists
            st = lists.starts
            size = lists.lengths.astype(float)
            out = np.empty((4, lists.n_lists))
            # c = None is zeros and b = None ones: their list sums are 0 and the length, exactly
            out[0] = 0.0 if c is None else np.add.reduceat(c, st)
            out[1] = size
            out[2] = np.add.reduceat(a, st)
            out[3] = size if b is None else np.add.reduceat(b, st)
            return out
        c, a, b = _dense(*t)
        return np.stack([c, np.ones_like(c), a, b])

    def add(self, prep: _Prepared, arrays: SlateArrays, bound) -> None:
        self.add_free(prep, arrays, bound)
        self.add_terms(prep, arrays)

    def add_free(self, prep: _Prepared, arrays: SlateArrays, bound) -> None:
        """The sums that need no outcome model (counts, weight and outcome diagnostics). Each is its
        own accumulator, so adding them in a first read and the terms later gives the same numbers."""
        lists = prep.block.lists
        self.n += lists.n
        self.n_lists += lists.n_lists
        self.wstats.update(arrays.w, prep.p)
        if not self.streaming:
            self.w_all.append(arrays.w)
        self.y_mom = self.y_mom.merge(Moments.of_terms(None, arrays.y, None))
        self._families(arrays, lists, prep)
        self.n_unscored += int(getattr(bound, "n_unscored", 0))

    def add_terms(self, prep: _Prepared, arrays: SlateArrays) -> None:
        """The estimators' terms of one block: row moments, unit totals, bootstrap, Monte Carlo batches."""
        terms = [e.terms_checked(arrays) for e in self.ests]
        for i, t in enumerate(terms):
            self.row_moments[i] = self.row_moments[i].merge(Moments.of_terms(*t))
        if self.unit == "other":
            self._add_other(prep, terms)
        else:
            tots = [self._totals(prep, t) for t in terms]
            for i, (tot, cm) in enumerate(zip(tots, cluster_moments_of_many(tots), strict=True)):
                self.cmoments[i] = self.cmoments[i].merge(cm)  # one centring for all estimators
                if self.bootstrap and not self.streaming:
                    self.unit_totals[i].append(tot)
            if tots:
                self.n_units += tots[0].shape[1]
                self.max_unit = max(self.max_unit, int(tots[0][1].max()) if tots[0].shape[1] else 0)
            if self.bootstrap and self.streaming and tots:
                self._poisson([(t[0], t[2], t[3]) for t in tots], tots[0][1] if self.unit == "lists" else None)
        if arrays.w_marg_batches is not None:  # Monte Carlo batches of the target's marginals
            for i, e in enumerate(self.ests):
                if not e.needs_marginal:
                    continue
                nb = arrays.w_marg_batches.shape[0]
                if self.mc_moments[i] is None:
                    self.mc_moments[i] = [Moments() for _ in range(nb)]
                for bb in range(nb):
                    m = Moments.of_terms(*e.terms_checked(arrays.mc_batch(bb)))
                    self.mc_moments[i][bb] = self.mc_moments[i][bb].merge(m)

    def _poisson(self, terms, sizes) -> None:
        from causalrec.ope.evaluation import _poisson_bootstrap

        _poisson_bootstrap(self.rng, terms, self.boot_acc, self.bootstrap, sizes=sizes)

    def _add_other(self, prep: _Prepared, terms) -> None:
        dense = [_dense(*t) for t in terms]
        if self.streaming:
            out = self.stream.add(prep.unit_keys, dense)
            self._add_stream_totals(out)
            return
        codes = prep.unit_keys  # integer codes over the whole log
        g = int(codes.max()) + 1 if codes.size else 0
        for i, (c, a, b) in enumerate(dense):
            tot = np.stack([np.bincount(codes, weights=c, minlength=g), np.bincount(codes, minlength=g).astype(float),
                            np.bincount(codes, weights=a, minlength=g), np.bincount(codes, weights=b, minlength=g)])
            cur = self.other_totals[i]
            if cur is None:
                self.other_totals[i] = tot
            else:
                if cur.shape[1] < g:
                    cur = np.pad(cur, ((0, 0), (0, g - cur.shape[1])))
                cur[:, :g] += tot
                self.other_totals[i] = cur

    def _add_stream_totals(self, totals: list[np.ndarray]) -> None:
        for i, cm in enumerate(cluster_moments_of_many(totals)):
            self.cmoments[i] = self.cmoments[i].merge(cm)
        if self.bootstrap and totals and totals[0].shape[1]:
            self._poisson([(t[0], t[2], t[3]) for t in totals], totals[0][1])

    def finish(self) -> None:
        """After the last block: flush a streamed cluster column, or turn in-memory cluster sums into moments."""
        if self.unit != "other":
            return
        if self.streaming:
            self._add_stream_totals(self.stream.flush())
            check_clusters(self.cluster, n_missing=0, n_clusters=self.stream.n_clusters)
            self.n_units, self.max_unit = self.stream.n_clusters, self.stream.max_size
            return
        for i, tot in enumerate(self.other_totals):
            if tot is not None:
                self.cmoments[i] = ClusterMoments.of_array(tot[:, tot[1] > 0])
                self.other_totals[i] = tot[:, tot[1] > 0]
        sizes = self.other_totals[0][1] if self.other_totals and self.other_totals[0] is not None else np.zeros(0)
        self.n_units, self.max_unit = int(sizes.size), int(sizes.max()) if sizes.size else 0

    def _families(self, arrays: SlateArrays, lists: Lists, prep: _Prepared) -> None:
        st = lists.starts
        parts = {}
        if arrays.w_list is not None:
            parts["list"] = arrays.w_list[st]
        if arrays.w_marg is not None:
            parts["marginal"] = arrays.w_marg
            parts["pi"] = arrays.w_pi[st] if lists.n_lists else np.zeros(0)
            if prep.p_marg is not None:
                below = lists.slot > 0
                self.pi_rows_below_top += int(below.sum())
                self.pi_product_gap += int((np.abs(prep.p_marg - prep.p)[below] > 1e-9).sum())
        if arrays.w_marg_batches is not None:
            b = arrays.w_marg_batches
            se = np.std(b, axis=0, ddof=1) / np.sqrt(b.shape[0]) / np.maximum(np.abs(arrays.w_marg), 1e-300)
            self.mc_max_se = max(self.mc_max_se, float(np.nanmax(np.where(arrays.w_marg > 0, se, 0.0))))
        for name, w in parts.items():
            if w.size:
                self.fam[name] += [w.size, w.sum(), vdot(w, w), w.size - np.count_nonzero(w)]
                self.fam_max[name] = max(self.fam_max[name], float(w.max()))

    @property
    def y_sum(self) -> float:
        return float(self.y_mom.mean[1] * self.y_mom.n)

    @property
    def y_ss(self) -> float:
        return float(self.y_mom.m2[1, 1])

    def slate_diagnostics(self, mc_method) -> dict:
        out: dict[str, Any] = {}
        for name, (n, s, s2, z) in self.fam.items():
            if n:
                out[f"slate_weight_{name}"] = {"n": int(n), "mean": s / n, "max": self.fam_max[name],
                                               "ess_ratio": (s * s / s2 / n) if s2 > 0 else 0.0,
                                               "share_zero": z / n}
        if mc_method is not None:
            out["target_marginal_method"] = mc_method
            if mc_method == "monte_carlo":
                out["target_marginal_mc_max_rel_se"] = self.mc_max_se
        out["unscored_logged_items"] = self.n_unscored
        return out

    def slate_warnings(self, ests, pm_col) -> list[str]:
        w = []
        names = {e.name for e in ests}
        if names & {"pi", "snpi"} and self.pi_rows_below_top and self.pi_product_gap:
            share = self.pi_product_gap / self.pi_rows_below_top
            w.append(f"pi/snpi assume a logging policy that fills slots independently (conditional = marginal), but "
                     f"'{pm_col}' differs from the propensity on {100 * share:.1f}% of the rows below the top slot: "
                     "the PseudoInverse closed form is then biased; prefer iips (item-position rewards) or rips")
        if self.n_unscored:
            w.append(f"{self.n_unscored:,} logged rows show an item the target does not score for that request: the "
                     "target never shows it there (weight 0); check that the score table covers the candidates")
        fam = self.fam["list"]
        if "sips" in names or "snsips" in names:
            from causalrec.diagnostics.weights import ess_from_sums, ess_warning

            n, s, s2, _ = fam
            msg = ess_warning(ess_from_sums(s, s2), n, "the whole-list weights of sips rest on a few lists: sips is "
                              "unreliable here; prefer rips or cascade_dr (cascade rewards) or iips")
            if msg and s2 > 0:
                w.append(msg)
        return w
