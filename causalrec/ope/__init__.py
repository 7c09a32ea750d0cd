"""Off-policy evaluation: the value of a target recommendation policy from logs of another.

>>> from causalrec.ope import evaluate
>>> res = evaluate(logs, target_table, estimators=("ips", "snips", "dr"))
>>> res.to_frame()

Modules: ``policy`` (target tables and callables), ``outcome`` (outcome models for
DM/DR, cross-fitted), ``estimators`` (DM, IPS, SNIPS, DR, SNDR, Switch-DR, DRos as small
dataclasses with their formulas), ``weights`` (diagnostics), ``evaluation`` (``evaluate``, in memory
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
from causalrec.ope.outcome import CellMeanOutcome, FixedOutcome, SklearnOutcome
from causalrec.ope.result import OPEResult

__all__ = [
    "evaluate", "OPEResult", "DEFAULT_ESTIMATORS", "ESTIMATORS", "make_estimators",
    "OPEEstimator", "OPEArrays", "Moments", "DM", "IPS", "SNIPS", "DR", "SNDR", "SwitchDR", "DRos",
    "CellMeanOutcome", "SklearnOutcome", "FixedOutcome",
]
