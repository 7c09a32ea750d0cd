"""CUPAC: a model's out-of-fold prediction as the CUPED covariate.

CUPAC (Control Using Predictions As Covariates; Tang, Huang, Chen & Wang
2020) fits a regression of the experiment metric ``y`` on pre-period
features ``Z`` -- numbers, and here optionally text embeddings of the
user's pre-period history (``causalrec.features.TextEmbedder``) -- and uses
its prediction ``g(Z)`` as the covariate of CUPED::

    y_i^cupac = y_i - theta (g_hat(Z_i) - mean(g_hat(Z)))

The prediction is made out of fold (K-fold cross-fitting, the model never
sees the unit it predicts) and the model never sees the variant, so
``g_hat(Z)`` is a pre-treatment quantity independent of the assignment and
the adjusted difference stays unbiased; the variance falls by the squared
correlation between ``y`` and the prediction.

Only pre-period features belong in ``Z``: a feature affected by the
treatment would absorb part of the effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.validation import check_numeric
from causalrec.errors import InputError


@dataclass
class CUPAC:
    """Settings of a CUPAC covariate.

    Parameters
    ----------
    features: numeric pre-period columns (one value per unit).
    text: a column holding the user's pre-period history as text; embedded
        with ``embedder`` (default ``causalrec.features.TextEmbedder()``, the
        local MiniLM) and appended to the features.
    model: a scikit-learn regressor (cloned per fold); default
        ``HistGradientBoostingRegressor(max_iter=200)``, which handles missing
        values natively.
    n_folds: cross-fitting folds.
    """

    features: Sequence[str] = ()
    text: str | None = None
    model: Any = None
    n_folds: int = 5
    embedder: Any = None

    @property
    def numeric(self) -> list[str]:
        return list(self.features)

    @property
    def text_columns(self) -> list[str]:
        return [self.text] if self.text else []

    def columns(self) -> list[str]:
        return [*self.numeric, *self.text_columns]

    def describe(self) -> str:
        model = type(self.model).__name__ if self.model is not None else "HistGradientBoostingRegressor"
        parts = list(self.features) + ([f"text:{self.text}"] if self.text else [])
        return f"{model} on [{', '.join(parts)}], {self.n_folds}-fold"

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """Feature matrix ``Z`` for the units of ``frame``."""
        if not self.features and not self.text:
            raise InputError("CUPAC needs pre-period features or a text column", column="cupac",
                             fix="pass CUPAC(features=[...]) and/or CUPAC(text='history_column')")
        blocks = [np.column_stack([check_numeric(frame, c) for c in self.features])] if self.features else []
        if self.text:
            embedder = self.embedder
            if embedder is None:
                from causalrec.features import TextEmbedder

                embedder = TextEmbedder()
            texts = frame[self.text].astype("string").fillna("")
            blocks.append(np.asarray(embedder.encode_column(texts), dtype=float))
        return np.hstack(blocks)

    def predict_oof(self, frame: pd.DataFrame, y: np.ndarray, seed: int = 0) -> np.ndarray:
        """Out-of-fold predictions of ``y`` from the pre-period features (causalrec's one
        cross-fitting routine, ``causalrec.models.cross_fit_predict``)."""
        from causalrec.models import cross_fit_predict

        if self.model is None:
            from sklearn.ensemble import HistGradientBoostingRegressor

            model = HistGradientBoostingRegressor(max_iter=200, random_state=seed)
        else:
            model = self.model
        Z = self.design(frame)
        return np.asarray(cross_fit_predict(model, Z, y, n_folds=self.n_folds, random_state=seed), dtype=float)
