"""``LogSchema``: which of the user's columns plays which canonical role.

A log has one row per impression. The canonical role names (DESIGN.md section 3)
are the attribute names below; their values are the user's column names.
``schema.canonical(df)`` returns a *new* frame with canonical names, so every
layer above works with one vocabulary and the caller's frame is never touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd

from causalrec.errors import InputError

ROLES = (
    "user_id", "item_id", "outcome", "propensity", "position", "treatment",
    "request_id", "timestamp", "item_text", "user_text",
)


@dataclass(frozen=True)
class LogSchema:
    """Mapping from canonical roles to the user's column names.

    Attributes name the user's columns; ``None`` means "not present".
    ``position_base`` declares whether positions are 0- or 1-based;
    ``n_positions`` optionally declares how many slots a list has (positions
    outside ``[base, base + n_positions)`` are rejected). ``covariates`` are
    extra context columns used by nuisance models.
    """

    user_id: str | None = "user_id"
    item_id: str | None = "item_id"
    outcome: str | None = "outcome"
    propensity: str | None = "propensity"
    position: str | None = "position"
    treatment: str | None = "treatment"
    request_id: str | None = "request_id"
    timestamp: str | None = "timestamp"
    item_text: str | None = "item_text"
    user_text: str | None = "user_text"
    covariates: tuple[str, ...] = field(default_factory=tuple)
    position_base: int = 0
    n_positions: int | None = None

    def __post_init__(self) -> None:
        if self.position_base not in (0, 1):
            raise InputError(
                f"position_base must be 0 or 1, got {self.position_base}",
                fix="declare whether positions count from 0 or from 1",
            )
        object.__setattr__(self, "covariates", tuple(self.covariates or ()))

    def with_(self, **changes: Any) -> LogSchema:
        """A copy with some roles renamed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def column(self, role: str) -> str | None:
        if role not in ROLES:
            raise KeyError(f"unknown role {role!r}; roles are {ROLES}")
        return getattr(self, role)

    def present(self, df: pd.DataFrame) -> dict[str, str]:
        """Roles whose column exists in ``df``: ``{role: user_column}``."""
        return {r: c for r in ROLES if (c := getattr(self, r)) is not None and c in df.columns}

    def require(self, df: pd.DataFrame, roles: tuple[str, ...] | list[str], *, command: str = "") -> None:
        """Raise ``InputError`` naming the first required role whose column is missing."""
        where = f" (needed by {command})" if command else ""
        for role in roles:
            col = getattr(self, role)
            if col is None:
                raise InputError(
                    f"the '{role}' role is not mapped to any column{where}",
                    fix=f"name the column that holds {role}, e.g. --{role.replace('_id', '').replace('_', '-')} COL",
                )
            if col not in df.columns:
                raise InputError(
                    f"column '{col}' (role '{role}') is missing{where}; columns present: "
                    f"{_preview(df.columns)}",
                    column=col,
                    fix=f"pass the name of the {role} column, or rename your column to '{col}'",
                )
        for cov in self.covariates:
            if cov not in df.columns:
                raise InputError(
                    f"covariate column '{cov}' is missing; columns present: {_preview(df.columns)}",
                    column=cov,
                    fix="remove it from --covariates or add it to the log",
                )

    def canonical(self, df: pd.DataFrame) -> pd.DataFrame:
        """A new frame: mapped columns renamed to their role names, covariates kept as is.

        Columns that map to no role and are not covariates are dropped, so
        a user column that happens to be called ``outcome`` cannot shadow the
        mapped one.
        """
        present = self.present(df)
        out = pd.DataFrame(index=df.index)
        for role, col in present.items():
            out[role] = df[col]
        for cov in self.covariates:
            if cov in df.columns and cov not in out.columns:
                out[cov] = df[cov]
        if "position" in out.columns and self.position_base == 1:
            out["position"] = out["position"] - 1
        return out.reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["covariates"] = list(self.covariates)
        return d


def _preview(cols: Any, k: int = 12) -> str:
    cols = [str(c) for c in cols]
    more = f", ... (+{len(cols) - k})" if len(cols) > k else ""
    return ", ".join(cols[:k]) + more
