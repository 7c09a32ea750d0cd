"""Training the two-tower ranker on (corrected) labels, with unbiased model selection.

Start and regularisation. The ranker starts as the zero-shot scorer (see
:mod:`causalrec.ranking.model`: at its starting values it ranks exactly as the
untrained encoder's cosine) and every objective below is minimised plus an
L2-SP penalty toward those starting values::

    L_total = L + reg * ( ||P - I||^2 + ||w||^2 + ||layers - pretrained||^2 )

so the learned part is a correction of the zero-shot score, not a new model.

Objectives (``y`` the label, possibly an IPS/DR corrected one; ``w`` the
sample weight; gains ``g = w y``; ``s`` the logit; ``q`` a request list):

* ``pointwise``: weighted soft-target binary cross-entropy, self-normalised
  within each mini-batch::

      L = sum_i w_i [ -y_i log sigma(s_i) - (1 - y_i) log(1 - sigma(s_i)) ] / sum_i w_i

  It is linear in ``y``, so unbiased labels (``E[y | x, a] = r(x, a)``) give
  an unbiased loss even when single labels exceed 1 or, for DR pseudo-labels,
  fall below 0. Constant weights cancel in the ratio: training with
  ``w = const`` is exactly naive training.
* ``pairwise``: RankNet within request lists, each ordered pair weighted by
  its label gain (see :func:`causalrec.debias.pairwise_weights`)::

      L = sum_(i,j) g_ij log(1 + exp(-(s_i - s_j))) / sum g_ij,
      g_ij = (y_i - y_j)^+ (w_i + w_j) / 2

* ``listwise``: softmax cross-entropy over each list (ListNet's top-one
  probability with unnormalised gains; Cao et al. 2007, Ai et al. 2018)::

      L = - sum_q sum_{j in q} g_j log softmax_q(s)_j / (n_lists * gbar)

  ``gbar`` is the mean over training lists of ``sum_j |g_j|``: a constant, so
  the loss stays linear in the gains and IPS / DR gains keep it unbiased.
* ``lambdarank``: an NDCG surrogate -- the pairwise logistic loss weighted by
  how much swapping ``i`` and ``j`` changes the DCG discount under the
  current ranking (LambdaRank, Burges 2010), with the gain on the winning
  side only so the loss stays linear in the gains (IPS-unbiased)::

      L = sum_q sum_{i != j} g_i |1/log2(1 + rank_i) - 1/log2(1 + rank_j)| log(1 + exp(s_j - s_i)) / (n_lists * gbar)

* ``click_model``: a two-tower additive click model (PAL, Guo et al. 2019):
  the raw click is explained by a relevance tower (the ranker) times an
  examination tower per slot, ``P(C = 1 | u, a, k) = sigma(s(u, a)) sigma(e_k)``,
  fitted by weighted BCE on the clicks of shown rows (``positions`` needed).
  No propensity of the slot is needed; it assumes the examination
  hypothesis (examination depends on the slot only). ``examination=`` fixes
  the examination tower to a known curve (``log sigma(e_k)`` replaced by
  ``log rho_k``): needed under a personalised ranking, where a learned
  tower is confounded with relevance (the slot follows it). The fitted
  ``sigma(e_k) / sigma(e_0)`` is stored in ``model.meta["examination"]``.
  ``exam_contexts=`` (one value per row, e.g. the device or the page type)
  learns one examination tower per context, ``sigma(e_{c,k})``; it then
  assumes examination depends on the slot and that context only, and stores
  each context's curve in ``model.meta["examination_by_context"]``.

Model selection without bias. A share ``val_share`` of the request lists
(``groups``) is held out. Before training (epoch 0, the zero-shot scorer) and
after each epoch the ranker's DCG@k on the held-out lists is estimated with
the held-out *validation gains* ``g = w_val y_val`` (default: the training
label and weight; pass corrected labels)::

    DCG_hat@k = mean_q sum_{j in q, rank_j < k} g_j / log2(rank_j + 2)

DCG is linear in the gains, so for a ranking fixed before the held-out
labels are seen, IPS or DR gains make it an unbiased estimate of the DCG
against the true relevance. The ``click_model`` objective given an ``examination``
curve and no validation labels scores the held-out lists with the clicks
divided by their slot's examination, ``g = c / max(rho_k, val_position_clip)``
(IPS on the slot: ``E[g | u, a, k] = P(C = 1 | u, a, k = 0)`` when the curve
is right and the floor does not bind), so selection is not position-biased. The returned model is the epoch with the best
estimate, but it replaces the zero-shot scorer only when its gain over epoch 0
is at least ``min_gain_se`` standard errors of the paired (per-list)
difference -- a noisy validation does not talk the ranker out of its start.

Selecting by held-out likelihood (``select_by="loglik"``, the default of the
``click_model`` objective under ``select_by="auto"``). The click model is a
probability model of the clicks, so its own held-out negative log-likelihood
on the validation lists' shown rows::

    NLL_val = sum_{j in val} w_j [ -c_j log p_j - (1 - c_j) log(1 - p_j) ] / sum_j w_j,
    p_j = sigma(s(u_j, a_j)) rho_{k_j}

is a proper scoring rule: in expectation it is minimised by the true click
probability, hence (the examination tower fixed, or identified) by the true
relevance. It uses every held-out row, clicked or not, so it is far less noisy
than the held-out DCG of the clicked rows alone, and it sees no true relevance.
The epoch with the lowest ``NLL_val`` is the candidate; the DCG gate above
still decides whether it replaces the zero-shot scorer. ``patience``: stop
once the selection criterion has not improved for that many epochs, so
``epochs`` is a budget, not a fixed length.

The loop is plain torch (AdamW; encoder layers at ``lr``, the head at
``head_lr``), seeded, on ``device`` ("auto": CUDA when visible). The frozen
part of the encoder is run once per unique text (see
:mod:`causalrec.ranking.model`); with ``trainable_layers=0`` the pooled vectors
are computed once and an epoch only costs the projection.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from causalrec.errors import InputError

OBJECTIVES = ("pointwise", "pairwise", "listwise", "lambdarank", "click_model")
LIST_OBJECTIVES = ("listwise", "lambdarank")


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_ranker` (small CPU defaults).

    ``batch_size`` counts rows (pointwise, click_model), pairs (pairwise) or
    request lists (listwise, lambdarank). ``epochs=0`` returns the zero-shot
    scorer. ``reg`` is the L2-SP strength toward the zero-shot start;
    ``val_share`` the share of request lists held out for model selection
    (0: none, the last epoch is kept); ``val_k`` the DCG cut-off;
    ``min_gain_se`` how many paired standard errors a trained epoch must gain
    over the zero-shot one to replace it. ``val_position_clip``: floor on ``rho_k`` in the
    click-model validation gains ``c / rho_k``. ``select_by``: the epoch
    criterion, ``"dcg"`` (held-out DCG@k), ``"loglik"`` (held-out click
    log-likelihood, ``click_model`` only) or ``"auto"`` (``loglik`` for
    ``click_model``, else ``dcg``). ``patience``: stop after that many epochs
    without improvement of the criterion (``None``: run all ``epochs``).
    ``ema_epochs``: horizon, in passes over the training data, of the
    exponential moving average of the trained weights that is validated,
    selected and returned (0: off, the raw iterate; ``None``: 2 for
    ``click_model``, 0 otherwise). ``refit``: once the held-out lists have
    chosen a trained epoch ``e``, retrain from the same start on every row
    (training and held-out lists) for ``e`` epochs and return that model
    (``None``: on for ``click_model``, off otherwise).
    """

    objective: str = "pointwise"
    epochs: int = 3
    batch_size: int = 64
    lr: float = 5e-5
    head_lr: float = 2e-3
    weight_decay: float = 0.0
    reg: float = 1e-3
    item_prior: bool = True
    max_length: int = 48
    trainable_layers: int = 1
    seed: int = 0
    device: str = "auto"
    max_pairs_per_group: int | None = 20
    val_share: float = 0.2
    val_k: int = 10
    min_gain_se: float = 1.0
    val_position_clip: float = 0.05
    select_by: str = "auto"
    patience: int | None = None
    ema_epochs: float | None = None
    refit: bool | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"unknown objective {self.objective!r}", column="objective",
                             fix=f"use one of {', '.join(OBJECTIVES)}")
        if self.epochs < 0 or self.batch_size < 1:
            raise InputError("epochs must be >= 0 and batch_size >= 1", column="epochs",
                             fix="pass --epochs 0 for the zero-shot model, or a positive number")
        if not 0 <= self.val_share < 1:
            raise InputError(f"val_share must be in [0, 1), got {self.val_share}", column="val_share",
                             fix="e.g. 0.2 (a fifth of the request lists held out), or 0 for none")
        if self.select_by not in ("auto", "dcg", "loglik"):
            raise InputError(f"unknown select_by {self.select_by!r}", column="select_by",
                             fix="use auto, dcg or loglik")
        if self.select_by == "loglik" and self.objective != "click_model":
            raise InputError("select_by='loglik' needs the click_model objective (a model of the clicks)",
                             column="select_by", fix="use select_by='dcg' for the other objectives")
        if self.patience is not None and self.patience < 1:
            raise InputError(f"patience must be >= 1 or None, got {self.patience}", column="patience",
                             fix="e.g. patience=3, or None to run every epoch")
        if self.ema_epochs is not None and not (np.isfinite(self.ema_epochs) and self.ema_epochs >= 0):
            raise InputError(f"ema_epochs must be >= 0 or None, got {self.ema_epochs}", column="ema_epochs",
                             fix="e.g. ema_epochs=1 (average over about one pass), 0 for the raw weights")
        if self.reg < 0 or self.val_k < 1:
            raise InputError("reg must be >= 0 and val_k >= 1", column="reg", fix="e.g. reg=1e-3, val_k=10")


@dataclass
class TrainHistory:
    """Training loss per epoch, the validation curve, the chosen epoch and what was trained."""

    losses: list[float] = field(default_factory=list)
    refit_losses: list[float] = field(default_factory=list)
    val_curve: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    n_rows: int = 0
    n_val_rows: int = 0
    n_val_lists: int = 0
    n_pairs: int = 0
    n_texts: int = 0
    val_gains: str = ""
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def curve_text(self) -> str:
        if not self.val_curve:
            return "no validation split"
        parts = [f"{r['epoch']}: {r['val_dcg']:.4f}" for r in self.val_curve]
        return f"validation DCG@k by epoch (0 = zero-shot) {', '.join(parts)}; chosen epoch {self.best_epoch}"


def _group_codes(groups: np.ndarray) -> np.ndarray:
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    return g.astype(np.int64)


def _split_lists(g: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Boolean mask of validation rows: a seeded random ``share`` of the lists (at least one each side)."""
    n_g = int(g.max()) + 1
    if share <= 0 or n_g < 4:
        return np.zeros(g.shape[0], dtype=bool)
    rng = np.random.default_rng([seed, 7])
    n_val = min(max(1, int(round(share * n_g))), n_g - 1)
    val_lists = np.zeros(n_g, dtype=bool)
    val_lists[rng.choice(n_g, size=n_val, replace=False)] = True
    return val_lists[g]


def _list_matrix(g: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``(n_lists, max_len)`` matrix of row indices per list (``-1`` pads), lists in code order."""
    order = rows[np.argsort(g[rows], kind="stable")]
    gs = g[order]
    starts = np.r_[0, np.flatnonzero(np.diff(gs)) + 1]
    sizes = np.diff(np.r_[starts, gs.shape[0]])
    M = np.full((starts.shape[0], int(sizes.max())), -1, dtype=np.int64)
    lst = np.repeat(np.arange(starts.shape[0]), sizes)
    col = np.arange(order.shape[0]) - np.repeat(starts, sizes)
    M[lst, col] = order
    return M


def dcg_per_list(scores: np.ndarray, gains: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """``sum_{rank_j < k} g_j / log2(rank_j + 2)`` per list (ties broken by row order)."""
    from causalrec.ranking.evaluate import _group_ranks

    g, rank, _ = _group_ranks(np.asarray(groups), np.asarray(scores, dtype=np.float64))
    disc = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return np.bincount(g, weights=np.asarray(gains, dtype=np.float64) * disc, minlength=int(g.max()) + 1)


def train_ranker(
    user_texts: np.ndarray | list[str],
    item_texts: np.ndarray | list[str],
    labels: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    positions: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    val_weights: np.ndarray | None = None,
    examination: np.ndarray | list[float] | None = None,
    exam_contexts: np.ndarray | None = None,
    model: Any = None,
    encoder: str | os.PathLike | None = None,
    config: TrainConfig | None = None,
    bottom_cache: dict | None = None,
):
    """Fine-tune a :class:`TwoTowerRanker` and return ``(model, history)``.

    ``model``: an existing ranker to continue training; otherwise one is
    built from ``encoder`` (a local model folder; default all-MiniLM-L6-v2).
    ``groups`` (request ids) are required for the pairwise and list objectives
    and for the validation split; ``positions`` (0-based slots) for
    ``click_model``; ``examination`` (relative examination per slot, e.g. a
    randomised-slice estimate) fixes its examination tower instead of
    learning it -- under a personalised ranking the slot and the relevance
    are confounded and a learned tower is not identified. ``exam_contexts``
    (one value per row) learns one examination tower per context instead of
    one for all rows (``click_model`` with a learned tower only). ``val_labels`` / ``val_weights`` (one per row; only the
    held-out rows are read) give the validation gains, default the training
    ones -- for ``click_model`` with ``examination`` given, the held-out clicks
    divided by ``rho_k``. ``bottom_cache``: a dict reused across trainings from the same
    encoder (see :meth:`TwoTowerRanker.bottom`).
    """
    import torch
    from tqdm.auto import tqdm

    from causalrec.data.validation import zero_based_positions
    from causalrec.debias.labels import ips_labels, pairwise_weights
    from causalrec.features.device import resolve_device
    from causalrec.ranking.model import TwoTowerRanker

    cfg = config or TrainConfig()
    ut = np.asarray(user_texts, dtype=object).astype(str)
    it = np.asarray(item_texts, dtype=object).astype(str)
    y = np.asarray(labels, dtype=np.float64)
    n = y.shape[0]
    if ut.shape[0] != n or it.shape[0] != n:
        raise InputError("user texts, item texts and labels must have one entry per row", column="label",
                         fix="pass aligned columns")
    if n == 0:
        raise InputError("no training rows", column="label", fix="pass a non-empty training set")
    if not np.all(np.isfinite(y)):
        raise InputError("labels have missing or infinite values", column="label", fix="drop or fill those rows")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape[0] != n or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError("weights must be finite, non-negative, one per row", column="weight",
                         fix="check the weight column (use `causalrec debias` to produce one)")
    if cfg.objective in ("pairwise", *LIST_OBJECTIVES) and groups is None:
        raise InputError(f"the {cfg.objective} objective needs request lists", column="request_id",
                         fix="pass --group COL (the request id column) or use --objective pointwise")
    pos = None
    if cfg.objective == "click_model":
        if positions is None:
            raise InputError("the click_model objective needs the slot of each row", column="position",
                             fix="pass --position COL (0-based slots of the shown rows)")
        pos = np.asarray(positions)
        if pos.shape[0] != n or not np.issubdtype(pos.dtype, np.number):
            raise InputError("positions must be integers, one per row", column="position",
                             fix="pass 0-based slots (declare --position-base 1 if they start at 1)")
        pos = zero_based_positions(pos, 0, "position")
        if not np.all((y == 0) | (y == 1)):
            raise InputError("the click_model objective is fitted on raw 0/1 clicks", column="label",
                             fix="pass the click column as --label (corrected labels go to --val-label)")
    ctx, ctx_values = None, None
    if exam_contexts is not None:
        if cfg.objective != "click_model" or examination is not None:
            raise InputError("examination contexts apply to the click_model objective with a learned examination "
                             "tower", column="exam_context",
                             fix="use --objective click_model without --examination, or drop --exam-context")
        cv = np.asarray(exam_contexts)
        if cv.shape[0] != n or pd.isna(cv).any():
            raise InputError("examination contexts must be one non-missing value per row", column="exam_context",
                             fix="fill or drop the rows without a context")
        ctx_values, ctx = np.unique(cv.astype(str), return_inverse=True)
    rho_curve = None
    if cfg.objective == "click_model" and examination is not None:
        n_slots = int(pos.max()) + 1
        ex = np.asarray(examination, dtype=np.float64)
        if ex.ndim != 1 or ex.shape[0] < n_slots or not np.all((ex > 0) & np.isfinite(ex)):
            raise InputError(f"examination must be {n_slots} positive values (one per slot)",
                             column="examination", fix="pass the curve of `causalrec debias` (rho_k)")
        rho_curve = np.minimum(ex / ex[0], 1.0)
    yv = y if val_labels is None else np.asarray(val_labels, dtype=np.float64)
    val_source = "training labels" if val_labels is None else "given validation labels"
    if val_labels is None and rho_curve is not None:
        # a known examination curve makes the held-out clicks position-unbiased gains (IPS on the slot):
        # E[c / rho_k] = relevance at the top slot, so DCG on them is unbiased for a fixed ranking
        yv = ips_labels(y, rho_curve[pos], position_clip=cfg.val_position_clip)
        val_source = f"held-out clicks / rho_k (examination curve given, rho floored at {cfg.val_position_clip})"
    wv = (w if val_labels is None else np.ones(n)) if val_weights is None else np.asarray(val_weights, np.float64)
    if yv.shape[0] != n or wv.shape[0] != n or not (np.all(np.isfinite(yv)) and np.all(np.isfinite(wv))):
        raise InputError("validation labels and weights must be finite, one per row", column="val_label",
                         fix="pass aligned columns without missing values")

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    if model is None:
        model = TwoTowerRanker.from_encoder(encoder, max_length=cfg.max_length,
                                            trainable_layers=cfg.trainable_layers, seed=cfg.seed)
    hist = TrainHistory(n_rows=n, device=device, config=asdict(cfg))
    if cfg.epochs == 0:
        hist.notes.append("epochs=0: the zero-shot scorer, untrained")
        model.eval()
        model.meta.update({"objective": "zero_shot", "epochs": 0, "seed": cfg.seed, "train_rows": n})
        return model.to("cpu"), hist
    do_refit = cfg.refit if cfg.refit is not None else cfg.objective == "click_model"
    hist.config["refit"] = bool(do_refit)
    # the refit restarts from exactly this start (also when continuing an existing ranker)
    start_model = copy.deepcopy(model).to("cpu") if do_refit and cfg.val_share > 0 else None
    model.to(device)

    g = _group_codes(groups) if groups is not None else None
    is_val = _split_lists(g, cfg.val_share, cfg.seed) if g is not None else np.zeros(n, dtype=bool)
    if g is None and cfg.val_share > 0:
        hist.notes.append("no request lists (groups): no validation split, the last epoch is kept")
    elif cfg.val_share > 0 and not is_val.any():
        hist.notes.append("fewer than 4 request lists: no validation split, the last epoch is kept")
    if is_val.any() and cfg.objective == "click_model" and val_labels is None and rho_curve is None:
        hist.notes.append("validation on raw clicks is position-biased: pass corrected val_labels "
                          "or the examination curve")
    if is_val.any():
        hist.val_gains = val_source
    tr = np.flatnonzero(~is_val)
    va = np.flatnonzero(is_val)
    hist.n_rows, hist.n_val_rows = int(tr.size), int(va.size)
    hist.n_val_lists = int(np.unique(g[va]).size) if va.size else 0

    texts, inv = np.unique(np.concatenate([ut, it]), return_inverse=True)
    hist.n_texts = int(len(texts))
    u_idx = torch.from_numpy(inv[:n].astype(np.int64))
    a_idx = torch.from_numpy(inv[n:].astype(np.int64))
    hid, msk = model.bottom(list(texts), device, cache=bottom_cache)
    pooled = None
    if model.trainable_layers == 0:
        from causalrec.ranking.model import _mean_pool

        # nothing below the projection trains: pool once, an epoch then costs only the head
        pooled = _mean_pool(hid, msk)
        hid = msk = None

    def tower(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        uniq, back = torch.unique(idx, return_inverse=True)
        if pooled is not None:
            return model.head(pooled[uniq.to(pooled.device)]), back
        return model.top(hid[uniq.to(hid.device)], msk[uniq.to(msk.device)]), back

    def row_logits(rows: torch.Tensor) -> torch.Tensor:
        z, back = tower(torch.cat([u_idx[rows], a_idx[rows]]))
        m = rows.shape[0]
        return model.logits(z[back[:m]], z[back[m:]])

    yt = torch.tensor(y, dtype=torch.float32, device=device)
    wt = torch.tensor(w, dtype=torch.float32, device=device)
    gain_t = yt * wt
    exam = log_exam = ctx_t = None
    if cfg.objective == "click_model":
        n_slots = int(pos.max()) + 1
        # logit 2 ~ examination 0.88 everywhere: the data, not the start, orders the slots
        pos_t = torch.from_numpy(pos).to(device)
        if examination is None:
            shape = (n_slots,) if ctx is None else (len(ctx_values), n_slots)
            exam = torch.nn.Parameter(torch.full(shape, 2.0, device=device))
            log_exam = None
            if ctx is not None:
                ctx_t = torch.from_numpy(ctx.astype(np.int64)).to(device)
        else:
            log_exam = torch.tensor(np.log(rho_curve), dtype=torch.float32, device=device)
    head = [model.proj.weight, model.proj.bias, model.log_scale, model.bias]
    if cfg.item_prior:
        head.append(model.item_bias.weight)
    if cfg.objective == "click_model" and log_exam is None:
        head.append(exam)
    enc_params = [p for p in model.encoder.parameters() if p.requires_grad]
    param_groups = [{"params": head, "lr": cfg.head_lr}]
    if enc_params:
        param_groups.append({"params": enc_params, "lr": cfg.lr})
    opt = torch.optim.AdamW(param_groups, weight_decay=cfg.weight_decay)
    # L2-SP anchors: the zero-shot values of everything that defines the correction
    anchored = [(model.proj.weight, model.proj.weight.detach().clone()),
                (model.proj.bias, model.proj.bias.detach().clone()),
                (model.item_bias.weight, model.item_bias.weight.detach().clone())]
    anchored += [(p, p.detach().clone()) for p in enc_params]
    gen = torch.Generator().manual_seed(cfg.seed)

    if cfg.objective == "pairwise":
        pi_, pj_, pw_ = pairwise_weights(y[tr], w[tr], g[tr], max_pairs_per_group=cfg.max_pairs_per_group,
                                         seed=cfg.seed)
        if pi_.shape[0] == 0:
            raise InputError("no request list has two rows with different labels: no pairs to train on",
                             column="label", fix="use --objective pointwise, or check the request id column")
        pi, pj, pw = tr[pi_], tr[pj_], pw_
        units = pi.shape[0]
        hist.n_pairs = int(units)
    elif cfg.objective in LIST_OBJECTIVES:
        lists = torch.from_numpy(_list_matrix(g, tr))
        units = lists.shape[0]
        gabs = np.bincount(g[tr], weights=np.abs(y[tr] * w[tr]), minlength=int(g.max()) + 1)
        gbar = float(gabs[np.unique(g[tr])].mean())
        if gbar <= 0:
            raise InputError("every training gain is zero: nothing to rank", column="label",
                             fix="check the label column (clicks or corrected labels)")
    else:
        units = tr.shape[0]
    tr_t = torch.from_numpy(tr)

    va_t = torch.from_numpy(va)
    val_gain = yv[va] * wv[va] if va.size else None

    select = cfg.select_by if cfg.select_by != "auto" else ("loglik" if cfg.objective == "click_model" else "dcg")

    def click_nll(logit: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Per-row NLL of the clicks under ``p = sigma(s) * examination(slot)`` (the click-model loss)."""
        if log_exam is not None:
            le = log_exam[pos_t[rows]]
        elif ctx_t is None:
            le = torch.nn.functional.logsigmoid(exam[pos_t[rows]])
        else:
            le = torch.nn.functional.logsigmoid(exam[ctx_t[rows], pos_t[rows]])
        logp = torch.nn.functional.logsigmoid(logit) + le
        log1mp = torch.log1p(-torch.exp(logp).clamp(max=1 - 1e-6))
        return -(yt[rows] * logp + (1.0 - yt[rows]) * log1mp)

    def validate() -> tuple[np.ndarray, float]:
        """Per-list held-out DCG@k and (click_model) the weighted held-out click NLL."""
        model.eval()
        nll_num = 0.0
        with torch.no_grad():
            parts = []
            for b in range(0, va.size, 4096):
                rows = va_t[b:b + 4096]
                lg = row_logits(rows)
                parts.append(lg.double().cpu().numpy())
                if cfg.objective == "click_model":
                    rd = rows.to(device)
                    nll_num += float((wt[rd] * click_nll(lg, rd)).sum())
            s = np.concatenate(parts)
        model.train()
        nll = nll_num / max(float(w[va].sum()), 1e-12) if cfg.objective == "click_model" else float("nan")
        return dcg_per_list(s, val_gain, g[va], cfg.val_k), nll

    show = cfg.progress if cfg.progress is not None else units * cfg.epochs > 20_000
    model.train()
    # Polyak / EMA averaging: the averaged weights are the ones validated, selected and returned; the
    # average starts at the zero-shot values, so its first steps also shrink toward the start
    ema_h = cfg.ema_epochs if cfg.ema_epochs is not None else (2.0 if cfg.objective == "click_model" else 0.0)
    steps_per_epoch = -(-units // cfg.batch_size)
    trained = head + enc_params
    ema_decay = 1.0 - 1.0 / max(ema_h * steps_per_epoch, 1.0) if ema_h > 0 else 0.0
    ema = [p.detach().clone() for p in trained] if ema_decay > 0 else None
    hist.config["ema_epochs"] = float(ema_h)

    def swap_ema() -> None:
        """Exchange the live weights and their moving average (call twice to undo)."""
        if ema is None:
            return
        with torch.no_grad():
            for p, e in zip(trained, ema, strict=True):
                tmp = p.detach().clone()
                p.copy_(e)
                e.copy_(tmp)

    def validate_avg() -> tuple[np.ndarray, float]:
        swap_ema()
        try:
            return validate()
        finally:
            swap_ema()

    def avg_state() -> dict:
        swap_ema()
        try:
            return copy.deepcopy(model.state_dict())
        finally:
            swap_ema()

    best_state, base_dcg = None, None
    if va.size:
        base_dcg, base_nll = validate()
        row0 = {"epoch": 0, "val_dcg": float(base_dcg.mean()), "gain_vs_zero_shot": 0.0, "gain_se": 0.0}
        if cfg.objective == "click_model":
            row0["val_nll"] = base_nll
        hist.val_curve.append(row0)
        best_state, best_epoch, best_val = copy.deepcopy(model.state_dict()), 0, float(base_dcg.mean())
        # the loglik criterion: the best held-out NLL of any epoch so far (its epoch a candidate only if it
        # also passes the DCG gate against the zero-shot start)
        crit_best, since_best = (base_nll if select == "loglik" else float(base_dcg.mean())), 0

    def loss_of(b: torch.Tensor) -> torch.Tensor | None:
        if cfg.objective in ("pointwise", "click_model"):
            rows = tr_t[b]
            logit = row_logits(rows)
            rd = rows.to(device)
            bw = wt[rd]
            denom = bw.sum()
            if float(denom) <= 0:
                return None
            if cfg.objective != "click_model":
                bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, yt[rd], reduction="none")
            else:
                bce = click_nll(logit, rd)
            return (bw * bce).sum() / denom
        if cfg.objective == "pairwise":
            bi = torch.from_numpy(pi[b.numpy()])
            bj = torch.from_numpy(pj[b.numpy()])
            gw = torch.tensor(pw[b.numpy()], dtype=torch.float32, device=device)
            z, back = tower(torch.cat([u_idx[bi], a_idx[bi], a_idx[bj]]))
            m = len(bi)
            zu, zi, zj = z[back[:m]], z[back[m:2 * m]], z[back[2 * m:]]
            # the user side of i and j is the same request: one user tower
            diff = model.logits(zu, zi) - model.logits(zu, zj)
            return (gw * torch.nn.functional.softplus(-diff)).sum() / gw.sum().clamp_min(1e-12)
        M = lists[b]
        valid = M >= 0
        rows = M.clamp_min(0)
        flat = row_logits(rows.reshape(-1)).reshape(M.shape)
        gains = torch.where(valid.to(device), gain_t[rows.to(device)], torch.zeros((), device=device))
        vmask = valid.to(device)
        s = flat.masked_fill(~vmask, -1e9)
        if cfg.objective == "listwise":
            logp = torch.log_softmax(s, dim=1)
            return -(gains * torch.where(vmask, logp, torch.zeros((), device=device))).sum() / (M.shape[0] * gbar)
        # lambdarank: |delta discount| of swapping i and j under the current (detached) ranking
        with torch.no_grad():
            rank = torch.argsort(torch.argsort(-s, dim=1), dim=1).to(flat.dtype) + 1.0
            disc = 1.0 / torch.log2(1.0 + rank)
            dd = (disc[:, :, None] - disc[:, None, :]).abs()
            pair = vmask[:, :, None] & vmask[:, None, :]
            pair &= ~torch.eye(M.shape[1], dtype=torch.bool, device=device)[None]
        sd = s[:, None, :] - s[:, :, None]          # [q, i, j] = s_j - s_i
        term = gains[:, :, None] * dd * torch.nn.functional.softplus(sd)
        return torch.where(pair, term, torch.zeros((), device=device)).sum() / (M.shape[0] * gbar)

    for epoch in range(1, cfg.epochs + 1):
        perm = torch.randperm(units, generator=gen)
        total, count = 0.0, 0
        for s in tqdm(range(0, units, cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}", disable=not show):
            b = perm[s:s + cfg.batch_size]
            loss = loss_of(b)
            if loss is None:
                continue
            if cfg.reg > 0:
                penalty = sum(((p - p0) ** 2).sum() for p, p0 in anchored)
                loss_total = loss + cfg.reg * penalty
            else:
                loss_total = loss
            opt.zero_grad(set_to_none=True)
            loss_total.backward()
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(ema, [p.detach() for p in trained], 1.0 - ema_decay)
            total += float(loss.detach()) * len(b)
            count += len(b)
        hist.losses.append(total / max(count, 1))
        if va.size:
            d, nll = validate_avg()
            diff = d - base_dcg
            se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else float("inf")
            val = float(d.mean())
            rec = {"epoch": epoch, "val_dcg": val, "gain_vs_zero_shot": float(diff.mean()), "gain_se": se}
            if cfg.objective == "click_model":
                rec["val_nll"] = nll
            hist.val_curve.append(rec)
            passes = float(diff.mean()) >= cfg.min_gain_se * se
            if select == "loglik":
                improved = nll < crit_best
                if improved:
                    crit_best = nll
                    # the likelihood-best epoch; it replaces the zero-shot start only through the DCG gate
                    if passes:
                        best_state, best_epoch, best_val = avg_state(), epoch, val
            else:
                improved = val > crit_best
                crit_best = max(crit_best, val)
                if val > best_val and passes:
                    best_state, best_epoch, best_val = avg_state(), epoch, val
            since_best = 0 if improved else since_best + 1
            if cfg.patience is not None and since_best >= cfg.patience:
                hist.notes.append(f"early stop after epoch {epoch}: no {select} improvement in {cfg.patience} epochs")
                break
    if best_state is not None:
        model.load_state_dict(best_state)
        hist.best_epoch = best_epoch
    else:
        swap_ema()  # no validation: the averaged weights of the last epoch
        hist.best_epoch = cfg.epochs
    model.eval()
    meta = {"objective": cfg.objective, "epochs": cfg.epochs, "best_epoch": hist.best_epoch, "seed": cfg.seed,
            "train_rows": hist.n_rows, "final_loss": hist.losses[-1], "reg": cfg.reg,
            "ema_epochs": float(ema_h)}
    if exam is not None:  # relative to the top slot: one curve, or one row per context
        e = torch.sigmoid(exam.detach()).cpu().numpy().astype(np.float64)
        e = e / e[..., :1]
        if ctx is None:
            meta["examination"] = e.tolist()
        else:
            meta["examination_by_context"] = {str(c): e[j].tolist() for j, c in enumerate(ctx_values)}
    elif log_exam is not None:
        meta["examination"] = np.exp(log_exam.cpu().numpy()).astype(np.float64).tolist()
        meta["examination_fixed"] = True
    if start_model is not None and va.size and best_state is not None and hist.best_epoch > 0:
        # the held-out lists chose the epoch count; train that long on all rows, from the same start
        full, fh = train_ranker(ut, it, y, weights=w, groups=groups, positions=positions, examination=examination,
                                exam_contexts=exam_contexts, model=start_model, bottom_cache=bottom_cache,
                                config=replace(cfg, epochs=hist.best_epoch, val_share=0.0,
                                                           patience=None, refit=False))
        hist.refit_losses = fh.losses
        hist.notes.append(f"refit: retrained on all {n:,} rows for the chosen {hist.best_epoch} epochs")
        meta.update({"refit": True, "refit_rows": n, "final_loss": fh.losses[-1]})
        meta.update({k: full.meta[k] for k in ("examination", "examination_fixed", "examination_by_context")
                     if k in full.meta})
        model = full
    model.meta.update(meta)
    return model.to("cpu"), hist
