"""Off-policy evaluation: the value of a target recommendation policy from logs of another.

>>> from causalrec.ope import evaluate
>>> res = evaluate(logs, target_table, estimators=("ips", "snips", "dr"))
>>> res.to_frame()

Modules: ``policy`` (target tables and callables), ``outcome`` (outcome models for
DM/DR, cross-fitted), ``estimators`` (DM, IPS, SNIPS, DR, SNDR, Switch-DR, DRos as small
dataclasses with their formulas), ``slate`` (ranked lists: SIPS, IIPS, RIPS, Cascade-DR,
PseudoInverse and their self-normalised versions; targets in ``slate_policy``, the pipeline in
``slate_eval``), ``mips`` (large catalogues: MIPS, SNMIPS, OffCEM weighting clusters of the item
text embeddings from ``catalogue``; simulator in ``catalogue_synthetic``), ``selection`` (SLOPE), ``weights`` (diagnostics), ``evaluation`` (``evaluate``, in memory
or streamed over Parquet batches), ``result`` (``OPEResult``).
"""

from causalrec.ope.estimators import (
    DM,
    DR,
    ESTIMATORS,
    IPS,
    SNDR,
    SNIPS,
    DRos,
    Moments,
    OPEArrays,
    OPEEstimator,
    SwitchDR,
    make_estimators,
)
from causalrec.ope.evaluation import DEFAULT_ESTIMATORS, evaluate
from causalrec.ope.mips import MIPS, SNMIPS, OffCEM  # registers them
from causalrec.ope.outcome import CellMeanOutcome, FixedOutcome, SklearnOutcome
from causalrec.ope.result import OPEResult
from causalrec.ope.slate import (  # registers them
    IIPS,
    PI,
    RIPS,
    SIPS,
    SNIIPS,
    SNPI,
    SNRIPS,
    SNSIPS,
    CascadeDR,
)

__all__ = [
    "evaluate", "OPEResult", "DEFAULT_ESTIMATORS", "ESTIMATORS", "make_estimators",
    "OPEEstimator", "OPEArrays", "Moments", "DM", "IPS", "SNIPS", "DR", "SNDR", "SwitchDR", "DRos",
    "CellMeanOutcome", "SklearnOutcome", "FixedOutcome",
    "MIPS", "SNMIPS", "OffCEM",
    "SIPS", "SNSIPS", "IIPS", "SNIIPS", "RIPS", "SNRIPS", "CascadeDR", "PI", "SNPI",
]
