"""Importance-weight diagnostics, accumulated batch by batch.

Reported for every evaluation (DESIGN.md section 5): the effective sample size
``ESS = (sum w)^2 / sum w^2`` (Kish 1965) of the weights the estimators use (after
clipping), its share of the rows, the largest weight, weight quantiles, the share of
clipped weights, the propensity range and the mean raw weight, which should be close
to 1 when the propensities are right and the target only uses logged (item, position)
pairs (``E_0[w] = sum_a pi_e(a | x, k) 1{p(a, k | x) > 0}``).

Quantiles are exact in memory; when streaming they come from a fine log-scale
histogram (0.01 decades per bin, so within about 2.3% of the exact value). The same
histogram, collapsed to a few dozen bins, feeds the report's weight histogram.
"""

from __future__ import annotations

import numpy as np

from causalrec.diagnostics.overlap import CLIP_WARN_SHARE
from causalrec.diagnostics.weights import ess_from_sums, ess_warning
from causalrec.ope.estimators import vdot

LOG_LO, LOG_HI, STEP = -8.0, 8.0, 0.01
N_FINE = int(round((LOG_HI - LOG_LO) / STEP))
QUANTILES = (0.5, 0.9, 0.99, 0.999)


class WeightStats:
    """Running sums and a fine log-histogram of the raw weights."""

    def __init__(self, clip: float | None = None):
        self.clip = clip
        self.n = 0
        self.sum_w = self.sum_w2 = 0.0  # weights as used (clipped)
        self.sum_raw = self.sum_raw2 = 0.0
        self.max_raw = -np.inf
        self.min_raw = np.inf
        self.n_clipped = 0
        self.n_zero = 0
        self.p_min = np.inf
        self.p_max = -np.inf
        self.fine = np.zeros(N_FINE + 2, dtype=np.int64)  # [underflow, bins..., overflow]
        self._exact: dict[str, float] | None = None

    def update(self, w: np.ndarray, propensity: np.ndarray) -> None:
        if w.size == 0:
            return
        self.n += w.size
        raw_sum, raw_ss = float(w.sum()), vdot(w, w)
        self.sum_raw += raw_sum
        self.sum_raw2 += raw_ss
        wmax = float(w.max())
        self.max_raw = max(self.max_raw, wmax)
        self.min_raw = min(self.min_raw, float(w.min()))
        if self.clip is not None and wmax > self.clip:
            used = np.minimum(w, self.clip)
            self.sum_w += float(used.sum())
            self.sum_w2 += vdot(used, used)
            self.n_clipped += int(np.count_nonzero(w > self.clip))
        else:
            self.sum_w += raw_sum
            self.sum_w2 += raw_ss
        with np.errstate(divide="ignore", invalid="ignore"):
            # float32 is exact enough for 0.01-decade bins and several times faster
            b = w.astype(np.float32)
            np.log10(b, out=b)  # zeros become -inf, counted apart below
        b -= np.float32(LOG_LO - STEP)  # shift by one bin: index 0 is the underflow
        b *= np.float32(1.0 / STEP)
        np.clip(b, 0.0, N_FINE + 1, out=b)  # also maps -inf into the underflow bin
        counts = np.bincount(b.astype(np.int32), minlength=N_FINE + 2)
        zeros = int(w.size - np.count_nonzero(w))
        counts[0] -= zeros
        self.n_zero += zeros
        self.fine += counts
        self.p_min = min(self.p_min, float(propensity.min()))
        self.p_max = max(self.p_max, float(propensity.max()))

    def merge(self, other: WeightStats) -> WeightStats:
        """Add the statistics of another, disjoint set of rows (e.g. a Spark partition), in place."""
        self.n += other.n
        self.sum_w += other.sum_w
        self.sum_w2 += other.sum_w2
        self.sum_raw += other.sum_raw
        self.sum_raw2 += other.sum_raw2
        self.max_raw = max(self.max_raw, other.max_raw)
        self.min_raw = min(self.min_raw, other.min_raw)
        self.n_clipped += other.n_clipped
        self.n_zero += other.n_zero
        self.p_min = min(self.p_min, other.p_min)
        self.p_max = max(self.p_max, other.p_max)
        self.fine += other.fine
        return self

    def set_exact_quantiles(self, w: np.ndarray) -> None:
        qs = np.quantile(w, QUANTILES) if w.size else [np.nan] * len(QUANTILES)
        self._exact = {_qname(q): float(v) for q, v in zip(QUANTILES, qs, strict=True)}

    def _hist_quantiles(self) -> dict[str, float]:
        cum = np.cumsum(np.concatenate([[self.n_zero], self.fine]))
        out = {}
        for q in QUANTILES:
            j = int(np.searchsorted(cum, q * self.n, side="left"))
            if j == 0:
                out[_qname(q)] = 0.0
            else:  # geometric mid-point of fine bin j-1 (index 0 = underflow)
                b = j - 1
                out[_qname(q)] = float(min(max(10 ** (LOG_LO + (b - 0.5) * STEP), self.min_raw), self.max_raw))
        return out

    def diagnostics(self) -> dict:
        n = self.n
        ess = ess_from_sums(self.sum_w, self.sum_w2)
        mean_raw = self.sum_raw / n if n else float("nan")
        var_raw = (self.sum_raw2 - n * mean_raw**2) / (n - 1) if n > 1 else float("nan")
        d = {
            "ess": float(ess),
            "ess_ratio": float(ess / n) if n else float("nan"),
            "weight_mean": float(mean_raw),
            "weight_mean_se": float(np.sqrt(max(var_raw, 0.0) / n)) if n > 1 else float("nan"),
            "weight_max": float(self.max_raw),
            "max_weight": float(self.max_raw),  # the name DESIGN.md section 4 uses
            "weight_min": float(self.min_raw),
            "share_zero_weight": float(self.n_zero / n) if n else float("nan"),
            "clip": self.clip,
            "share_clipped": float(self.n_clipped / n) if n else 0.0,
            "propensity_min": float(self.p_min),
            "propensity_max": float(self.p_max),
        }
        qs = self._exact if self._exact is not None else self._hist_quantiles()
        d.update({f"weight_{k}": v for k, v in qs.items()})
        d["weight_quantile_method"] = "exact" if self._exact is not None else "histogram"
        return d

    def histogram(self, max_bins: int = 40) -> dict:
        """Compact histogram of the positive raw weights (log-spaced edges) plus the zero count."""
        nz = np.flatnonzero(self.fine[1:-1]) if self.n else np.zeros(0, dtype=np.int64)
        if nz.size == 0:
            return {"edges": [], "counts": [], "n_zero": int(self.n_zero), "scale": "log"}
        lo, hi = int(nz[0]), int(nz[-1]) + 1
        span = hi - lo
        group = max(1, int(np.ceil(span / max_bins)))
        nb = int(np.ceil(span / group))
        counts = np.add.reduceat(self.fine[1:-1][lo:hi], np.arange(0, span, group))
        edges = 10 ** (LOG_LO + (lo + np.arange(nb + 1) * group) * STEP)
        counts = counts.astype(np.int64)
        counts[0] += int(self.fine[0])
        counts[-1] += int(self.fine[-1])
        return {"edges": edges.tolist(), "counts": counts.tolist(), "n_zero": int(self.n_zero), "scale": "log"}

    def warnings(self) -> list[str]:
        d = self.diagnostics()
        out = []
        msg = ess_warning(d["ess"], self.n, "a few rows with large weights drive the weighting estimates; "
                          "prefer DR-type estimators, clip the weights, or collect more randomised data")
        if msg and self.sum_w2 > 0:
            out.append(msg)
        if self.n and self.sum_w2 == 0:
            out.append("the target policy puts no mass on any logged (item, position): weighting "
                       "estimates are 0 and carry no information; only DM extrapolates")
        se = d["weight_mean_se"]
        dev = abs(d["weight_mean"] - 1.0)
        if self.n > 1 and np.isfinite(se) and dev > 0.05 and dev > 4 * se:
            out.append(
                f"the mean importance weight is {d['weight_mean']:.4g} (SE {se:.2g}); it should be close to 1 "
                "when the propensities are correct and the target only uses (item, position) pairs the "
                "logging policy can show: check the propensity column and the target's support"
            )
        if self.clip is not None and d["share_clipped"] > CLIP_WARN_SHARE:
            out.append(f"{100 * d['share_clipped']:.1f}% of the weights were clipped at {self.clip:g}: "
                       "the clipped estimates are biased (downwards for non-negative outcomes)")
        return out


def _qname(q: float) -> str:
    return "p" + f"{100 * q:g}".replace(".", "_")
