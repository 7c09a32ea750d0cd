"""Debiased training sets: exposure weights, position-bias estimates, corrected labels.

``debias(logs, schema=..., method="ips"|"snips"|"dr")`` returns a
:class:`DebiasResult` whose ``frame`` is the input rows plus ``weight``,
``corrected_label`` and provenance columns. The pieces are usable alone:
:func:`exposure_weights`, :func:`examination_from_randomized`,
:func:`regression_em`, :func:`harvest_interventions`, :func:`identification_check`, :func:`ips_labels`, :func:`dr_labels`.
"""

from causalrec.debias.correct import DebiasResult, debias, estimate_propensity
from causalrec.debias.labels import dr_labels, ips_labels, pairwise_weights
from causalrec.debias.position import (
    PositionBias,
    examination_from_randomized,
    harvest_interventions,
    identification_check,
    position_bias_from_curve,
    regression_em,
)
from causalrec.debias.weights import ExposureWeights, empirical_propensity, exposure_weights

__all__ = [
    "DebiasResult", "ExposureWeights", "PositionBias", "debias", "dr_labels", "empirical_propensity",
    "estimate_propensity", "examination_from_randomized", "exposure_weights", "harvest_interventions",
    "identification_check", "ips_labels",
    "pairwise_weights", "position_bias_from_curve", "regression_em",
]
