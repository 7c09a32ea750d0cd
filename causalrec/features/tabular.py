"""Tabular covariates -> a numeric matrix: numeric columns z-scored, categoricals one-hot.

Thin wrapper over scikit-learn's ``ColumnTransformer`` (``StandardScaler`` after
mean imputation; ``OneHotEncoder`` keeping the ``max_categories`` most frequent
levels, the rest pooled as infrequent, unknown levels at transform time mapped to
the infrequent bucket). Columns are classified by dtype: bool, string, object and
category are categorical; everything else numeric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from causalrec.errors import InputError


def _is_categorical(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


class TabularEncoder(TransformerMixin, BaseEstimator):
    """Encode a DataFrame of covariates as a float matrix (fit on one frame, reuse on another).

    Parameters
    ----------
    columns:
        Columns to use (default: all).
    max_categories:
        Most frequent levels kept per categorical column; rarer ones share one column.
    """

    def __init__(self, columns: Sequence[str] | None = None, max_categories: int = 50):
        self.columns = columns
        self.max_categories = max_categories

    def _frame(self, df) -> pd.DataFrame:
        if not isinstance(df, pd.DataFrame):
            raise InputError("covariates must be a pandas DataFrame", column="covariates",
                             fix="pass df[[...columns...]] or an already numeric numpy array")
        cols = list(self.columns) if self.columns is not None else list(df.columns)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise InputError(f"covariate column '{missing[0]}' is missing", column=missing[0],
                             fix=f"columns present: {list(df.columns)[:12]}")
        return df[cols]

    def fit(self, df, y=None):
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        frame = self._frame(df)
        self.numeric_ = [c for c in frame.columns if not _is_categorical(frame[c])]
        self.categorical_ = [c for c in frame.columns if _is_categorical(frame[c])]
        parts = []
        if self.numeric_:
            parts.append(("num", make_pipeline(SimpleImputer(strategy="mean", keep_empty_features=True),
                                               StandardScaler()), self.numeric_))
        if self.categorical_:
            parts.append(("cat", OneHotEncoder(handle_unknown="infrequent_if_exist",
                                               max_categories=self.max_categories,
                                               sparse_output=False, dtype=np.float32),
                          self.categorical_))
        self.transformer_ = ColumnTransformer(parts, verbose_feature_names_out=True)
        self.transformer_.fit(self._prepare(frame))
        self.n_features_out_ = len(self.transformer_.get_feature_names_out())
        return self

    def _prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        # One-hot needs plain Python objects with a visible missing level; numeric columns go as floats.
        out = {}
        for c in frame.columns:
            if c in self.categorical_:
                out[c] = frame[c].astype(object).where(frame[c].notna(), "<missing>").astype(str).astype(object)
            else:
                out[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
        return pd.DataFrame(out, index=frame.index)

    def transform(self, df) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "transformer_")
        frame = self._frame(df)
        return np.asarray(self.transformer_.transform(self._prepare(frame)), dtype=np.float32)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return self.transformer_.get_feature_names_out()


def encode_tabular(df: pd.DataFrame, columns: Sequence[str] | None = None,
                   max_categories: int = 50) -> tuple[np.ndarray, list[str]]:
    """Fit-transform ``df[columns]``; return ``(matrix float32, feature names)``."""
    enc = TabularEncoder(columns=columns, max_categories=max_categories).fit(df)
    return enc.transform(df), [str(n) for n in enc.get_feature_names_out()]
