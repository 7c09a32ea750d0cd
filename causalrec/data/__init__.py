"""Data contract: column roles, validation at the boundary, readers and datasets.

Everything above this layer receives already-validated, canonically named data.

The names below load on first use (PEP 562), so importing one light submodule
(``causalrec.data.atomic``, which the CLI needs to write files) does not import
pandas and pyarrow: ``causalrec ope --help`` starts without them.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "atomic_write_bytes": "atomic", "atomic_write_text": "atomic",
    "iter_batches": "readers", "read_table": "readers",
    "ROLES": "schema", "LogSchema": "schema",
    "validate_log": "validation", "validate_target_policy": "validation",
}

__all__ = [
    "LogSchema", "ROLES", "read_table", "iter_batches", "validate_log",
    "validate_target_policy", "atomic_write_bytes", "atomic_write_text",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"causalrec.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'causalrec.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
