"""Outcome model mu(x) = E[Y | x]: a torch MLP regressor (no ``predict_proba``).

``loss="mse"`` fits standardised targets by weighted squared error and predicts on
the original scale; ``loss="bce"`` is for outcomes in [0, 1] (clicks, conversion
rates): it fits the logit by weighted binary cross-entropy and ``predict`` returns
probabilities. Predictions are bounded by the range of the training outcomes
(``bound=True``, the default): a regression surface that is exponential in ``x``
(IHDP surface B) extrapolated by an unbounded network reaches +-1e5 on rows of the
other arm, and one such row dominates an AIPW mean. The bound is the convex hull of
what was observed, so it never moves a prediction that interpolates. It stays a
*regressor* either way, because econml treats any model
with ``predict_proba`` as a classifier and rejects it for a continuous target.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin

from causalrec.errors import InputError
from causalrec.models.mlp import TorchMLPBase


class OutcomeModel(RegressorMixin, TorchMLPBase):
    """Torch MLP regressor for E[Y | X] (one or several outputs).

    Parameters
    ----------
    loss:
        ``"mse"`` (any real outcome) or ``"bce"`` (outcome in [0, 1]; predictions are
        probabilities).
    hidden_layer_sizes, dropout, learning_rate, weight_decay, batch_size, max_epochs,
    patience, validation_fraction, tol, device, random_state, verbose, num_threads:
        Network and training (see ``causalrec.models.mlp``).
    bound:
        Clip predictions to ``[min, max]`` of the training outcomes (rows with positive
        weight), per output; attribute ``y_bounds_``.
    """

    def __init__(self, hidden_layer_sizes=(128,), dropout: float = 0.1, learning_rate: float = 3e-3,
                 weight_decay: float = 1e-4, batch_size: int = 2048, max_epochs: int = 100,
                 patience: int = 5, validation_fraction: float = 0.1, tol: float = 1e-4,
                 device: str = "auto", random_state: int | None = 0, verbose: bool = False,
                 num_threads: int | None = None,
                 loss: str = "mse", bound: bool = True):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, dropout=dropout,
                         learning_rate=learning_rate, weight_decay=weight_decay, batch_size=batch_size,
                         max_epochs=max_epochs, patience=patience,
                         validation_fraction=validation_fraction, tol=tol, device=device,
                         random_state=random_state, verbose=verbose, num_threads=num_threads)
        self.loss = loss
        self.bound = bound

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _validate_kwargs(self):
        return {"y_numeric": True, "multi_output": True}

    def _encode_targets(self, y):
        if self.loss not in ("mse", "bce"):
            raise InputError(f"unknown loss {self.loss!r}", column="loss", fix="use 'mse' or 'bce'")
        y = np.asarray(y, dtype=np.float64)
        self.y_1d_ = y.ndim == 1
        y2 = y[:, None] if y.ndim == 1 else y
        self.n_outputs_ = y2.shape[1]
        if self.loss == "bce":
            if y2.min() < 0 or y2.max() > 1:
                raise InputError("loss='bce' needs outcomes in [0, 1]", column="outcome",
                                 fix="use loss='mse' for unbounded outcomes")
            self.y_mean_, self.y_scale_ = np.zeros(self.n_outputs_), np.ones(self.n_outputs_)
        else:
            self.y_mean_ = y2.mean(axis=0)
            sd = y2.std(axis=0)
            self.y_scale_ = np.where(sd > 1e-12, sd, 1.0)
        return ((y2 - self.y_mean_) / self.y_scale_).astype(np.float32), self.n_outputs_

    def _loss(self, out, target):
        import torch.nn.functional as F

        if self.loss == "bce":
            return F.binary_cross_entropy_with_logits(out, target, reduction="none").mean(dim=1)
        return ((out - target) ** 2).mean(dim=1)

    def fit(self, X, y, sample_weight=None):
        """Fit on features ``X`` (n, p) and outcomes ``y`` (n,) or (n, k)."""
        self._fit_network(X, y, sample_weight)
        y2 = np.asarray(y, dtype=np.float64)
        y2 = y2[:, None] if y2.ndim == 1 else y2
        if sample_weight is not None:
            pos = np.asarray(sample_weight, dtype=np.float64) > 0
            y2 = y2[pos] if pos.any() else y2
        self.y_bounds_ = np.vstack([y2.min(axis=0), y2.max(axis=0)])
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted E[Y | X] (probabilities for ``loss="bce"``), shape like the fitted ``y``."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "net_")
        raw = self._raw(self._check_X(X, reset=False))
        pred = 1.0 / (1.0 + np.exp(-raw)) if self.loss == "bce" else raw * self.y_scale_ + self.y_mean_
        if self.bound:
            pred = np.clip(pred, self.y_bounds_[0], self.y_bounds_[1])
        return pred[:, 0] if self.y_1d_ else pred
