"""Result objects shared by every estimator.

A result is a plain dataclass: the numbers as attributes, plus ``summary()``
(a readable text table), ``to_frame()`` (estimates as a DataFrame),
``to_dict()`` (the JSON contract of DESIGN.md section 4) and
``_repr_html_()`` (for notebooks). The CLI's JSON and the HTML report are
renderings of the same object; nothing statistical happens after this layer.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causalrec.inference import normal_ci, two_sided_p


def jsonable(obj: Any) -> Any:
    """Convert numpy / pandas scalars and containers to JSON-safe Python.

    Non-finite floats become ``None`` (JSON has no NaN).
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        return jsonable(obj.to_dict())
    return obj


@dataclass
class Estimate:
    """One point estimate with its standard error and interval.

    ``extra`` holds labels that identify the estimate beyond estimator and
    target (``{"item_id": 3}``, ``{"metric": "clicks", "variant": "B"}``) and
    any further numbers (``p_value`` is a field because A/B needs it).
    """

    estimator: str
    target: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    ci_level: float = 0.95
    p_value: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def normal(
        cls,
        estimator: str,
        target: str,
        estimate: float,
        se: float,
        ci_level: float = 0.95,
        null: float | None = None,
        **extra: Any,
    ) -> Estimate:
        """Build an estimate with a normal interval (and a p-value against ``null``)."""
        lo, hi = normal_ci(estimate, se, ci_level)
        p = two_sided_p(estimate, se, null) if null is not None else None
        return cls(estimator, target, float(estimate), float(se), lo, hi, ci_level, p, dict(extra))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        if d["p_value"] is None:
            d.pop("p_value")
        d.update(extra)
        return jsonable(d)


@dataclass
class CausalResult:
    """Base result: estimates, diagnostics, warnings and the config that produced them.

    Subclasses add their own fields and extend ``to_dict`` through
    ``_extra_dict``; the keys of DESIGN.md section 4 are always present.
    """

    command: str
    n_rows: int
    estimates: list[Estimate]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    title: str = "causalrec result"

    # -- access -----------------------------------------------------------
    def get(self, estimator: str, target: str | None = None, **labels: Any) -> Estimate:
        """The estimate with this estimator name (and target / labels)."""
        for e in self.estimates:
            if e.estimator != estimator or (target is not None and e.target != target):
                continue
            if all(e.extra.get(k) == v for k, v in labels.items()):
                return e
        raise KeyError(f"no estimate for estimator={estimator!r} target={target!r} {labels}")

    # -- renderings -------------------------------------------------------
    def _extra_dict(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        from causalrec import __version__

        d = {
            "causalrec_version": __version__,
            "command": self.command,
            "n_rows": int(self.n_rows),
            "estimates": [e.to_dict() for e in self.estimates],
            "diagnostics": jsonable(self.diagnostics),
            "warnings": list(self.warnings),
            "config": jsonable(self.config),
        }
        d.update(jsonable(self._extra_dict()))
        return d

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_frame(self) -> pd.DataFrame:
        rows = [e.to_dict() for e in self.estimates]
        cols = ["estimator", "target", "estimate", "se", "ci_low", "ci_high", "ci_level"]
        df = pd.DataFrame(rows)
        if df.empty:
            return pd.DataFrame(columns=cols)
        front = [c for c in cols if c in df.columns]
        return df[front + [c for c in df.columns if c not in front]]

    def summary(self) -> str:
        """A plain-text table of estimates, diagnostics and warnings."""
        lines = [f"{self.title}  (n_rows={self.n_rows:,})"]
        frame = self.to_frame()
        if not frame.empty:
            show = frame.drop(columns=[c for c in ("ci_level",) if c in frame.columns])
            lines.append(show.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
        if self.diagnostics:
            lines.append("diagnostics: " + ", ".join(
                f"{k}={_fmt(v)}" for k, v in self.diagnostics.items() if not isinstance(v, (dict, list))
            ))
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        parts = [f"<h4>{html.escape(self.title)}</h4>", f"<p>n_rows = {self.n_rows:,}</p>"]
        if not frame.empty:
            parts.append(frame.to_html(index=False, float_format=lambda v: f"{v:.6g}", escape=True))
        if self.warnings:
            parts.append("<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings) + "</ul>")
        return "\n".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
