"""Overlap (positivity): how the estimated propensities are spread in each arm,
and what the default handling of poor overlap does to the estimand.

Positivity requires ``0 < e(x) < 1`` for every covariate value; with
estimated propensities near 0 or 1 the inverse weights explode. Two standard
remedies, and the estimand each one implies:

* **clip** (default): ``e <- min(max(e, c), 1 - c)``. Every row stays; the
  target is still the population ATE, but rows whose propensity was clipped
  contribute a biased correction term (the estimate leans on the outcome
  model there).
* **trim** (Crump et al. 2009): drop rows with ``e < c`` or ``e > 1 - c``. The
  target becomes the effect on the *overlap population*
  ``{x : c <= e(x) <= 1 - c}``, not the whole-population ATE.

Hand-written because no library returns these as data for a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from causalrec.errors import InputError
from causalrec.results import jsonable

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
#: share of clipped propensities (or weights) above which a run warns: the one threshold
CLIP_WARN_SHARE = 0.05


def share_clipped(e_raw: np.ndarray, clip: float) -> float:
    """Share of the *unclipped* propensities outside ``[clip, 1 - clip]``: the rows clipping moves.

    Measured before clipping: on already-clipped values it would always be 0.
    """
    e = np.asarray(e_raw, dtype=float).reshape(-1)
    if e.size == 0 or not clip or clip <= 0:
        return 0.0
    return float(np.mean((e < clip) | (e > 1.0 - clip)))


def clip_warning(share: float, clip: float) -> str | None:
    """The one propensity-clipping warning: a message when ``share > CLIP_WARN_SHARE``, else ``None``."""
    if not share > CLIP_WARN_SHARE:
        return None
    return (f"{share:.1%} of propensities were clipped to [{clip}, {1 - clip}]: "
            "weak overlap; IPW/AIPW are biased towards the clipped weights' estimand. "
            "Consider trim=... (the estimand then becomes the overlap population).")


def _check(t: np.ndarray, e_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t)
    e = np.asarray(e_hat, dtype=float).reshape(-1)
    if t.shape[0] != e.shape[0]:
        raise InputError(f"treatment has {t.shape[0]} rows but propensities have {e.shape[0]}",
                         column="propensity", fix="pass one propensity per row")
    if not np.all(np.isfinite(e)):
        raise InputError("propensities contain NaN or infinite values", column="propensity",
                         fix="check the propensity model's predictions")
    return t.astype(bool), e


@dataclass
class OverlapResult:
    """Propensity distribution by arm and the share of rows outside ``[clip, 1 - clip]``.

    ``hist_edges`` / ``hist_treated`` / ``hist_control`` are densities on a common
    grid (figure data for the report).
    """

    clip: float
    n_treated: int
    n_control: int
    quantiles: pd.DataFrame  # index: arm, columns: quantile levels
    share_below: float  # share of all rows with e < clip
    share_above: float  # share of all rows with e > 1 - clip
    hist_edges: np.ndarray = field(repr=False)
    hist_treated: np.ndarray = field(repr=False)
    hist_control: np.ndarray = field(repr=False)

    @property
    def share_outside(self) -> float:
        return self.share_below + self.share_above

    def to_dict(self) -> dict:
        return jsonable({
            "clip": self.clip, "n_treated": self.n_treated, "n_control": self.n_control,
            "share_below_clip": self.share_below, "share_above_1_minus_clip": self.share_above,
            "propensity_quantiles": {arm: row.to_dict() for arm, row in self.quantiles.iterrows()},
        })

    def summary(self) -> str:
        q = self.quantiles.to_string(float_format=lambda v: f"{v:.3f}")
        return (f"propensity by arm (quantiles):\n{q}\n"
                f"rows with e < {self.clip:g}: {self.share_below:.2%}; e > {1 - self.clip:g}: {self.share_above:.2%}")


def overlap(t: np.ndarray, e_hat: np.ndarray, clip: float = 0.01, bins: int = 40) -> OverlapResult:
    """Summarise the estimated propensities ``e_hat`` in the treated and control arms."""
    t, e = _check(t, e_hat)
    qs = list(QUANTILES)
    rows = {}
    for name, mask in (("treated", t), ("control", ~t)):
        rows[name] = np.quantile(e[mask], qs) if mask.any() else np.full(len(qs), np.nan)
    quant = pd.DataFrame.from_dict(rows, orient="index", columns=[f"q{int(q * 100):02d}" for q in qs])
    edges = np.linspace(0.0, 1.0, bins + 1)
    ht, _ = np.histogram(e[t], bins=edges, density=True) if t.any() else (np.zeros(bins), None)
    hc, _ = np.histogram(e[~t], bins=edges, density=True) if (~t).any() else (np.zeros(bins), None)
    n = max(e.shape[0], 1)
    return OverlapResult(
        clip=float(clip), n_treated=int(t.sum()), n_control=int((~t).sum()), quantiles=quant,
        share_below=float(np.sum(e < clip) / n), share_above=float(np.sum(e > 1 - clip) / n),
        hist_edges=edges, hist_treated=ht, hist_control=hc,
    )


@dataclass
class OverlapHandling:
    """What the overlap handling did: the propensities to use, the rows kept,
    the share affected and the estimand it implies."""

    mode: str
    level: float
    e_used: np.ndarray = field(repr=False)
    keep: np.ndarray = field(repr=False)
    share_clipped: float
    share_trimmed: float
    estimand_note: str

    def to_dict(self) -> dict:
        return jsonable({"mode": self.mode, "level": self.level, "share_clipped": self.share_clipped,
                         "share_trimmed": self.share_trimmed, "estimand_note": self.estimand_note})


def handle_overlap(e_hat: np.ndarray, mode: str = "clip", level: float = 0.01) -> OverlapHandling:
    """Clip (default) or trim propensities at ``[level, 1 - level]``; see the module docstring."""
    e = np.asarray(e_hat, dtype=float).reshape(-1)
    if not 0.0 <= level < 0.5:
        raise InputError(f"overlap level must be in [0, 0.5), got {level}", column="clip",
                         fix="use a small value such as 0.01 or 0.05")
    outside = (e < level) | (e > 1.0 - level)
    share = float(outside.mean()) if e.size else 0.0
    if mode == "clip":
        return OverlapHandling(
            "clip", level, np.clip(e, level, 1.0 - level), np.ones(e.shape[0], bool), share, 0.0,
            f"Propensities clipped to [{level:g}, {1 - level:g}] ({share:.2%} of rows). The target stays the "
            "population effect; where clipping bites the estimate leans on the outcome model.",
        )
    if mode == "trim":
        return OverlapHandling(
            "trim", level, e.copy(), ~outside, 0.0, share,
            f"Rows with propensity outside [{level:g}, {1 - level:g}] dropped ({share:.2%} of rows). The target "
            "is the effect on the overlap population, not the whole-population effect.",
        )
    if mode == "none":
        return OverlapHandling("none", 0.0, e.copy(), np.ones(e.shape[0], bool), 0.0, 0.0,
                               "No overlap handling: the target is the population effect.")
    raise InputError(f"unknown overlap handling {mode!r}", column="overlap", fix="use 'clip', 'trim' or 'none'")
