"""Interaction-aware nuisance heads for text features: MLP + low-rank bilinear (two-tower) term.

The input is the design matrix of :func:`causalrec.features.design_matrix`,
``x = [u, v, u * v, c]`` with ``u`` the user vector (e.g. pooled history
embeddings), ``v`` the item vector (both of dimension ``d = embedding_dim``) and
``c`` covariates. After standardisation the head computes

    f(x) = MLP(x) + sum_{r=1..R} (u^T a_r) (v^T b_r) w_r          (rank R = ``rank``)

on the unstandardised ``u``, ``v``; with ``shared_towers=True`` (default) ``b_r = a_r``,
the right structure when ``u`` is a pooled history of items in the space of ``v``:
an affinity ``<P u, P v>`` between two projections of one space is exactly such a
term (measured on the simulator: a linear probe recovers the title topic shares
from MiniLM vectors with R^2 = 0.97).

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
from sklearn.base import BaseEstimator

from causalrec.errors import InputError
from causalrec.models.mlp import TorchMLPBase
from causalrec.models.outcome import OutcomeModel
from causalrec.models.propensity import PropensityModel


def _bilinear_net(model, mlp, n_out: int, d: int, rank: int, shared: bool):
    import torch

    # The towers see the *unstandardised* vectors (times sqrt(d), so entries are of
    # unit order for L2-normalised embeddings): per-column standardisation would give
    # u and v different coordinates and break the shared tower's symmetry.
    mean = torch.as_tensor(np.asarray(model.x_mean_[:2 * d], dtype=np.float32))
    scale = torch.as_tensor(np.asarray(model.x_scale_[:2 * d], dtype=np.float32) * np.float32(np.sqrt(d)))
    return _torch_module("BilinearNet")(mlp, mean, scale, n_out, d, rank, shared)


def _define_torch_modules() -> dict:
    """The torch networks of this module, defined on first use so importing it needs no torch.

    They are module-level classes (reached through the module's ``__getattr__``), not
    closures, so a fitted model pickles and unpickles (joblib, econml's copies).
    """
    import torch
    import torch.nn as nn

    class BilinearNet(nn.Module):
        """``mlp(x) + out((u A) * (v B))`` on raw ``u, v``; ``B = A`` when ``shared``."""

        def __init__(self, mlp, mean, scale, n_out: int, d: int, rank: int, shared: bool):
            super().__init__()
            self.d = int(d)
            self.root = float(np.sqrt(d))
            self.mlp = mlp
            self.register_buffer("mean", mean)
            self.register_buffer("scale", scale)
            self.user_tower = nn.Linear(d, rank, bias=False)
            self.item_tower = self.user_tower if shared else nn.Linear(d, rank, bias=False)
            self.out = nn.Linear(rank, n_out, bias=False)
            nn.init.normal_(self.out.weight, std=0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            d = self.d
            raw = x[:, :2 * d] * self.scale + self.mean * np.float32(self.root)
            z = self.user_tower(raw[:, :d]) * self.item_tower(raw[:, d:])
            return self.mlp(x) + self.out(z)

    class JointNet(nn.Module):
        """Shared trunk ``[relu(trunk(x)), (A u) * (A v)]`` -> heads ``(logit e, mu0, mu1)`` plus ``eps``."""

        def __init__(self, trunk, mean, scale, d: int, rank: int, width: int, has_trunk: bool):
            super().__init__()
            self.d = int(d)
            self.root = float(np.sqrt(d))
            self.has_trunk = bool(has_trunk)
            self.trunk = trunk
            self.register_buffer("mean", mean)
            self.register_buffer("scale", scale)
            self.tower = nn.Linear(d, rank, bias=False)
            self.heads = nn.Linear(width + rank, 3)
            self.eps = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            d = self.d
            raw = (x[:, :2 * d] * self.scale + self.mean) * np.float32(self.root)
            z = self.tower(raw[:, :d]) * self.tower(raw[:, d:])
            h = torch.relu(self.trunk(x)) if self.has_trunk else x
            out = self.heads(torch.cat([h, z], dim=1))
            return torch.cat([out, self.eps.expand(x.shape[0], 1)], dim=1)

    found = {}
    for cls in (BilinearNet, JointNet):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
        found[cls.__name__] = cls
    return found


_TORCH_MODULES: dict = {}


def _torch_module(name: str):
    if not _TORCH_MODULES:
        _TORCH_MODULES.update(_define_torch_modules())
    return _TORCH_MODULES[name]


def __getattr__(name: str):
    # pickle finds the networks by name here (PEP 562); torch is imported only then
    if name in ("BilinearNet", "JointNet"):
        return _torch_module(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_dim(model, n_in: int) -> int:
    d = model.embedding_dim
    if d is None or int(d) < 1 or 2 * int(d) > n_in:
        raise InputError(f"{getattr(model, '_name', type(model).__name__)} needs embedding_dim with 2 * embedding_dim <= "
                         f"{n_in} columns, got {d!r}", column="embedding_dim",
                         fix="pass the text embedding dimension (X starts with [u, v, u*v])")
    if int(model.rank) < 1:
        raise InputError(f"rank must be >= 1, got {model.rank}", column="rank")
    return int(d)


class BilinearPropensityModel(PropensityModel):
    """Propensity model with logit ``MLP(x) + u^T W v`` (rank ``rank``); see the module docstring.

    Parameters are those of :class:`~causalrec.models.PropensityModel` plus
    ``embedding_dim`` (``d``: ``X[:, :d]`` is ``u``, ``X[:, d:2d]`` is ``v``), ``rank`` and
    ``shared_towers`` (``B = A``: ``W = A diag(w) A^T``, for ``u`` and ``v`` in one space).
    """

    def __init__(self, hidden_layer_sizes=(64,), dropout: float = 0.1, learning_rate: float = 1e-3,
                 weight_decay: float = 1e-3, batch_size: int = 128, max_epochs: int = 60,
                 patience: int = 5, validation_fraction: float = 0.15, tol: float = 1e-4,
                 device: str = "auto", random_state: int | None = 0, verbose: bool = False,
                 num_threads: int | None = None, calibration: str | None = "auto", clip: float | None = 0.01,
                 embedding_dim: int | None = None, rank: int = 8, shared_towers: bool = True):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, dropout=dropout, learning_rate=learning_rate,
                         weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
                         patience=patience, validation_fraction=validation_fraction, tol=tol, device=device,
                         random_state=random_state, verbose=verbose, num_threads=num_threads,
                         calibration=calibration, clip=clip)
        self.embedding_dim = embedding_dim
        self.rank = rank
        self.shared_towers = shared_towers

    def _build(self, n_in: int, n_out: int):
        d = _check_dim(self, n_in)
        return _bilinear_net(self, super()._build(n_in, n_out), n_out, d, int(self.rank), bool(self.shared_towers))


class BilinearOutcomeModel(OutcomeModel):
    """Outcome model ``MLP(x) + u^T W v`` (rank ``rank``); see the module docstring.

    Parameters are those of :class:`~causalrec.models.OutcomeModel` plus
    ``embedding_dim``, ``rank`` and ``shared_towers``. No ``predict_proba`` (econml treats it as a regressor).
    """

    def __init__(self, hidden_layer_sizes=(64,), dropout: float = 0.1, learning_rate: float = 1e-3,
                 weight_decay: float = 1e-3, batch_size: int = 128, max_epochs: int = 60,
                 patience: int = 5, validation_fraction: float = 0.1, tol: float = 1e-4,
                 device: str = "auto", random_state: int | None = 0, verbose: bool = False,
                 num_threads: int | None = None, loss: str = "mse",
                 embedding_dim: int | None = None, rank: int = 8, shared_towers: bool = True):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, dropout=dropout, learning_rate=learning_rate,
                         weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
                         patience=patience, validation_fraction=validation_fraction, tol=tol, device=device,
                         random_state=random_state, verbose=verbose, num_threads=num_threads, loss=loss)
        self.embedding_dim = embedding_dim
        self.rank = rank
        self.shared_towers = shared_towers

    def _build(self, n_in: int, n_out: int):
        d = _check_dim(self, n_in)
        return _bilinear_net(self, super()._build(n_in, n_out), n_out, d, int(self.rank), bool(self.shared_towers))


def cross_fitted_loss(kind: str, y: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean out-of-fold loss used to choose among candidate heads.

    ``kind="log"``: binary cross-entropy ``-mean(y log p + (1 - y) log(1 - p))``
    (propensities; binary outcomes); ``kind="mse"``: ``mean((y - pred)^2)``.
    ``mask`` restricts the mean (e.g. to the arm an outcome model was fitted on).
    """
    from causalrec.models.crossfit import log_loss, mse

    y = np.asarray(y, dtype=float)
    p = np.asarray(pred, dtype=float)
    if mask is not None:
        y, p = y[mask], p[mask]
    if kind == "log":  # the engine's losses (causalrec.models.crossfit), one definition each
        return log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))
    if kind == "mse":
        return mse(y, p)
    raise InputError(f"unknown loss kind {kind!r}", column="kind", fix="use 'log' or 'mse'")


class SharedTextNuisance(BaseEstimator):
    """DragonNet-style joint model of ``e(x)``, ``mu0(x)``, ``mu1(x)`` with one shared representation.

    One trunk ``h(x) = [MLP(x), (A u) * (A v)]`` (the bilinear features of the
    module docstring, shared towers) feeds three linear heads: the logit of
    ``e``, and ``mu0``, ``mu1`` (logits for ``loss="bce"``). The loss per row is

        BCE(e, t) + alpha * l(mu_t, y) + beta * (y - mu_t - eps * (t / e - (1 - t) / (1 - e)))^2

    (Shi, Blei and Veitch 2019: the propensity head makes the trunk keep what
    predicts exposure; the last term, *targeted regularisation* with a learned
    scalar ``eps``, pushes the fit towards one that solves the AIPW estimating
    equation). ``beta=0`` disables it. Sharing matters when the confounder is a
    function of the text the outcome also depends on: both targets train ``A``.

    ``fit(X, Y)`` takes ``Y = [t, y]`` (n, 2); ``predict(X)`` returns
    ``[e, mu0, mu1]`` (n, 3), ``e`` unclipped: so the one cross-fitting engine
    (:func:`causalrec.models.cross_fit_predict`) fits and predicts it like any model.
    Not a classifier (no ``predict_proba``); econml uses it through
    :class:`~causalrec.models.PrecomputedClassifier` / ``PrecomputedRegressor``.
    """

    def __init__(self, hidden_layer_sizes=(64,), dropout: float = 0.1, learning_rate: float = 1e-3,
                 weight_decay: float = 1e-3, batch_size: int = 128, max_epochs: int = 60,
                 patience: int = 5, validation_fraction: float = 0.1, tol: float = 1e-4,
                 device: str = "auto", random_state: int | None = 0, verbose: bool = False,
                 num_threads: int | None = None, loss: str = "bce", embedding_dim: int | None = None,
                 rank: int = 16, alpha: float = 1.0, beta: float = 1.0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.tol = tol
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.num_threads = num_threads
        self.loss = loss
        self.embedding_dim = embedding_dim
        self.rank = rank
        self.alpha = alpha
        self.beta = beta

    def _trainer(self):
        """A :class:`_JointTrainer` carrying this model's hyper-parameters and the joint loss."""
        params = {k: getattr(self, k) for k in ("hidden_layer_sizes", "dropout", "learning_rate", "weight_decay",
                                                 "batch_size", "max_epochs", "patience", "validation_fraction",
                                                 "tol", "device", "random_state", "verbose", "num_threads")}
        tr = _JointTrainer(**params)
        tr.joint = {k: getattr(self, k) for k in ("loss", "embedding_dim", "rank", "alpha", "beta")}
        return tr

    def fit(self, X, Y, sample_weight=None):
        tr = self._trainer()
        tr._fit_network(X, Y, sample_weight)
        self.trainer_ = tr
        self.n_features_in_ = tr.n_features_in_
        self.eps_ = float(tr.net_.eps.detach().cpu().numpy()[0])
        return self

    def predict(self, X) -> np.ndarray:
        """``[e, mu0, mu1]`` per row (outcome scale; probabilities for ``loss="bce"``)."""
        tr = self.trainer_
        Xv = tr._check_X(X, reset=False)
        raw = tr._raw(Xv)
        e = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        if self.loss == "bce":
            mu = 1.0 / (1.0 + np.exp(-raw[:, 1:3]))
        else:
            mu = raw[:, 1:3] * tr.y_scale_ + tr.y_mean_
        return np.column_stack([e, mu])


class _JointTrainer(TorchMLPBase):
    """The training loop of :mod:`causalrec.models.mlp` with :class:`SharedTextNuisance`'s targets,
    network and loss (``self.joint`` holds that model's ``loss``, ``embedding_dim``, ``rank``,
    ``alpha``, ``beta``). Module-level so a fitted model pickles."""

    def _encode_targets(self, Y):
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim != 2 or Y.shape[1] != 2:
            raise InputError("SharedTextNuisance.fit needs Y = [t, y] with two columns", column="Y")
        t = Y[:, 0]
        if not np.isin(t, (0.0, 1.0)).all():
            raise InputError("the treatment column of Y must be 0/1", column="treatment")
        y = Y[:, 1]
        loss = self.joint["loss"]
        if loss == "bce":
            if y.min() < 0 or y.max() > 1:
                raise InputError("loss='bce' needs outcomes in [0, 1]", column="outcome",
                                 fix="use loss='mse' for unbounded outcomes")
            self.y_mean_, self.y_scale_ = 0.0, 1.0
        elif loss == "mse":
            self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() or 1.0)
        else:
            raise InputError(f"unknown loss {loss!r}", column="loss", fix="use 'bce' or 'mse'")
        return np.column_stack([t, (y - self.y_mean_) / self.y_scale_]).astype(np.float32), 3

    def _stratify(self, target):
        return target[:, 0]

    def _validate_kwargs(self):
        return {"multi_output": True, "y_numeric": True}

    def _build(self, n_in, n_out):
        import torch
        import torch.nn as nn

        cfg = self.joint
        d = _check_dim(_DimCheck(cfg["embedding_dim"], cfg["rank"], "SharedTextNuisance"), n_in)
        sizes = self.hidden_layer_sizes
        sizes = (int(sizes),) if np.isscalar(sizes) else tuple(int(s) for s in sizes)
        width = sizes[-1] if sizes else n_in
        trunk = TorchMLPBase._build(self, n_in, width) if sizes else nn.Identity()
        mean = torch.as_tensor(np.asarray(self.x_mean_[:2 * d], dtype=np.float32))
        scale = torch.as_tensor(np.asarray(self.x_scale_[:2 * d], dtype=np.float32))
        return _torch_module("JointNet")(trunk, mean, scale, d, int(cfg["rank"]), width, bool(sizes))

    def _loss(self, out, target):
        import torch.nn.functional as F

        cfg = self.joint
        t, y = target[:, 0], target[:, 1]
        e = torch_sigmoid(out[:, 0]).clamp(0.01, 0.99)
        l_e = F.binary_cross_entropy_with_logits(out[:, 0], t, reduction="none")
        mu_t_raw = t * out[:, 2] + (1 - t) * out[:, 1]
        if cfg["loss"] == "bce":
            mu_t = torch_sigmoid(mu_t_raw)
            l_mu = F.binary_cross_entropy_with_logits(mu_t_raw, y, reduction="none")
        else:
            mu_t = mu_t_raw
            l_mu = (mu_t_raw - y) ** 2
        h = t / e - (1 - t) / (1 - e)
        l_tr = (y - mu_t - out[:, 3] * h) ** 2
        return l_e + float(cfg["alpha"]) * l_mu + float(cfg["beta"]) * l_tr


class _DimCheck:
    """What :func:`_check_dim` reads of a model, for the trainer that is not the model itself."""

    def __init__(self, embedding_dim, rank, name: str):
        self.embedding_dim, self.rank = embedding_dim, rank
        self._name = name


def torch_sigmoid(x):
    import torch

    return torch.sigmoid(x)
