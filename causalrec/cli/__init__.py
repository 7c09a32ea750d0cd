"""Command-line interface: ``causalrec COMMAND ...``.

Each command lives in its own module and imports heavy libraries (torch,
econml, dowhy, transformers) inside the command body, so ``causalrec ope`` and
``causalrec ab`` start in about a second.

Exit codes: 0 success; 2 bad input (the message names the column/file and the
fix); 1 internal error.
"""

from __future__ import annotations

import importlib

from causalrec.cli.app import _entry, app, main  # noqa: F401  (main: the entry point)

# Registration order is the order in `causalrec --help`.
COMMAND_MODULES = ("simulate", "ope", "uplift", "debias", "rank", "ab", "demo")

for _mod in COMMAND_MODULES:
    importlib.import_module(f"causalrec.cli.{_mod}")


if __name__ == "__main__":  # pragma: no cover
    _entry()
