"""Exceptions raised by causalrec.

``InputError`` is the user's problem (bad file, column, value): the CLI maps it
to exit code 2 and prints only the message, which always names what is wrong
and how to fix it. Anything else is an internal error (exit code 1).
"""

from __future__ import annotations


class CausalrecError(Exception):
    """Base class of every exception causalrec raises on purpose."""


class InputError(CausalrecError, ValueError):
    """Bad input: a missing or malformed column, file or option.

    Parameters
    ----------
    message:
        What is wrong.
    column:
        The offending column (or file / option), if any; shown first.
    fix:
        One sentence telling the user what to do.
    """

    def __init__(self, message: str, *, column: str | None = None, fix: str | None = None):
        self.column = column
        self.fix = fix
        text = message
        if column is not None:
            is_option = column.startswith("-")
            named = f"'{column}'" in message or (is_option and column in message.split())
            if not named:
                # an option (--ci-level) is not a column: say which one it is
                text = f"{'option' if is_option else 'column'} '{column}': {message}"
        if fix:
            text = f"{text}\n  fix: {fix}"
        super().__init__(text)


class MissingDependencyError(CausalrecError, ImportError):
    """An optional heavy dependency is not installed."""

    def __init__(self, package: str, feature: str):
        super().__init__(
            f"{feature} needs the package '{package}', which is not installed.\n"
            f"  fix: pip install {package}   (or: pip install -e '.[dev]' in a causalrec checkout)"
        )


def require(module: str, feature: str):
    """Import ``module`` lazily, turning ImportError into an actionable message."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the dependency
        raise MissingDependencyError(module.split(".")[0], feature) from exc
