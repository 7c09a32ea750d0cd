"""Training the two-tower ranker on (corrected) labels with sample weights.

Objectives (``y`` the label, possibly an IPS/DR corrected one; ``w`` the
sample weight; ``s`` the logit):

* ``pointwise``: weighted soft-target binary cross-entropy, self-normalised
  within each mini-batch::

      L = sum_i w_i [ -y_i log sigma(s_i) - (1 - y_i) log(1 - sigma(s_i)) ] / sum_i w_i

  It is linear in ``y``, so unbiased labels (``E[y | x, a] = r(x, a)``) give
  an unbiased loss even when single labels exceed 1 or, for DR pseudo-labels,
  fall below 0. Constant weights cancel
  in the ratio: training with ``w = const`` is exactly naive training.
* ``pairwise``: RankNet within request lists, each ordered pair weighted by
  its label gain (LambdaLoss-style; see :func:`causalrec.debias.pairwise_weights`)::

      L = sum_(i,j) g_ij log(1 + exp(-(s_i - s_j))) / sum g_ij,
      g_ij = (y_i - y_j)^+ (w_i + w_j) / 2

The loop is plain torch (AdamW; encoder layers at ``lr``, the head at
``head_lr``), seeded, on ``device`` ("auto": CUDA when visible). The frozen
part of the encoder is run once per unique text (see
:mod:`causalrec.ranking.model`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from causalrec.errors import InputError

OBJECTIVES = ("pointwise", "pairwise")


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_ranker` (small CPU defaults)."""

    objective: str = "pointwise"
    epochs: int = 2
    batch_size: int = 64
    lr: float = 5e-5
    head_lr: float = 2e-3
    weight_decay: float = 0.0
    max_length: int = 48
    trainable_layers: int = 1
    seed: int = 0
    device: str = "auto"
    max_pairs_per_group: int | None = 20
    progress: bool | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"unknown objective {self.objective!r}", column="objective",
                             fix=f"use one of {', '.join(OBJECTIVES)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError("epochs and batch_size must be >= 1", column="epochs", fix="pass positive integers")


@dataclass
class TrainHistory:
    """Mean training loss per epoch and what was trained."""

    losses: list[float] = field(default_factory=list)
    n_rows: int = 0
    n_pairs: int = 0
    n_texts: int = 0
    device: str = "cpu"
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_ranker(
    user_texts: np.ndarray | list[str],
    item_texts: np.ndarray | list[str],
    labels: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    model: Any = None,
    encoder: str | os.PathLike | None = None,
    config: TrainConfig | None = None,
    bottom_cache: dict | None = None,
):
    """Fine-tune a :class:`TwoTowerRanker` and return ``(model, history)``.

    ``model``: an existing ranker to continue training; otherwise one is
    built from ``encoder`` (a local model folder; default all-MiniLM-L6-v2).
    ``groups`` (request ids) are required for the pairwise objective.
    ``bottom_cache``: a dict reused across trainings from the same encoder
    (see :meth:`TwoTowerRanker.bottom`).
    """
    import torch
    from tqdm.auto import tqdm

    from causalrec.debias.labels import pairwise_weights
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
    if cfg.objective == "pairwise" and groups is None:
        raise InputError("the pairwise objective needs request lists", column="request_id",
                         fix="pass --group COL (the request id column) or use --objective pointwise")

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    if model is None:
        model = TwoTowerRanker.from_encoder(encoder, max_length=cfg.max_length,
                                            trainable_layers=cfg.trainable_layers, seed=cfg.seed)
    model.to(device)
    texts, inv = np.unique(np.concatenate([ut, it]), return_inverse=True)
    u_idx = torch.from_numpy(inv[:n].astype(np.int64))
    a_idx = torch.from_numpy(inv[n:].astype(np.int64))
    hid, msk = model.bottom(list(texts), device, cache=bottom_cache)

    yt = torch.tensor(y, dtype=torch.float32, device=device)
    wt = torch.tensor(w, dtype=torch.float32, device=device)
    head = [model.proj.weight, model.proj.bias, model.log_scale, model.bias]
    enc_params = [p for p in model.encoder.parameters() if p.requires_grad]
    groups_ = [{"params": head, "lr": cfg.head_lr}]
    if enc_params:
        groups_.append({"params": enc_params, "lr": cfg.lr})
    opt = torch.optim.AdamW(groups_, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)

    if cfg.objective == "pairwise":
        pi, pj, pw = pairwise_weights(y, w, np.asarray(groups), max_pairs_per_group=cfg.max_pairs_per_group,
                                      seed=cfg.seed)
        if pi.shape[0] == 0:
            raise InputError("no request list has two rows with different labels: no pairs to train on",
                             column="label", fix="use --objective pointwise, or check the request id column")
        units = pi.shape[0]
    else:
        units = n
    hist = TrainHistory(n_rows=n, n_pairs=int(units if cfg.objective == "pairwise" else 0), n_texts=len(texts),
                        device=device, config=asdict(cfg))
    show = cfg.progress if cfg.progress is not None else units * cfg.epochs > 20_000
    model.train()

    def tower(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        uniq, back = torch.unique(idx, return_inverse=True)
        return model.top(hid[uniq.to(hid.device)], msk[uniq.to(msk.device)]), back

    for _epoch in range(cfg.epochs):
        perm = torch.randperm(units, generator=gen)
        total, count = 0.0, 0
        for s in tqdm(range(0, units, cfg.batch_size), desc=f"epoch {_epoch + 1}/{cfg.epochs}", disable=not show):
            b = perm[s:s + cfg.batch_size]
            if cfg.objective == "pointwise":
                rows = b
                both = torch.cat([u_idx[rows], a_idx[rows]])
                z, back = tower(both)
                zu, za = z[back[:len(rows)]], z[back[len(rows):]]
                logit = model.logits(zu, za)
                bw = wt[rows.to(device)]
                bce = torch.nn.functional.binary_cross_entropy_with_logits(
                    logit, yt[rows.to(device)], reduction="none")
                denom = bw.sum()
                if float(denom) <= 0:
                    continue
                loss = (bw * bce).sum() / denom
            else:
                bi = torch.from_numpy(pi[b.numpy()])
                bj = torch.from_numpy(pj[b.numpy()])
                g = torch.tensor(pw[b.numpy()], dtype=torch.float32, device=device)
                both = torch.cat([u_idx[bi], a_idx[bi], a_idx[bj]])
                z, back = tower(both)
                m = len(bi)
                zu, zi, zj = z[back[:m]], z[back[m:2 * m]], z[back[2 * m:]]
                # the user side of i and j is the same request: one user tower
                diff = model.logits(zu, zi) - model.logits(zu, zj)
                loss = (g * torch.nn.functional.softplus(-diff)).sum() / g.sum().clamp_min(1e-12)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
            count += len(b)
        hist.losses.append(total / max(count, 1))
    model.eval()
    model.meta.update({"objective": cfg.objective, "epochs": cfg.epochs, "seed": cfg.seed,
                       "train_rows": n, "final_loss": hist.losses[-1]})
    return model.to("cpu"), hist
