"""Design matrix for nuisance models over user/item embeddings and covariates.

For a row with user vector ``u``, item vector ``v`` and covariates ``c``::

    x = [u, v, u * v, c]

The elementwise product carries user-item affinity (for L2-normalised vectors its
sum is the cosine similarity), which a shallow model could not form from ``u`` and
``v`` alone; it is exactly the quantity a recommender's exposure tends to depend on.
"""

from __future__ import annotations

import numpy as np

from causalrec.errors import InputError


def _as_2d(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D array (rows x dims), got shape {arr.shape}", column=name)
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise InputError(f"{name} must be numeric, got dtype {arr.dtype}", column=name,
                         fix="encode DataFrame covariates with causalrec.features.encode_tabular")
    return arr


#: widest text vectors for which ``interaction="outer"`` builds all ``d^2`` products
MAX_OUTER_DIM = 64
#: the interaction blocks :func:`design_matrix` builds
INTERACTIONS = ("product", "outer")


def check_interaction(interaction: str) -> None:
    """A clear error for an unknown interaction (callers check before any embedding work)."""
    if interaction not in INTERACTIONS:
        raise InputError(f"unknown text interaction {interaction!r}", column="text_interaction",
                         fix="use 'product' (u * v) or 'outer' (every u_j v_l)")


def design_matrix(user_emb=None, item_emb=None, covariates=None, *, dtype=np.float32,
                  return_names: bool = False, interaction: str = "product"):
    """Stack ``[user_emb, item_emb, user_emb * item_emb, covariates]`` column-wise.

    ``interaction="outer"`` replaces the elementwise product ``u_j v_j`` by every product
    ``u_j v_l`` (``d^2`` columns, ``d <= MAX_OUTER_DIM``: for soft topic memberships or a few
    principal components). Why: a confounder ``<A u, A v>`` that is bilinear in the text
    vectors is linear in the outer products (a full ``u^T W v``) but not in the elementwise
    ones unless the coordinates are the confounder's own axes. Measured on the simulator
    (20,000 rows, seed 300, MiniLM, 16 soft clusters): held-out R^2 of the text confounder from
    a linear fit 0.90 on ``[u, v, u (x) v]`` against 0.80 on ``[u, v, u * v]`` (8 clusters: 0.76).

    Parameters
    ----------
    user_emb, item_emb:
        ``(n, d)`` arrays (e.g. from ``TextEmbedder.encode_column``), either may be ``None``.
        The product block is added only when both are given (same ``d`` required).
    covariates:
        ``(n, k)`` numeric array, or a DataFrame (encoded with ``encode_tabular``:
        numeric standardised, categoricals one-hot).
    return_names:
        Also return the column names (``u0.., i0.., ui0.., <covariate names>``).
    """
    import pandas as pd

    blocks, names = [], []
    u = _as_2d(user_emb, "user_emb") if user_emb is not None else None
    v = _as_2d(item_emb, "item_emb") if item_emb is not None else None
    if u is not None:
        blocks.append(u)
        names += [f"u{j}" for j in range(u.shape[1])]
    if v is not None:
        blocks.append(v)
        names += [f"i{j}" for j in range(v.shape[1])]
    if u is not None and v is not None:
        if u.shape != v.shape:
            raise InputError(f"user_emb {u.shape} and item_emb {v.shape} must have the same shape",
                             column="item_emb", fix="embed users and items with the same model, row-aligned")
        uu, vv = u.astype(dtype, copy=False), v.astype(dtype, copy=False)
        if interaction == "product":
            blocks.append(uu * vv)
        elif interaction == "outer":
            if u.shape[1] > MAX_OUTER_DIM:
                raise InputError(f"the outer interaction of {u.shape[1]}-dimensional text vectors has "
                                 f"{u.shape[1] ** 2:,} columns", column="text_interaction",
                                 fix=f"reduce the vectors first (text clusters or <= {MAX_OUTER_DIM} text "
                                     "components), or use the elementwise product")
            blocks.append((uu[:, :, None] * vv[:, None, :]).reshape(u.shape[0], -1))
        else:
            check_interaction(interaction)
        names += [f"ui{j}" for j in range(blocks[-1].shape[1])]
    if covariates is not None:
        if isinstance(covariates, pd.DataFrame):
            from causalrec.features.tabular import encode_tabular

            c, cnames = encode_tabular(covariates)
        else:
            c = _as_2d(covariates, "covariates")
            cnames = [f"c{j}" for j in range(c.shape[1])]
        blocks.append(c)
        names += cnames
    if not blocks:
        raise InputError("design_matrix needs at least one of user_emb, item_emb, covariates",
                         column="design_matrix")
    n = {b.shape[0] for b in blocks}
    if len(n) != 1:
        raise InputError(f"blocks have different numbers of rows: {sorted(n)}", column="design_matrix",
                         fix="pass row-aligned arrays (one row per log row)")
    X = np.concatenate([b.astype(dtype, copy=False) for b in blocks], axis=1)
    if not np.isfinite(X).all():
        raise InputError("the design matrix contains NaN or infinite values", column="covariates",
                         fix="impute or drop missing covariates (DataFrames are imputed automatically)")
    return (X, names) if return_names else X
