"""Checks that run while the command line is parsed, before any file is read or model fitted.

Option callbacks (``typer.Option(..., callback=unit_interval)``) and the
pre-flight check of column names against a file's header. They only call
:mod:`causalrec.data.validation` (imported inside, so ``--help`` loads no
numpy/pandas), and a bad value raises the same
:class:`~causalrec.errors.InputError` (exit 2, option named) as the library.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import typer


def unit_interval(param: typer.CallbackParam, value: float | None) -> float | None:
    """Callback: a level / size / power strictly in (0, 1) (``None`` passes)."""
    if value is None:
        return None
    from causalrec.data.validation import check_level  # numpy/pandas: not on the --help path

    name = max(param.opts, key=len) if param.opts else f"--{param.name}"
    default = param.default if isinstance(param.default, float) and 0 < param.default < 1 else 0.95
    return check_level(value, name, example=default)


def named_columns(source: Path | str, named: Mapping[str, str | None], what: str = "log") -> None:
    """Columns named by options must be in ``source`` (only its header is read)."""
    from causalrec.data.readers import column_names
    from causalrec.data.validation import check_columns_named

    if any(c is not None for c in named.values()):
        check_columns_named(column_names(source), named, what=what)
