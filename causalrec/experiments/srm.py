"""Sample-ratio mismatch (SRM): are the arms the size the design said?

Pearson's chi-square goodness-of-fit test of the observed unit counts
``O_k`` against the designed split ``w_k`` (shares summing to 1)::

    chi2 = sum_k (O_k - E_k)^2 / E_k,   E_k = w_k * sum_k O_k,   df = K - 1

An SRM means assignment or logging is broken (bots filtered in one arm,
redirects losing users, a crash in one variant), and then no effect estimate
can be trusted. The default threshold is ``p < 0.001``, the convention of
large experimentation platforms (Fabijan et al. 2019, "Diagnosing sample
ratio mismatch"), because the check runs on every experiment and a 5% false
alarm rate would train people to ignore it. ``scipy.stats.chisquare`` does the
arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from causalrec.errors import InputError


@dataclass
class SRMResult:
    """Result of the SRM check; ``mismatch`` is True when ``p_value < alpha``."""

    observed: dict[str, int]
    expected_share: dict[str, float]
    expected: dict[str, float]
    chi2: float
    df: int
    p_value: float
    alpha: float
    mismatch: bool
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def message(self) -> str:
        obs = ", ".join(f"{k}={v:,}" for k, v in self.observed.items())
        exp = "/".join(f"{100 * s:.4g}" for s in self.expected_share.values())
        head = "SAMPLE RATIO MISMATCH" if self.mismatch else "SRM check passed"
        tail = (" -- the assignment or logging is broken; do not trust the effect estimates "
                "until the cause is found" if self.mismatch else "")
        return (f"{head}: observed {obs} vs designed split {exp} "
                f"(chi2={self.chi2:.4g}, df={self.df}, p={self.p_value:.3g}, threshold {self.alpha:g}){tail}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_value": self.p_value, "mismatch": self.mismatch, "chi2": self.chi2, "df": self.df,
            "alpha": self.alpha, "observed": self.observed, "expected_split": self.expected_share,
            "expected": self.expected, "note": self.note,
        }


def srm_test(observed: dict[str, int], expected_share: dict[str, float], alpha: float = 0.001) -> SRMResult:
    """Chi-square test of ``observed`` unit counts against ``expected_share``."""
    from scipy import stats

    keys = list(observed)
    obs = np.array([observed[k] for k in keys], dtype=float)
    share = np.array([expected_share[k] for k in keys], dtype=float)
    share = share / share.sum()
    exp = share * obs.sum()
    chi2, p = stats.chisquare(obs, exp)
    return SRMResult(
        observed={k: int(v) for k, v in zip(keys, obs, strict=True)},
        expected_share={k: float(s) for k, s in zip(keys, share, strict=True)},
        expected={k: float(e) for k, e in zip(keys, exp, strict=True)},
        chi2=float(chi2), df=len(keys) - 1, p_value=float(p), alpha=alpha, mismatch=bool(p < alpha),
    )


def parse_split(spec: str | dict | list | tuple | None, variants: list[str]) -> dict[str, float]:
    """The designed split as ``{variant: share}``.

    Accepts ``None`` (equal split), a mapping ``{variant: weight}``, a sequence
    of weights, or a string: ``"50/50"`` / ``"1:1:2"`` / ``"0.5,0.5"``
    (weights in the order of ``variants``, i.e. sorted variant names) or
    ``"A=50/B=50"`` (named). Weights need not sum to 1 or 100.
    """
    fix = ("give one positive weight per variant, e.g. --expected-split 50/50, or name them: "
           f"--expected-split {'/'.join(f'{v}=1' for v in variants)}")
    if spec is None:
        return {v: 1.0 / len(variants) for v in variants}
    if isinstance(spec, dict):
        weights = {str(k): v for k, v in spec.items()}
    elif isinstance(spec, (list, tuple)):
        weights = list(spec)
    else:
        text = str(spec).strip()
        parts = [p.strip() for p in re.split(r"[/,:;]" if "=" not in text else r"[/,;]", text) if p.strip()]
        if not parts:
            raise InputError(f"expected split {spec!r} is empty", column="--expected-split", fix=fix)
        if all("=" in p for p in parts):
            weights = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in parts}
        elif any("=" in p for p in parts):
            raise InputError(f"expected split {spec!r} mixes named and unnamed weights",
                             column="--expected-split", fix=fix)
        else:
            weights = parts
    if isinstance(weights, dict):
        unknown = [k for k in weights if k not in variants]
        if unknown:
            raise InputError(f"expected split names variant {unknown[0]!r}, which has zero units in the data "
                             f"(variants: {variants})", column="--expected-split", fix=fix)
        missing = [v for v in variants if v not in weights]
        if missing:
            raise InputError(f"expected split gives no weight to variant {missing[0]!r} "
                             f"(variants: {variants})", column="--expected-split", fix=fix)
        values = [weights[v] for v in variants]
    else:
        if len(weights) != len(variants):
            raise InputError(f"expected split {spec!r} has {len(weights)} weights but the data has "
                             f"{len(variants)} variants ({variants})", column="--expected-split", fix=fix)
        values = weights
    try:
        w = np.array([float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"expected split {spec!r} is not a list of numbers", column="--expected-split",
                         fix=fix) from None
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise InputError(f"expected split {spec!r} must have positive weights", column="--expected-split", fix=fix)
    w = w / w.sum()
    return {v: float(x) for v, x in zip(variants, w, strict=True)}
