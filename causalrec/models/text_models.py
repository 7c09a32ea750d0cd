"""Interaction-aware nuisance heads for text features: MLP + low-rank bilinear (two-tower) term.

The input is the design matrix of :func:`causalrec.features.design_matrix`,
``x = [u, v, u * v, c]`` with ``u`` the user vector (e.g. pooled history
embeddings), ``v`` the item vector (both of dimension ``d = embedding_dim``) and
``c`` covariates. After standardisation the head computes

    f(x) = MLP(x) + sum_{r=1..R} (u^T a_r) (v^T b_r) w_r          (rank R = ``rank``)

i.e. ``MLP(x) + u^T W v`` with ``W = A diag(w) B^T`` of rank at most ``R``: the
two-tower score a recommender itself uses. The MLP sees ``u * v``, whose *sum*
is the cosine similarity, but an affinity that weighs directions of the
embedding space differently (``u^T W v`` with ``W`` far from the identity) is
hard for a small MLP on 3d + k inputs and easy for the bilinear term. ``f`` is
the logit of ``e(x)`` (:class:`BilinearPropensityModel`, calibrated and
clipped like :class:`~causalrec.models.PropensityModel`) or the outcome
(:class:`BilinearOutcomeModel`, cross-entropy or squared error like
:class:`~causalrec.models.OutcomeModel`).

Both are scikit-learn estimators (hyper-parameters only in ``__init__``; clone,
pickle, econml's cross-fitting work), sharing the training loop of
:mod:`causalrec.models.mlp`; only the network differs. Written by hand because
no library offers a bilinear two-tower head with the scikit-learn contract.
Assumes the first ``2 * embedding_dim`` columns of ``X`` are ``[u, v]``
(``embedding_dim=None``: one third of the columns that are not covariates is
not knowable, so it must be given; :func:`causalrec.uplift.estimate` sets it).
"""

from __future__ import annotations

import numpy as np

from causalrec.errors import InputError
from causalrec.models.outcome import OutcomeModel
from causalrec.models.propensity import PropensityModel


def _bilinear_net(mlp, n_in: int, n_out: int, d: int, rank: int):
    import torch
    import torch.nn as nn

    class BilinearNet(nn.Module):
        """``mlp(x) + out((x[:, :d] A) * (x[:, d:2d] B))``."""

        def __init__(self):
            super().__init__()
            self.mlp = mlp
            self.user_tower = nn.Linear(d, rank, bias=False)
            self.item_tower = nn.Linear(d, rank, bias=False)
            self.out = nn.Linear(rank, n_out, bias=False)
            # start the bilinear term near zero so training begins from the MLP
            nn.init.normal_(self.out.weight, std=0.01)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.user_tower(x[:, :d]) * self.item_tower(x[:, d:2 * d])
            return self.mlp(x) + self.out(z)

    return BilinearNet()


def _check_dim(model, n_in: int) -> int:
    d = model.embedding_dim
    if d is None or int(d) < 1 or 2 * int(d) > n_in:
        raise InputError(f"{type(model).__name__} needs embedding_dim with 2 * embedding_dim <= "
                         f"{n_in} columns, got {d!r}", column="embedding_dim",
                         fix="pass the text embedding dimension (X starts with [u, v, u*v])")
    if int(model.rank) < 1:
        raise InputError(f"rank must be >= 1, got {model.rank}", column="rank")
    return int(d)


class BilinearPropensityModel(PropensityModel):
    """Propensity model with logit ``MLP(x) + u^T W v`` (rank ``rank``); see the module docstring.

    Parameters are those of :class:`~causalrec.models.PropensityModel` plus
    ``embedding_dim`` (``d``: ``X[:, :d]`` is ``u``, ``X[:, d:2d]`` is ``v``) and ``rank``.
    """

    def __init__(self, hidden_layer_sizes=(64,), dropout: float = 0.1, learning_rate: float = 3e-3,
                 weight_decay: float = 1e-4, batch_size: int = 256, max_epochs: int = 60,
                 patience: int = 5, validation_fraction: float = 0.15, tol: float = 1e-4,
                 device: str = "auto", random_state: int | None = 0, verbose: bool = False,
                 num_threads: int | None = None, calibration: str | None = "auto", clip: float | None = 0.01,
                 embedding_dim: int | None = None, rank: int = 16):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, dropout=dropout, learning_rate=learning_rate,
                         weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
                         patience=patience, validation_fraction=validation_fraction, tol=tol, device=device,
                         random_state=random_state, verbose=verbose, num_threads=num_threads,
                         calibration=calibration, clip=clip)
        self.embedding_dim = embedding_dim
        self.rank = rank

    def _build(self, n_in: int, n_out: int):
        d = _check_dim(self, n_in)
        return _bilinear_net(super()._build(n_in, n_out), n_in, n_out, d, int(self.rank))


class BilinearOutcomeModel(OutcomeModel):
    """Outcome model ``MLP(x) + u^T W v`` (rank ``rank``); see the module docstring.

    Parameters are those of :class:`~causalrec.models.OutcomeModel` plus
    ``embedding_dim`` and ``rank``. No ``predict_proba`` (econml treats it as a regressor).
    """

    def __init__(self, hidden_layer_sizes=(64,), dropout: float = 0.1, learning_rate: float = 3e-3,
                 weight_decay: float = 1e-4, batch_size: int = 256, max_epochs: int = 60,
                 patience: int = 5, validation_fraction: float = 0.1, tol: float = 1e-4,
                 device: str = "auto", random_state: int | None = 0, verbose: bool = False,
                 num_threads: int | None = None, loss: str = "mse",
                 embedding_dim: int | None = None, rank: int = 16):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, dropout=dropout, learning_rate=learning_rate,
                         weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
                         patience=patience, validation_fraction=validation_fraction, tol=tol, device=device,
                         random_state=random_state, verbose=verbose, num_threads=num_threads, loss=loss)
        self.embedding_dim = embedding_dim
        self.rank = rank

    def _build(self, n_in: int, n_out: int):
        d = _check_dim(self, n_in)
        return _bilinear_net(super()._build(n_in, n_out), n_in, n_out, d, int(self.rank))


def cross_fitted_loss(kind: str, y: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean out-of-fold loss used to choose among candidate heads.

    ``kind="log"``: binary cross-entropy ``-mean(y log p + (1 - y) log(1 - p))``
    (propensities; binary outcomes); ``kind="mse"``: ``mean((y - pred)^2)``.
    ``mask`` restricts the mean (e.g. to the arm an outcome model was fitted on).
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(pred, dtype=float)
    if mask is not None:
        y, p = y[mask], p[mask]
    if kind == "log":
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if kind == "mse":
        return float(np.mean((y - p) ** 2))
    raise InputError(f"unknown loss kind {kind!r}", column="kind", fix="use 'log' or 'mse'")
