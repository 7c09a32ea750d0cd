"""Covariate balance before and after inverse-propensity weighting.

For a covariate ``x`` the standardised mean difference is

    SMD = (mean_w(x | T=1) - mean_w(x | T=0)) / sqrt((s1^2 + s0^2) / 2)

where the means are weighted (``w = 1`` before weighting; the ATE or ATT
weights of :mod:`causalrec.diagnostics.weights` after) and ``s1, s0`` are the
*unweighted* arm standard deviations, so that before and after share one
scale (Austin & Stuart 2015). ``|SMD| < 0.1`` is the usual reading of
"balanced".

Text embeddings have hundreds of dimensions; balance is checked on their
leading principal components (the directions along which the arms can
differ most visibly), plus every tabular covariate. :func:`design_balance`
does this for a causalrec design matrix (columns named ``u0..`` user text,
``i0..`` item text, ``ui0..`` their product, then covariates): it is the one
balance that uplift's diagnostics, warning and report use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalrec.diagnostics.weights import ipw_weights
from causalrec.errors import InputError
from causalrec.results import jsonable


@dataclass
class BalanceResult:
    """SMD per covariate before/after weighting (``table``) and its reading."""

    estimand: str
    threshold: float
    table: pd.DataFrame  # covariate, kind, smd_before, smd_after
    n_components: int | None = None  # principal components per embedding block

    @property
    def max_abs_before(self) -> float:
        return float(self.table["smd_before"].abs().max()) if len(self.table) else float("nan")

    @property
    def max_abs_after(self) -> float:
        return float(self.table["smd_after"].abs().max()) if len(self.table) else float("nan")

    @property
    def n_imbalanced_after(self) -> int:
        return int((self.table["smd_after"].abs() >= self.threshold).sum())

    def to_dict(self) -> dict:
        return jsonable({
            "estimand": self.estimand, "threshold": self.threshold,
            "max_abs_smd_before": self.max_abs_before, "max_abs_smd_after": self.max_abs_after,
            "n_imbalanced_after": self.n_imbalanced_after, "n_components": self.n_components,
            "table": self.table.to_dict(orient="records"),
        })

    def summary(self) -> str:
        return (f"balance ({self.estimand} weights): max |SMD| {self.max_abs_before:.3f} before, "
                f"{self.max_abs_after:.3f} after; {self.n_imbalanced_after} of {len(self.table)} "
                f"covariates with |SMD| >= {self.threshold:g} after weighting")


def smd(x: np.ndarray, t: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Standardised mean differences of the columns of ``x`` (see module docstring)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    t = np.asarray(t).astype(bool)
    w = np.ones(x.shape[0]) if w is None else np.asarray(w, dtype=float)
    m1 = np.average(x[t], axis=0, weights=w[t])
    m0 = np.average(x[~t], axis=0, weights=w[~t])
    s = np.sqrt((x[t].var(axis=0, ddof=1) + x[~t].var(axis=0, ddof=1)) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(s > 0, (m1 - m0) / s, 0.0)
    return out


def leading_components(emb: np.ndarray, n_components: int = 5, max_fit_rows: int = 20000,
                       random_state: int = 0) -> np.ndarray:
    """Scores on the leading principal components of ``emb`` (PCA fit on at most
    ``max_fit_rows`` sampled rows; the projection is applied to every row)."""
    from sklearn.decomposition import PCA

    emb = np.asarray(emb, dtype=np.float32)
    k = int(min(n_components, emb.shape[1], emb.shape[0]))
    rng = np.random.default_rng(random_state)
    fit_rows = emb if emb.shape[0] <= max_fit_rows else emb[rng.choice(emb.shape[0], max_fit_rows, replace=False)]
    pca = PCA(n_components=k, svd_solver="randomized", random_state=random_state).fit(fit_rows)
    return pca.transform(emb)


def covariate_balance(
    t: np.ndarray,
    e_hat: np.ndarray,
    covariates: np.ndarray | pd.DataFrame | None = None,
    *,
    names: list[str] | None = None,
    embeddings: dict[str, np.ndarray] | None = None,
    n_components: int = 5,
    estimand: str = "ate",
    threshold: float = 0.1,
    random_state: int = 0,
) -> BalanceResult:
    """SMD before/after weighting for tabular ``covariates`` and the leading
    ``n_components`` principal components of each embedding in ``embeddings``
    (e.g. ``{"user_text": U, "item_text": V}``)."""
    t = np.asarray(t).astype(bool)
    if t.all() or not t.any():
        raise InputError("balance needs both treated and control rows", column="treatment",
                         fix="check that the treatment column has both 0 and 1")
    w = ipw_weights(t, e_hat, estimand)
    blocks: list[tuple[str, str, np.ndarray]] = []
    if covariates is not None:
        if isinstance(covariates, pd.DataFrame):
            names = [str(c) for c in covariates.columns]
            cov = covariates.to_numpy(dtype=float)
        else:
            cov = np.asarray(covariates, dtype=float)
            cov = cov[:, None] if cov.ndim == 1 else cov
            names = names or [f"x{j}" for j in range(cov.shape[1])]
        for j, nm in enumerate(names):
            blocks.append((nm, "covariate", cov[:, j]))
    for label, emb in (embeddings or {}).items():
        pcs = leading_components(emb, n_components, random_state=random_state)
        for j in range(pcs.shape[1]):
            blocks.append((f"{label} PC{j + 1}", "embedding PC", pcs[:, j]))
    if not blocks:
        return BalanceResult(estimand, threshold, pd.DataFrame(columns=["covariate", "kind", "smd_before", "smd_after"]),
                             n_components)
    x = np.column_stack([b[2] for b in blocks])
    table = pd.DataFrame({
        "covariate": [b[0] for b in blocks], "kind": [b[1] for b in blocks],
        "smd_before": smd(x, t), "smd_after": smd(x, t, w),
    })
    return BalanceResult(estimand, float(threshold), table, n_components)


_EMB_BLOCKS = (("user_text", re.compile(r"^u\d+$")), ("item_text", re.compile(r"^i\d+$")))
#: more unnamed tabular columns than this (one-hot ids, raw arrays) are summarised like an embedding
MAX_TABULAR = 30


def split_design(X: np.ndarray, names: list[str] | None) -> tuple[dict[str, np.ndarray], np.ndarray | None, list[str]]:
    """Embedding blocks (by column name: ``u<j>`` user text, ``i<j>`` item text) and the
    remaining tabular columns of a design matrix; the ``ui<j>`` products are left out
    (they are functions of the two blocks)."""
    names = list(names) if names is not None else [f"x{j}" for j in range(X.shape[1])]
    used = np.zeros(len(names), bool)
    blocks: dict[str, np.ndarray] = {}
    for label, pat in _EMB_BLOCKS:
        idx = np.array([bool(pat.match(n)) for n in names])
        if idx.any():
            blocks[label] = X[:, idx]
            used |= idx
    used |= np.array([n.startswith("ui") and n[2:].isdigit() for n in names])
    rest = np.flatnonzero(~used)
    if rest.size == 0:
        return blocks, None, []
    if rest.size > MAX_TABULAR:
        blocks["features"] = X[:, rest]
        return blocks, None, []
    return blocks, X[:, rest], [names[j] for j in rest]


def design_balance(t: np.ndarray, e_hat: np.ndarray, X: np.ndarray, names: list[str] | None, *,
                   n_components: int = 5, estimand: str = "ate", threshold: float = 0.1,
                   random_state: int = 0) -> BalanceResult:
    """:func:`covariate_balance` of a design matrix split by :func:`split_design`."""
    blocks, tab, tab_names = split_design(np.asarray(X, dtype=np.float32), names)
    return covariate_balance(t, e_hat, tab, names=tab_names, embeddings=blocks, n_components=n_components,
                             estimand=estimand, threshold=threshold, random_state=random_state)
