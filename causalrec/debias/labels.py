"""Corrected click labels for training: IPS and doubly-robust pseudo-labels.

Notation: ``c`` the click, ``k`` the 0-based position, ``rho_k`` the
examination of slot ``k`` relative to slot 0 (:mod:`causalrec.debias.position`),
``rho_bar_k = max(rho_k, position_clip)`` and ``r(x, a) = P(C = 1 | x, a, k = 0)``
the target: the click probability had the item been shown in the first slot
(relevance on the scale of the top slot).

* IPS label (Joachims, Swaminathan & Schnabel 2017)::

      y_ips = c / rho_bar_k,        E[y_ips | x, a, k] = r(x, a) * rho_k / rho_bar_k

  unbiased when no clipping binds; clipping biases labels at deep slots
  downwards by ``(rho_k / rho_bar_k - 1) r``.
* Doubly-robust pseudo-label (outcome model ``r_hat`` plus weighted residual;
  cf. Wang et al. 2019, "Doubly robust joint learning for recommendation on
  data missing not at random")::

      y_dr = r_hat(x, a) + (c - rho_k r_hat(x, a)) / rho_bar_k

  ``E[y_dr] - r = (1 - rho_k / rho_bar_k)(r - r_hat)``: unbiased if either the
  examination estimate holds without clipping, or ``r_hat`` is right; with
  clipping its bias is the *residual* of the outcome model rather than the
  whole relevance. Note that without clipping ``y_dr == y_ips`` exactly on the
  logged rows: a per-row control variate that depends only on ``(x, a)`` does
  not change the label; the outcome model only matters where clipping binds.
  ``r_hat`` must be cross-fitted (out-of-fold) so the residual is honest.

Exposure (which pairs are logged at all) is corrected by *sample weights*
(:mod:`causalrec.debias.weights`), not inside the label: multiplying a
per-row label by ``1 / pi`` would bias the label of every pair whose weight is
not 1, while a weight leaves each pair's label unbiased and re-balances the
pair distribution of the loss.

Both labels can exceed 1 and the IPS label can be large. Losses that are
linear in the label (squared error, binary cross-entropy with soft targets)
keep their expectation under these labels, which is why the ranker's
pointwise objective is a soft-target BCE.

Pairwise training: within a request, the pair ``(i, j)`` gets weight
``max(y_i - y_j, 0)`` (the gain difference; with a non-clicked ``j`` this is
Joachims' ``c_i / rho_i``) times the rows' sample weights; see
:func:`pairwise_weights`.
"""

from __future__ import annotations

import numpy as np

from causalrec.errors import InputError


def _rho_bar(rho: np.ndarray, position_clip: float | None) -> np.ndarray:
    rho = np.asarray(rho, dtype=np.float64)
    if position_clip is not None:
        if not 0 < position_clip <= 1:
            raise InputError(f"position_clip must be in (0, 1], got {position_clip}", column="position_clip",
                             fix="use a floor on relative examination such as 0.1")
        rho = np.maximum(rho, position_clip)
    if np.any(rho <= 0) or not np.all(np.isfinite(rho)):
        raise InputError("examination probabilities must be positive and finite", column="examination",
                         fix="re-estimate position bias on more traffic, or set a position_clip floor "
                         "(a slot with zero estimated examination cannot be corrected)")
    return rho


def ips_labels(clicks: np.ndarray, rho: np.ndarray, *, position_clip: float | None = None) -> np.ndarray:
    """``c / max(rho_k, position_clip)`` per row."""
    c = np.asarray(clicks, dtype=np.float64)
    return c / _rho_bar(rho, position_clip)


def dr_labels(
    clicks: np.ndarray, rho: np.ndarray, r_hat: np.ndarray, *, position_clip: float | None = None
) -> np.ndarray:
    """``r_hat + (c - rho_k r_hat) / max(rho_k, position_clip)`` per row."""
    c = np.asarray(clicks, dtype=np.float64)
    rho = np.asarray(rho, dtype=np.float64)
    r = np.asarray(r_hat, dtype=np.float64)
    if r.shape != c.shape:
        raise InputError("r_hat must have one prediction per row", column="r_hat", fix="pass out-of-fold predictions")
    return r + (c - rho * r) / _rho_bar(rho, position_clip)


def pairwise_weights(
    labels: np.ndarray, weights: np.ndarray, groups: np.ndarray, *, max_pairs_per_group: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs ``(i, j)`` within a group with ``y_i > y_j``.

    Returns ``(i, j, pair_weight)`` with ``pair_weight = (y_i - y_j) * (w_i + w_j) / 2``.
    Vectorised over groups by sorting rows by group and enumerating pairs of
    each group size at once.
    """
    y = np.asarray(labels, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    order = np.argsort(g, kind="stable")
    gs = g[order]
    starts = np.r_[0, np.flatnonzero(np.diff(gs)) + 1]
    sizes = np.diff(np.r_[starts, gs.shape[0]])
    ii, jj = [], []
    for size in np.unique(sizes):
        if size < 2:
            continue
        st = starts[sizes == size]
        a, b = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        mask = a != b
        a, b = a[mask], b[mask]
        ii.append((st[:, None] + a[None, :]).ravel())
        jj.append((st[:, None] + b[None, :]).ravel())
    if not ii:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    i = order[np.concatenate(ii)]
    j = order[np.concatenate(jj)]
    keep = y[i] > y[j]
    i, j = i[keep], j[keep]
    if max_pairs_per_group is not None and i.shape[0] > max_pairs_per_group * sizes.shape[0]:
        rng = np.random.default_rng(seed)
        sel = np.sort(rng.choice(i.shape[0], size=max_pairs_per_group * sizes.shape[0], replace=False))
        i, j = i[sel], j[sel]
    pw = (y[i] - y[j]) * (w[i] + w[j]) / 2.0
    return i, j, pw
