"""causalrec: causal answers from recommendation logs.

Sub-packages load lazily so that ``import causalrec`` (and commands that need
neither torch nor econml) start fast. Layers, lowest first::

    data -> features -> models -> diagnostics / ope / uplift -> debias -> ranking,
    experiments -> report -> cli
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "data", "features", "models", "diagnostics", "ope", "uplift", "debias",
    "ranking", "experiments", "report", "simulate", "errors", "results", "inference",
}

__all__ = sorted(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"causalrec.{name}")
    raise AttributeError(f"module 'causalrec' has no attribute {name!r}")
