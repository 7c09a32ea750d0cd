"""Uplift and Qini (cumulative-gain) curves, and the area under them, for
ranking units by a predicted effect ``s`` -- valid on logged, non-randomised
data through inverse-propensity or doubly robust weighting.

Sort the ``n`` evaluation rows by ``s`` (largest first) and let ``top(q)`` be
the first ``k = ceil(q n)`` of them. With per-row effect scores ``psi_i``
whose mean estimates an average effect,

* ``dr`` (default with nuisances): ``psi_i = mu1 - mu0 + T (Y - mu1)/e - (1-T)(Y - mu0)/(1-e)``
* ``ips``: ``psi_i = T Y / e - (1 - T) Y / (1 - e)``

the curves are

* uplift curve ``U(q) = mean_{top(q)} psi``: average effect among the targeted;
* Qini / cumulative gain ``G(q) = (1/n) sum_{top(q)} psi = q U(q)``: effect per
  population unit of treating only the top ``q``; random targeting gives the
  straight line ``q G(1)``;
* ``AUUC = integral_0^1 G(q) dq`` and the Qini coefficient
  ``integral_0^1 (G(q) - q G(1)) dq`` (area over random targeting; > 0 means
  the ranking finds higher-effect units better than chance).

On randomised data ``plain`` uses the classic difference in means inside the
top ``q``: ``U(q) = mean(Y | T=1, top) - mean(Y | T=0, top)`` (Radcliffe 2007).
The scores must not be fitted on the evaluation rows (use a held-out split or
cross-fitting), otherwise the curve is optimistic.

Bootstrap intervals resample evaluation rows with the ranking held fixed
(uncertainty of the evaluation, given the score), vectorised through
multinomial row counts: every replicate is a cumulative sum over the sorted
rows. Hand-written because econml has no weighted uplift curves and
scikit-uplift/causalml do not weight by estimated propensities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from causalrec.diagnostics.overlap import handle_overlap
from causalrec.errors import InputError
from causalrec.results import jsonable
from causalrec.uplift.ate import aipw_scores


@dataclass
class UpliftCurve:
    """Curves on a grid of targeted fractions, with bootstrap bands and areas."""

    weighting: str
    fractions: np.ndarray = field(repr=False)
    uplift: np.ndarray = field(repr=False)
    gain: np.ndarray = field(repr=False)
    gain_low: np.ndarray | None = field(default=None, repr=False)
    gain_high: np.ndarray | None = field(default=None, repr=False)
    auuc: float = float("nan")
    qini: float = float("nan")
    auuc_ci: tuple[float, float] | None = None
    qini_ci: tuple[float, float] | None = None
    ci_level: float = 0.95
    n_boot: int = 0
    n_rows: int = 0
    overlap_note: str = ""

    @property
    def overall(self) -> float:
        """``G(1)``: the estimated average effect over all evaluated rows."""
        return float(self.gain[-1])

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame({"fraction": self.fractions, "uplift": self.uplift, "gain": self.gain,
                           "random": self.fractions * self.overall})
        if self.gain_low is not None:
            df["gain_ci_low"], df["gain_ci_high"] = self.gain_low, self.gain_high
        return df

    def to_dict(self) -> dict:
        return jsonable({"weighting": self.weighting, "auuc": self.auuc, "qini": self.qini,
                         "auuc_ci": self.auuc_ci, "qini_ci": self.qini_ci, "ci_level": self.ci_level,
                         "n_boot": self.n_boot, "n_rows": self.n_rows, "overall_effect": self.overall,
                         "curve": self.to_frame().iloc[:: max(1, len(self.fractions) // 20)].to_dict(orient="list")})

    def summary(self) -> str:
        ci = f" [{self.qini_ci[0]:.4g}, {self.qini_ci[1]:.4g}]" if self.qini_ci else ""
        return (f"uplift curve ({self.weighting}, n={self.n_rows:,}): AUUC {self.auuc:.4g}, "
                f"Qini coefficient {self.qini:.4g}{ci}")


def _areas(frac: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUUC and Qini coefficient of (..., n_points) gain curves (trapezoid rule)."""
    auuc = np.trapezoid(gain, frac, axis=-1)
    rand = frac * gain[..., -1:]
    return auuc, np.trapezoid(gain - rand, frac, axis=-1)


def _curves_from_counts(c, sorted_cols, k_idx, n, weighting):
    """Gain and uplift at the cut-offs ``k_idx`` for row multiplicities ``c`` (b, n)."""
    if weighting == "plain":
        ty, tt, cy, cc = sorted_cols
        cs = lambda a: np.cumsum(c * a, axis=1)[:, k_idx]  # noqa: E731
        n_t, n_c = cs(tt), cs(cc)
        with np.errstate(divide="ignore", invalid="ignore"):
            up = cs(ty) / n_t - cs(cy) / n_c
        up = np.where((n_t > 0) & (n_c > 0), up, 0.0)
        m = np.cumsum(c, axis=1)[:, k_idx]
        return up * m / n, up
    (psi,) = sorted_cols
    g = np.cumsum(c * psi, axis=1)[:, k_idx]
    m = np.cumsum(c, axis=1)[:, k_idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        return g / n, np.where(m > 0, g / m, 0.0)


def uplift_curve(
    score, y, t, *,
    e_hat=None, mu0=None, mu1=None,
    weighting: str = "auto",
    n_points: int = 101,
    n_boot: int = 200,
    ci_level: float = 0.95,
    overlap: str = "clip",
    clip: float = 0.01,
    seed: int = 0,
    batch: int = 16,
    clusters=None,
) -> UpliftCurve:
    """Uplift/Qini curves of ranking by ``score`` (module docstring).

    ``clusters`` (one label per row, e.g. the user): the bootstrap resamples whole
    clusters, so rows of one user are not treated as independent.

    ``weighting="auto"`` picks ``dr`` when ``mu0``/``mu1`` are given, ``ips``
    when only ``e_hat`` is, and ``plain`` otherwise (randomised data).
    """
    s = np.asarray(score, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    t = np.asarray(t, dtype=float).reshape(-1)
    if not (s.shape == y.shape == t.shape):
        raise InputError("score, outcome and treatment must have the same length", column="score",
                         fix="pass one predicted effect per evaluation row")
    if weighting == "auto":
        weighting = "dr" if mu0 is not None and mu1 is not None else ("ips" if e_hat is not None else "plain")
    note = ""
    if weighting in ("dr", "ips"):
        if e_hat is None:
            raise InputError(f"{weighting} weighting needs propensities", column="propensity",
                             fix="pass e_hat, or weighting='plain' on randomised data")
        oh = handle_overlap(e_hat, overlap, clip)
        note = oh.estimand_note
        keep = oh.keep
        if weighting == "dr":
            if mu0 is None or mu1 is None:
                raise InputError("dr weighting needs outcome predictions mu0 and mu1", column="outcome",
                                 fix="pass mu0/mu1, or weighting='ips'")
            psi = aipw_scores(t, y, oh.e_used, np.asarray(mu0, dtype=float), np.asarray(mu1, dtype=float))
        else:
            e = oh.e_used
            psi = t * y / e - (1.0 - t) * y / (1.0 - e)
        s, psi = s[keep], psi[keep]
        order = np.argsort(-s, kind="stable")
        cols = (psi[order],)
    elif weighting == "plain":
        order = np.argsort(-s, kind="stable")
        ts, ys = t[order], y[order]
        cols = (ts * ys, ts, (1 - ts) * ys, 1 - ts)
    else:
        raise InputError(f"unknown weighting {weighting!r}", column="weighting", fix="use auto, dr, ips or plain")
    n = cols[0].shape[0]
    if n < 2:
        raise InputError("too few rows for an uplift curve", column="score", fix="evaluate on more rows")
    frac = np.linspace(0.0, 1.0, n_points)
    k = np.maximum(np.ceil(frac * n).astype(int), 1)
    k_idx = k - 1
    gain, up = _curves_from_counts(np.ones((1, n)), cols, k_idx, n, weighting)
    gain, up = gain[0], up[0]
    gain[0] = 0.0  # treating nobody has no effect
    auuc, qini = _areas(frac, gain)
    res = UpliftCurve(weighting, frac, up, gain, auuc=float(auuc), qini=float(qini), ci_level=ci_level,
                      n_rows=n, overlap_note=note)
    if n_boot and n_boot > 1:
        rng = np.random.default_rng(seed)
        codes = None
        if clusters is not None:
            from causalrec.inference import cluster_codes

            cl = np.asarray(clusters).reshape(-1)
            if cl.shape[0] != y.shape[0]:
                raise InputError(f"clusters has {cl.shape[0]} labels for {y.shape[0]} rows", column="clusters",
                                 fix="pass one cluster label (e.g. the user id) per row")
            if weighting in ("dr", "ips"):
                cl = cl[keep]
            codes = cluster_codes(cl[order], "clusters (the user column)")
        units = n if codes is None else int(codes.max()) + 1
        p = np.full(units, 1.0 / units)
        reps = []
        done = 0
        while done < n_boot:
            b = min(batch, n_boot - done)
            counts = rng.multinomial(units, p, size=b).astype(np.float64)
            if codes is not None:  # each row takes its cluster's multiplicity
                counts = counts[:, codes]
            g, _ = _curves_from_counts(counts, cols, k_idx, n, weighting)
            g[:, 0] = 0.0
            reps.append(g)
            done += b
        G = np.concatenate(reps)
        a = (1 - ci_level) / 2
        res.gain_low, res.gain_high = np.quantile(G, [a, 1 - a], axis=0)
        A, Q = _areas(frac, G)
        res.auuc_ci = tuple(float(v) for v in np.quantile(A, [a, 1 - a]))
        res.qini_ci = tuple(float(v) for v in np.quantile(Q, [a, 1 - a]))
        res.n_boot = int(n_boot)
    return res
