"""Frame-level entry points used by ``causalrec rank train/eval`` and by notebooks.

They validate the columns (errors name the column and the fix), call
:func:`causalrec.ranking.train.train_ranker` or the evaluation functions, and
return plain results; no statistics are added here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.readers import read_table
from causalrec.data.schema import LogSchema
from causalrec.data.validation import (
    check_finite,
    check_nonempty,
    check_numeric,
    zero_based_positions,
)
from causalrec.errors import InputError
from causalrec.results import Estimate


def _need(df: pd.DataFrame, col: str | None, what: str, flag: str) -> str:
    if col is None or col not in df.columns:
        shown = ", ".join(map(str, list(df.columns)[:12]))
        raise InputError(f"column '{col}' ({what}) is not in the data; columns present: {shown}",
                         column=str(col), fix=f"pass {flag} COL naming the {what} column")
    return col


def _texts(df: pd.DataFrame, col: str, flag: str) -> np.ndarray:
    _need(df, col, "text", flag)
    s = df[col]
    if s.isna().any():
        raise InputError(f"column '{col}' has {int(s.isna().sum())} missing texts", column=col,
                         fix="fill them (e.g. with an empty string) or drop those rows")
    return s.astype(str).to_numpy()


def fit_ranker_on_frame(
    data: pd.DataFrame | str | os.PathLike,
    *,
    label: str,
    weight: str | None = None,
    user_text: str = "user_text",
    item_text: str = "item_text",
    group: str | None = "request_id",
    position: str | None = None,
    position_base: int = 0,
    val_label: str | None = None,
    val_weight: str | None = None,
    encoder: str | os.PathLike | None = None,
    config: Any = None,
    examination: Sequence[float] | None = None,
    exam_context: str | None = None,
):
    """Train a ranker from a table (e.g. ``causalrec debias`` output); returns ``(model, history)``.

    ``group`` (request ids) drives the list objectives and the validation
    split; when the column is absent the pointwise objective trains without
    one. ``val_label`` / ``val_weight`` name the columns that score the
    held-out lists (default: ``label`` / ``weight``); ``position`` the slot
    column of the ``click_model`` objective; ``examination`` (relative
    examination per slot) fixes that objective's examination tower
    (see :func:`causalrec.ranking.train.train_ranker`); ``exam_context`` a
    column whose values each get their own learned examination tower.
    """
    from causalrec.ranking.train import LIST_OBJECTIVES, TrainConfig, train_ranker

    df = read_table(data)
    check_nonempty(df, "training data")
    cfg = config or TrainConfig()
    _need(df, label, "label", "--label")
    y = check_numeric(df, label)
    check_finite(y, label)

    def weights_of(col: str | None, flag: str) -> np.ndarray | None:
        if col is None:
            return None
        _need(df, col, "sample weight", flag)
        v = check_numeric(df, col)
        check_finite(v, col)
        if np.any(v < 0):
            raise InputError(f"column '{col}' has negative weights", column=col,
                             fix="sample weights must be >= 0 (use the `weight` column of `causalrec debias`)")
        return v

    w = weights_of(weight, "--weight")
    yv = None
    if val_label is not None:
        _need(df, val_label, "validation label", "--val-label")
        yv = check_numeric(df, val_label)
        check_finite(yv, val_label)
    wv = weights_of(val_weight, "--val-weight")
    groups = None
    if cfg.objective in ("pairwise", *LIST_OBJECTIVES):
        _need(df, group, "request id", "--group")
    if group is not None and group in df.columns:
        groups = df[group].to_numpy()
    pos = None
    if cfg.objective == "click_model":
        _need(df, position, "position", "--position")
        pos = zero_based_positions(check_numeric(df, position), position_base, position)
    ctx = None
    if exam_context is not None:
        _need(df, exam_context, "examination context", "--exam-context")
        ctx = df[exam_context].to_numpy()
    return train_ranker(_texts(df, user_text, "--user-text"), _texts(df, item_text, "--item-text"), y,
                        weights=w, groups=groups, positions=pos, val_labels=yv, val_weights=wv,
                        examination=examination, exam_contexts=ctx, encoder=encoder, config=cfg)


def evaluate_ranker(
    model: Any,
    data: pd.DataFrame | str | os.PathLike,
    *,
    relevance: str | None = None,
    ks: Sequence[int] = (5, 10),
    user_text: str = "user_text",
    item_text: str = "item_text",
    group: str = "request_id",
    schema: LogSchema | None = None,
    estimators: Sequence[str] = ("ips", "snips", "dr"),
    ci_level: float = 0.95,
    seed: int = 0,
    device: str = "cpu",
):
    """Evaluate a ranker on a table.

    With ``relevance`` (known relevance, e.g. the simulator's
    ``true_relevance``): NDCG@k and recall@k over the requests in ``group``.
    Without it the table must be randomised logs (``item_id``, ``outcome``,
    ``propensity``, ``position``): the value of the ranker's top-k per
    position by OPE, the candidates being every item in the table.
    Returns a :class:`causalrec.ranking.evaluate.RankingResult`.
    """
    from causalrec.ranking.evaluate import (
        RankingResult,
        per_request_metrics,
        policy_value,
        ranking_estimates,
    )

    df = read_table(data)
    check_nonempty(df, "evaluation data")
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise InputError(f"k must be positive integers, got {ks}", column="k", fix="e.g. --k 5,10")
    config = {"relevance": relevance, "ks": ks, "user_text": user_text, "item_text": item_text, "group": group,
              "ci_level": ci_level, "seed": seed, "model": dict(getattr(model, "meta", {}))}
    ut = _texts(df, user_text, "--user-text")
    it = _texts(df, item_text, "--item-text")
    estimates: list[Estimate] = []
    per_request = None
    diagnostics: dict[str, Any] = {}
    if relevance is not None:
        _need(df, relevance, "true relevance", "--relevance")
        _need(df, group, "request id", "--group")
        r = check_numeric(df, relevance)
        scores = model.score(list(ut), list(it), device=device)
        per_request = per_request_metrics(scores, r, df[group].to_numpy(), ks=ks, seed=seed)
        if per_request.empty:
            raise InputError(f"no request has positive relevance in column '{relevance}'", column=relevance,
                             fix="check the relevance column")
        estimates = ranking_estimates(per_request, ks, estimator="ranker", ci_level=ci_level)
        diagnostics = {"n_requests": int(len(per_request)),
                       "mean_candidates": float(per_request["n_candidates"].mean())}
        config["mode"] = "known_relevance"
    else:
        schema = schema or LogSchema()
        missing = [c for c in (schema.item_id, schema.outcome, schema.propensity, schema.position)
                   if c not in df.columns]
        if missing:
            raise InputError(
                f"without --relevance the data must be randomised logs, but column '{missing[0]}' is missing",
                column=str(missing[0]),
                fix="pass --relevance COL (known relevance), or randomised logs with item_id, outcome, "
                    "propensity and position columns")
        cat = df[[schema.item_id]].assign(_t=it).drop_duplicates(schema.item_id)
        contexts, inv = np.unique(ut, return_inverse=True)
        S = model.score_matrix(list(contexts), list(cat["_t"]), device=device)[inv]
        # the ranker fills every logged slot: position k gets its k-th best item
        K = int(df[schema.position].max()) + 1 - schema.position_base
        estimates = policy_value(df, S, cat[schema.item_id].to_numpy(), schema=schema, estimators=estimators,
                                 n_positions=K, ci_level=ci_level, seed=seed)
        diagnostics = {"n_contexts": int(contexts.size), "n_candidates": int(len(cat)), "n_positions": K}
        config["mode"] = "ope_on_randomised_logs"
    return RankingResult(command="rank eval", n_rows=len(df), estimates=estimates, diagnostics=diagnostics,
                         warnings=[], config=config, per_request=per_request)


def compare_rankers(models: Sequence[tuple[str, Any]], data: pd.DataFrame | str | os.PathLike, **kwargs: Any):
    """Evaluate several rankers on the same table; one :class:`RankingResult` with every model's estimates.

    ``models``: ``(name, ranker)`` pairs; each estimate carries ``model=name``
    in its extra fields, and ``result.side_by_side()`` / ``summary()`` put the
    models next to each other. ``kwargs`` go to :func:`evaluate_ranker`.
    """
    from causalrec.ranking.evaluate import RankingResult

    if not models:
        raise InputError("no model to evaluate", column="model_dir", fix="pass one or more model folders")
    df = read_table(data)
    estimates: list[Estimate] = []
    per_model: dict[str, Any] = {}
    warnings: list[str] = []
    config: dict[str, Any] = {}
    for name, model in models:
        r = evaluate_ranker(model, df, **kwargs)
        for e in r.estimates:
            e.extra = {**e.extra, "model": name}
            estimates.append(e)
        per_model[name] = {"diagnostics": r.diagnostics, "model": dict(getattr(model, "meta", {}))}
        warnings += [f"{name}: {w}" for w in r.warnings]
        config = {k: v for k, v in r.config.items() if k != "model"}
    # Models that truncate texts at different token limits see different inputs, so their
    # gap mixes training with truncation; say so rather than let it pass as a training effect.
    limits = {name: getattr(model, "max_length", None) for name, model in models}
    if len({v for v in limits.values() if v is not None}) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in limits.items())
        warnings.append(f"the models use different token limits ({listed}): differences between them include "
                        "truncation, not only training; train them with the same --max-length")
    diagnostics = {**next(iter(per_model.values()))["diagnostics"], "models": list(per_model)}
    config["models"] = {k: v["model"] for k, v in per_model.items()}
    return RankingResult(command="rank eval", n_rows=len(df), estimates=estimates, diagnostics=diagnostics,
                         warnings=warnings, config=config)
