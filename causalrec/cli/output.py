"""What every command does with its result: print, write JSON, write the report.

Commands call :func:`emit`; it contains no statistics, only rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from causalrec.data.atomic import atomic_write_text


def parse_list(value: str | None) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]``; ``None``/empty -> ``[]``."""
    if not value:
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def emit(
    result: Any,
    out: Path | None = None,
    report: Path | None = None,
    build_report: Callable[[Any], Any] | None = None,
    quiet: bool = False,
) -> None:
    """Print ``result.summary()``; write ``result.to_json()`` to ``out`` and the
    report (HTML, or Markdown when the suffix is ``.md``) to ``report``."""
    if not quiet:
        typer.echo(result.summary())
    if out is not None:
        atomic_write_text(out, result.to_json() + "\n")
        typer.echo(f"wrote {out}", err=True)
    if report is not None:
        if build_report is None:
            raise RuntimeError("this command has no report builder")
        rep = build_report(result)
        rep.write(report)
        typer.echo(f"wrote {report}", err=True)
