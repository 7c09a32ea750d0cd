"""A/B experiment evaluation for recommender changes.

``analyze`` runs the whole analysis (unit aggregation, SRM check, Welch /
proportion / delta-method estimates with relative lifts, CUPED and CUPAC
variance reduction, Holm and Benjamini-Hochberg correction, segments, power
and MDE, optional always-valid p-values) and returns an :class:`ABResult`.
``compare_with_ope`` sets an off-policy prediction beside the experiment.

Only numpy, scipy and (for corrections and power) statsmodels are imported
on the plain path; the text embedder for CUPAC and the OPE estimators load
when used (``causalrec.ope`` inside ``compare_with_ope``). statsmodels' weightstats is not used at run time: Welch's test is
written out in ``estimators`` (and checked against statsmodels to 1e-8).
"""

from causalrec.experiments.analyze import Metric, analyze, parse_ratio
from causalrec.experiments.cupac import CUPAC
from causalrec.experiments.cuped import cuped_mean, cuped_ratio, fit_theta
from causalrec.experiments.estimators import Comparison, proportion, ratio, welch
from causalrec.experiments.offline import OPEComparison, compare_with_ope
from causalrec.experiments.power import achieved_power, mde, sample_size
from causalrec.experiments.result import ABResult
from causalrec.experiments.sequential import msprt
from causalrec.experiments.srm import SRMResult, parse_split, srm_test
from causalrec.experiments.synthetic import simulate_experiment

__all__ = [
    "analyze", "ABResult", "CUPAC", "Metric", "parse_ratio", "Comparison", "welch", "proportion", "ratio",
    "cuped_mean", "cuped_ratio", "fit_theta", "srm_test", "parse_split", "SRMResult", "mde", "sample_size",
    "achieved_power", "msprt", "simulate_experiment", "compare_with_ope", "OPEComparison",
]

