"""Command-line interface: ``causalrec COMMAND ...``.

Each command lives in its own module and imports heavy libraries (torch,
econml, dowhy, transformers) inside the command body, so ``causalrec ope`` and
``causalrec ab`` start in about a second.

Exit codes: 0 success; 2 bad input (the message names the column/file and the
fix); 1 internal error.
"""

from __future__ import annotations

import importlib
import os
import sys

from causalrec.cli.app import app

# Registration order is the order in `causalrec --help`.
COMMAND_MODULES = ("simulate", "ope", "uplift", "debias", "rank", "ab", "demo")

for _mod in COMMAND_MODULES:
    importlib.import_module(f"causalrec.cli.{_mod}")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point with causalrec's exit-code convention."""
    import typer

    from causalrec.errors import CausalrecError, InputError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        app(args=argv, standalone_mode=False)
    except InputError as exc:
        typer.echo(f"causalrec: error: {exc}", err=True)
        return 2
    except CausalrecError as exc:
        typer.echo(f"causalrec: error: {exc}", err=True)
        return 2
    except SystemExit as exc:  # typer/click exit paths
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        typer.echo("causalrec: interrupted", err=True)
        return 130
    except Exception as exc:  # click usage errors carry their own exit code (2)
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        import traceback

        traceback.print_exc()
        typer.echo(f"causalrec: internal error: {type(exc).__name__}: {exc}", err=True)
        return 1
    return 0


def _entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _entry()
