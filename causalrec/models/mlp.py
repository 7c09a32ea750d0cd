"""Shared torch MLP training for the scikit-learn-compatible nuisance models.

A fully connected network ``x -> [Linear -> ReLU -> Dropout] * L -> Linear`` on
standardised inputs, trained by mini-batch Adam on a weighted loss::

    L(theta) = sum_i w_i l(f_theta(x_i), y_i) / sum_i w_i

(batches of ``min(batch_size, max(32, n_train // 8))`` rows) with early stopping: a ``validation_fraction`` of the rows is held out, the
validation loss is evaluated after every epoch, and the weights of the best epoch
are kept once ``patience`` epochs pass without an improvement larger than ``tol``.
Everything random (split, initialisation, shuffling, dropout) is drawn from
``random_state`` inside ``torch.random.fork_rng``, so the global torch seed is
untouched and a CPU fit is bit-for-bit repeatable.

Written by hand (rather than skorch) to keep the estimator contract exactly what
econml needs (no ``predict_proba`` on regressors) and to add calibration/clipping.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from causalrec.errors import InputError

#: per-step multiply-adds below which CPU training runs on one thread (see ``_cpu_threads``)
SMALL_STEP_FLOPS = 5e7
#: fewer held-out rows than this and the model trains on everything for max_epochs
MIN_VALIDATION_ROWS = 10
PREDICT_BATCH = 16384


#: a training column whose standard deviation is below this share of its largest |value| is constant
CONSTANT_RELATIVE_SD = 1e-6


def standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` per column for ``(x - mean) / scale``, computed in float64.

    A column that is constant on the training rows (up to float rounding:
    ``sd <= CONSTANT_RELATIVE_SD * max|x|``) gets ``scale = inf``, so it enters the
    network as 0 on every row. Why: float32 statistics of a constant column give a
    spurious sd of ~1e-7 rather than 0; dividing a held-out row that differs by 1 by it
    fed the network inputs of ~1e7 (an IHDP arm whose training rows all share one
    binary covariate value produced outcome predictions of 2.9e6 and AIPW ATEs of
    -3.6e5). The network never saw the column vary, so it has nothing to say about it.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.shape[0] == 0:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    mean = X.mean(axis=0)
    sd = X.std(axis=0)
    span = np.abs(X).max(axis=0)
    constant = sd <= CONSTANT_RELATIVE_SD * span
    return mean, np.where(constant, np.inf, np.where(sd > 0, sd, 1.0))


class TorchMLPBase(BaseEstimator):
    """Hyper-parameters and training loop shared by ``PropensityModel`` and ``OutcomeModel``."""

    def __init__(self, hidden_layer_sizes=(128,), dropout: float = 0.1, learning_rate: float = 3e-3,
                 weight_decay: float = 1e-4, batch_size: int = 2048, max_epochs: int = 100,
                 patience: int = 5, validation_fraction: float = 0.1, tol: float = 1e-4,
                 device: str = "auto", random_state: int | None = 0, verbose: bool = False,
                 num_threads: int | None = None):
        self.num_threads = num_threads
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

    # --- subclass hooks -----------------------------------------------------------
    def _encode_targets(self, y: np.ndarray) -> tuple[np.ndarray, int]:  # pragma: no cover
        raise NotImplementedError

    def _loss(self, out, target):  # per-row loss, pragma: no cover
        raise NotImplementedError

    def _stratify(self, target: np.ndarray) -> np.ndarray | None:
        return None

    def _after_fit(self, val_logits: np.ndarray | None, val_target, val_weight, X, target) -> None:
        pass

    # --- helpers ------------------------------------------------------------------
    def _seed(self) -> int:
        rs = self.random_state
        if rs is None:
            return int(np.random.default_rng().integers(2**31 - 1))
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(2**31 - 1))
        return int(rs)

    def _build(self, n_in: int, n_out: int):
        import torch.nn as nn

        sizes = self.hidden_layer_sizes
        sizes = (int(sizes),) if np.isscalar(sizes) else tuple(int(s) for s in sizes)
        layers: list[Any] = []
        prev = n_in
        for h in sizes:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            if self.dropout and self.dropout > 0:
                layers.append(nn.Dropout(float(self.dropout)))
            prev = h
        layers.append(nn.Linear(prev, n_out))
        return nn.Sequential(*layers)

    def _check_X(self, X, reset: bool, y=None, **kw):
        from sklearn.utils.validation import validate_data

        try:
            if reset:
                return validate_data(self, X, y, reset=True, dtype=[np.float32, np.float64], **kw)
            return validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        except ValueError as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{type(self).__name__}: {exc}", column="X",
                             fix="pass a finite numeric matrix (see causalrec.features.design_matrix)") from exc

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.x_mean_) / self.x_scale_).astype(np.float32, copy=False)

    def _fit_network(self, X, y, sample_weight):
        import torch

        X, y = self._check_X(X, reset=True, y=y, **self._validate_kwargs())
        sizes = self.hidden_layer_sizes
        width = int(sizes) if np.isscalar(sizes) else max([int(s) for s in sizes] or [1])
        step = min(int(self.batch_size), max(32, X.shape[0] // 8)) * X.shape[1] * width
        threads = self._cpu_threads(step)
        old = torch.get_num_threads()
        if threads != old:
            torch.set_num_threads(threads)
        try:
            return self._fit_network_inner(X, y, sample_weight)
        finally:
            if threads != old:
                torch.set_num_threads(old)

    def _cpu_threads(self, step_flops: float) -> int:
        """Threads for CPU work: ``num_threads`` if set; else one thread for small steps.

        Splitting a 32 x 60 matrix product over threads costs more in synchronisation
        than it saves, and on a shared, busy machine it is far worse (measured: a
        3,000 x 60 fit took 14 s on 2 threads vs 1 s on one, under load). Larger
        steps keep torch's own setting. The global setting is restored afterwards.
        """
        import torch

        if self.num_threads is not None:
            return max(1, int(self.num_threads))
        return 1 if step_flops < SMALL_STEP_FLOPS else torch.get_num_threads()

    def _fit_network_inner(self, X, y, sample_weight):
        import torch
        from sklearn.model_selection import train_test_split
        from sklearn.utils.validation import _check_sample_weight

        from causalrec.features.device import resolve_device

        target, n_out = self._encode_targets(np.asarray(y))
        w = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise InputError("sample_weight must be non-negative with a positive sum", column="sample_weight")
        seed = self._seed()
        n = X.shape[0]
        idx = np.arange(n)
        n_val = int(round(self.validation_fraction * n)) if self.validation_fraction else 0
        tr, va = idx, None
        if n_val >= MIN_VALIDATION_ROWS and n - n_val >= MIN_VALIDATION_ROWS:
            strat = self._stratify(target)
            try:
                tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=strat)
            except ValueError:  # a class too small to stratify
                tr, va = train_test_split(idx, test_size=n_val, random_state=seed)
            tr, va = np.sort(tr), np.sort(va)
        elif self.validation_fraction:
            warnings.warn(f"{type(self).__name__}: only {n} rows, training without early stopping "
                          "(and, for propensities, without a held-out calibration split)", stacklevel=4)
        self.x_mean_, self.x_scale_ = standardisation(X[tr][w[tr] > 0])
        self.device_ = resolve_device(self.device)
        dev = torch.device(self.device_)
        Xs = torch.from_numpy(self._standardise(X)).to(dev)
        T = torch.from_numpy(np.ascontiguousarray(target)).to(dev)
        W = torch.from_numpy((w / w.mean()).astype(np.float32)).to(dev)
        tr_t = torch.from_numpy(tr).to(dev)
        va_t = torch.from_numpy(va).to(dev) if va is not None else None
        # Large batches keep a CPU epoch cheap; small data still gets >= 8 steps per epoch.
        bs = max(1, min(int(self.batch_size), max(32, len(tr) // 8)))
        fork_devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            net = self._build(X.shape[1], n_out).to(dev)
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
            gen = torch.Generator(device="cpu").manual_seed(seed)
            best, best_state, since, history = np.inf, None, 0, []
            for epoch in range(int(self.max_epochs)):
                net.train()
                perm = tr_t[torch.randperm(len(tr), generator=gen).to(dev)]
                for s in range(0, len(perm), bs):
                    b = perm[s: s + bs]
                    wb = W[b]
                    loss = (self._loss(net(Xs[b]), T[b]) * wb).sum() / wb.sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                if va_t is None:
                    continue
                net.eval()
                with torch.inference_mode():
                    wv = W[va_t]
                    vloss = float((self._loss(net(Xs[va_t]), T[va_t]) * wv).sum() / wv.sum())
                history.append(vloss)
                if self.verbose:
                    print(f"epoch {epoch + 1}: validation loss {vloss:.5f}")
                if vloss < best - self.tol:
                    best, since = vloss, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    since += 1
                    if since >= self.patience:
                        break
            if best_state is not None:
                net.load_state_dict(best_state)
        net.eval()
        self.net_ = net
        self.n_epochs_ = len(history) if history else int(self.max_epochs)
        self.best_epoch_ = int(np.argmin(history)) + 1 if history else int(self.max_epochs)
        self.validation_loss_ = float(best) if history else float("nan")
        self.loss_curve_ = history
        val_logits = self._raw(X[va]) if va is not None else None
        self._after_fit(val_logits, target[va] if va is not None else None,
                        w[va] if va is not None else None, X, target)
        return self

    def _validate_kwargs(self) -> dict:
        return {}

    def _predict_device(self):
        import torch

        dev = getattr(self, "device_", "cpu")
        if str(dev).startswith("cuda") and not torch.cuda.is_available():
            dev = "cpu"
        return torch.device(dev)

    def _raw(self, X: np.ndarray) -> np.ndarray:
        """Network outputs (logits / standardised predictions) for already validated ``X``."""
        import torch

        dev = self._predict_device()
        net = self.net_.to(dev)
        # On the CPU the forward pass runs in float64: float32 matrix products there give a
        # row a result that depends on how many rows share its batch (up to ~6e-7 apart), so
        # the same model scored in Spark's Arrow batches and in one process disagreed at the
        # 1e-9 level. In float64 the batch effect is ~1e-16. GPUs keep float32 (speed).
        exact = dev.type == "cpu"
        if exact:
            net = copy.deepcopy(net).double()
        outs = []
        with torch.inference_mode():
            for s in range(0, X.shape[0], PREDICT_BATCH):
                xb = torch.from_numpy(self._standardise(X[s: s + PREDICT_BATCH])).to(dev)
                if exact:
                    xb = xb.double()
                outs.append(net(xb).double().cpu().numpy())
        if not outs:
            return np.zeros((0, self.n_outputs_), dtype=np.float32)
        return np.concatenate(outs, axis=0).astype(np.float64)

    # --- pickling: weights travel on the CPU ------------------------------------------
    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        if "net_" in state:
            state["net_"] = copy.deepcopy(state["net_"]).cpu()
        return state

    def __setstate__(self, state):
        if hasattr(super(), "__setstate__"):
            super().__setstate__(state)
        else:  # pragma: no cover
            self.__dict__.update(state)
