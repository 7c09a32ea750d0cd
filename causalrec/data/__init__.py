"""Data contract: column roles, validation at the boundary, readers and datasets.

Everything above this layer receives already-validated, canonically named data.
"""

from causalrec.data.atomic import atomic_write_bytes, atomic_write_text
from causalrec.data.readers import iter_batches, read_table
from causalrec.data.schema import ROLES, LogSchema
from causalrec.data.validation import validate_log, validate_target_policy

__all__ = [
    "LogSchema", "ROLES", "read_table", "iter_batches", "validate_log",
    "validate_target_policy", "atomic_write_bytes", "atomic_write_text",
]
