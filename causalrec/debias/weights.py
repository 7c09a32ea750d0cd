"""Exposure (selection) weights from logged or estimated propensities.

A click log holds only the impressions the logging policy chose to show, so the
pairs ``(context x, item a)`` in it follow the logging policy ``pi_0(a | x)``
rather than the distribution a new ranker will be judged on. Inverse-propensity
weighting re-weights each logged row to a uniform exposure of the candidates:

* IPS:     ``w_i = 1 / max(pi_0(a_i | x_i), clip)``
* capped:  ``w_i = min(w_i, cap)``  (a ceiling on the weight itself)
* SNIPS:   ``w_i = w_i / mean(w)``   (self-normalised: the weighted loss is a
  weighted mean, ``sum w l / sum w``; slightly biased, much lower variance)

``E_{pi_0}[w(x, a) f(x, a)] = E_{uniform}[f(x, a)]`` (up to the constant of the
uniform policy) holds when the propensities are right and every candidate has
``pi_0 > 0`` (positivity). Clipping and capping trade that unbiasedness for
variance; the share of rows they touch is reported so the trade is visible.

Kish's effective sample size ``ESS = (sum w)^2 / sum w^2`` (from
:mod:`causalrec.diagnostics`) tells how many equally weighted rows the weighted
training set is worth. Written here, not taken from a library, because it is a
few vectorised lines and no library computes it for *training* weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from causalrec.data.validation import check_propensity
from causalrec.diagnostics.weights import effective_sample_size
from causalrec.errors import InputError
from causalrec.results import jsonable

WEIGHT_METHODS = ("none", "ips", "snips")


@dataclass
class ExposureWeights:
    """Per-row exposure weights and how they were obtained.

    ``weights`` are what a trainer should pass as sample weights; ``raw`` are
    the unclipped ``1 / propensity``. ``clip`` is the propensity floor and
    ``cap`` the weight ceiling that were applied (``None`` if not applied).
    """

    weights: np.ndarray
    raw: np.ndarray
    method: str
    clip: float | None
    cap: float | None
    n_clipped: int
    n_capped: int
    ess: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.weights.shape[0])

    def quantiles(self) -> dict[str, float]:
        q = np.quantile(self.weights, [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0]) if self.n else [np.nan] * 7
        return dict(zip(("min", "p01", "p25", "p50", "p75", "p99", "max"), map(float, q), strict=True))

    def diagnostics(self) -> dict[str, Any]:
        q = self.quantiles()
        return jsonable({
            "weight_method": self.method,
            "ess": self.ess,
            "ess_ratio": self.ess / self.n if self.n else float("nan"),
            "max_weight": q["max"],
            "weight_p99": q["p99"],
            "weight_p50": q["p50"],
            "propensity_min": float(1.0 / self.raw.max()) if self.n else float("nan"),
            "clip": self.clip,
            "cap": self.cap,
            "share_clipped": self.n_clipped / self.n if self.n else 0.0,
            "share_capped": self.n_capped / self.n if self.n else 0.0,
            **self.extra,
        })


def exposure_weights(
    propensity: np.ndarray,
    method: str = "ips",
    *,
    clip: float | None = None,
    cap: float | None = None,
) -> ExposureWeights:
    """Turn propensities into training weights.

    Parameters
    ----------
    propensity:
        ``pi_0(a_i | x_i)`` per row, in (0, 1].
    method:
        ``"ips"`` (``1/pi``), ``"snips"`` (``1/pi`` divided by its mean, so the
        weights average 1) or ``"none"`` (all ones: naive training).
    clip:
        Propensity floor: ``pi`` below ``clip`` is raised to ``clip`` (weights
        at most ``1/clip``).
    cap:
        Weight ceiling applied after clipping and before self-normalisation.
    """
    if method not in WEIGHT_METHODS:
        raise InputError(f"unknown weighting method {method!r}", column="method",
                         fix=f"use one of {', '.join(WEIGHT_METHODS)}")
    p = np.asarray(propensity, dtype=np.float64)
    if p.ndim != 1:
        raise InputError("propensities must be one value per row", column="propensity",
                         fix="pass a 1-d array or a single column")
    check_propensity(p, "propensity")
    if clip is not None and not 0 < clip <= 1:
        raise InputError(f"clip must be in (0, 1], got {clip}", column="clip",
                         fix="clip is a propensity floor such as 0.01")
    if cap is not None and cap <= 0:
        raise InputError(f"cap must be positive, got {cap}", column="cap", fix="cap is a weight ceiling such as 100")
    raw = 1.0 / p
    if method == "none":
        w = np.ones_like(raw)
        return ExposureWeights(w, raw, method, None, None, 0, 0, effective_sample_size(w))
    n_clipped = 0
    w = raw
    if clip is not None:
        low = p < clip
        n_clipped = int(low.sum())
        w = 1.0 / np.maximum(p, clip)
    n_capped = 0
    if cap is not None:
        high = w > cap
        n_capped = int(high.sum())
        w = np.minimum(w, cap)
    if method == "snips":
        w = w / w.mean()
    return ExposureWeights(w, raw, method, clip, cap, n_clipped, n_capped, effective_sample_size(w))


def empirical_propensity(item_ids: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    """Context-free propensity estimate: the share of impressions of each item.

    ``pi_hat(a) = n_a / n`` (per position when ``positions`` is given:
    ``pi_hat(a | k) = n_{a,k} / n_k``). This is the maximum-likelihood estimate
    of a logging policy that ignores the context; with context features use
    :func:`causalrec.debias.estimate_propensity` which fits a classifier.
    """
    items = np.asarray(item_ids)
    _, codes = np.unique(items, return_inverse=True)
    if positions is None:
        counts = np.bincount(codes)
        return counts[codes] / float(codes.shape[0])
    pos = np.asarray(positions, dtype=np.int64)
    n_items = int(codes.max()) + 1
    key = pos * n_items + codes
    counts = np.bincount(key)
    per_pos = np.bincount(pos)
    return counts[key] / per_pos[pos].astype(np.float64)
