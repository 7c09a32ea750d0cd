"""Propensity model e(x) = P(T = t | x): a calibrated, clipped torch MLP classifier.

Fitted by weighted cross-entropy (binary: one logit with ``BCEWithLogits``; K
classes: K logits with softmax cross-entropy). Calibration is fitted on the
early-stopping validation split (rows never used for the weights): Platt scaling
for two classes, temperature scaling otherwise (``calibration="auto"``), or
isotonic / temperature / none on request. Probabilities are then clipped to
``[clip, 1 - clip]`` so inverse-propensity weights stay below ``1 / clip``.

Assumption used downstream: positivity, 0 < e(x) < 1; ``clipped_share_`` reports
how often the fitted model needed the clip on its training rows (a large share
means poor overlap, not a modelling problem clipping can fix).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin

from causalrec.errors import InputError
from causalrec.models.calibration import clip_propensity, fit_platt, fit_temperature, softmax
from causalrec.models.mlp import TorchMLPBase

_CALIBRATIONS = ("auto", "platt", "temperature", "isotonic", None, "none")


class PropensityModel(ClassifierMixin, TorchMLPBase):
    """Torch MLP classifier for treatment/exposure probabilities, calibrated and clipped.

    Parameters
    ----------
    hidden_layer_sizes, dropout, learning_rate, weight_decay, batch_size, max_epochs,
    patience, validation_fraction, tol, device, random_state, verbose, num_threads:
        Network and training (see ``causalrec.models.mlp``). ``device="auto"`` uses
        CUDA when visible.
    calibration:
        ``"auto"`` (Platt for 2 classes, temperature for more), ``"platt"``,
        ``"temperature"``, ``"isotonic"`` (2 classes) or ``None``.
    clip:
        Lower bound on every class probability (upper bound ``1 - clip`` for two
        classes); ``0`` or ``None`` disables clipping. With K > 2 classes the bound used
        is ``min(clip, 0.5 / K)`` (reported as ``clip_``) and rows are renormalised.

    Attributes
    ----------
    classes_, n_features_in_, clip_, clipped_share_, calibration_, calibration_params_,
    n_epochs_, best_epoch_, validation_loss_, device_
    """

    def __init__(self, hidden_layer_sizes=(128,), dropout: float = 0.1, learning_rate: float = 3e-3,
                 weight_decay: float = 1e-4, batch_size: int = 2048, max_epochs: int = 100,
                 patience: int = 5, validation_fraction: float = 0.15, tol: float = 1e-4,
                 device: str = "auto", random_state: int | None = 0, verbose: bool = False,
                 num_threads: int | None = None,
                 calibration: str | None = "auto", clip: float | None = 0.01):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, dropout=dropout,
                         learning_rate=learning_rate, weight_decay=weight_decay, batch_size=batch_size,
                         max_epochs=max_epochs, patience=patience,
                         validation_fraction=validation_fraction, tol=tol, device=device,
                         random_state=random_state, verbose=verbose, num_threads=num_threads)
        self.calibration = calibration
        self.clip = clip

    # --- hooks -----------------------------------------------------------------
    def _encode_targets(self, y):
        from sklearn.utils.multiclass import check_classification_targets

        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        check_classification_targets(y)
        self.classes_, idx = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise InputError(f"the treatment has one class only ({self.classes_[0]!r}); "
                             "a propensity model needs at least two", column="treatment",
                             fix="check the treatment column, or the subset of rows passed")
        self.n_outputs_ = 1 if k == 2 else k
        if k == 2:
            return idx.astype(np.float32)[:, None], 1
        return idx.astype(np.int64), k

    def _stratify(self, target):
        return target.ravel() if target.ndim == 2 else target

    def _loss(self, out, target):
        import torch.nn.functional as F

        if self.n_outputs_ == 1:
            return F.binary_cross_entropy_with_logits(out, target, reduction="none").squeeze(1)
        return F.cross_entropy(out, target, reduction="none")

    def _after_fit(self, val_logits, val_target, val_weight, X, target):
        cal = self.calibration
        if cal not in _CALIBRATIONS:
            raise InputError(f"unknown calibration {cal!r}", column="calibration",
                             fix="use 'auto', 'platt', 'temperature', 'isotonic' or None")
        k = len(self.classes_)
        if cal == "auto":
            cal = "platt" if k == 2 else "temperature"
        if cal in ("platt", "isotonic") and k > 2:
            raise InputError(f"calibration={cal!r} needs a binary treatment ({k} classes given)",
                             column="calibration", fix="use 'temperature' or 'auto'")
        if cal == "none" or val_logits is None:
            cal = None
        self.calibration_ = cal
        self.calibration_params_ = {}
        self.isotonic_ = None
        if cal == "platt":
            a, b = fit_platt(val_logits[:, 0], val_target[:, 0], val_weight)
            self.calibration_params_ = {"a": a, "b": b}
        elif cal == "temperature":
            z = self._logit_matrix(val_logits)
            y_idx = val_target[:, 0].astype(int) if val_target.ndim == 2 else val_target
            self.calibration_params_ = {"temperature": fit_temperature(z, y_idx, val_weight)}
        elif cal == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            p = 1.0 / (1.0 + np.exp(-val_logits[:, 0]))
            self.isotonic_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                p, val_target[:, 0], sample_weight=val_weight)
        # With K > 2 classes a floor of `clip` on every class could move up to K * clip of
        # probability mass (0.8 for 80 items at 0.01): cap the floor at 0.5 / K.
        self.clip_ = float(self.clip) if self.clip else 0.0
        if k > 2:
            self.clip_ = min(self.clip_, 0.5 / k)
        _, self.clipped_share_ = clip_propensity(self._calibrated(self._raw(X)), self.clip_)

    # --- prediction ----------------------------------------------------------------
    def _logit_matrix(self, raw):
        return np.column_stack([np.zeros(len(raw)), raw[:, 0]]) if raw.shape[1] == 1 else raw

    def _calibrated(self, raw: np.ndarray) -> np.ndarray:
        cal = self.calibration_
        if cal == "platt":
            s = self.calibration_params_["a"] * raw[:, 0] + self.calibration_params_["b"]
            p1 = 1.0 / (1.0 + np.exp(-s))
            return np.column_stack([1 - p1, p1])
        if cal == "isotonic":
            p1 = self.isotonic_.predict(1.0 / (1.0 + np.exp(-raw[:, 0])))
            return np.column_stack([1 - p1, p1])
        z = self._logit_matrix(raw)
        if cal == "temperature":
            z = z / self.calibration_params_["temperature"]
        return softmax(z)

    def fit(self, X, y, sample_weight=None):
        """Fit on features ``X`` (n, p) and treatment labels ``y`` (n,)."""
        return self._fit_network(X, y, sample_weight)

    def predict_proba_uncalibrated(self, X) -> np.ndarray:
        """Class probabilities straight from the network (no calibration, no clipping)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "net_")
        return softmax(self._logit_matrix(self._raw(self._check_X(X, reset=False))))

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated, clipped probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "net_")
        p = self._calibrated(self._raw(self._check_X(X, reset=False)))
        return clip_propensity(p, self.clip_)[0]

    def predict(self, X) -> np.ndarray:
        """Most probable class for each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
