"""A/B experiment evaluation for recommender changes.

``analyze`` runs the whole analysis from row-level logs (unit aggregation, SRM
check, Welch / proportion / delta-method / quantile estimates with relative lifts
by the delta method or Fieller, CUPED / CUPAC / Lin / post-stratification,
capping, corrections, segments, power and MDE, and sequential analysis:
confidence sequences, group-sequential boundaries, mSPRT) and returns an
:class:`ABResult`; ``analyze_stats`` does the same from sufficient statistics (a
warehouse query's output), through the same finishing code. ``compare_with_ope``
sets an off-policy prediction beside the experiment.

Only numpy and scipy.special load with this package; scipy.optimize (group-
sequential boundaries), statsmodels (corrections over several p-values, power),
scikit-learn and the text embedder (CUPAC) and the OPE estimators
(``compare_with_ope``) load when used.
"""

from causalrec.experiments.analyze import analyze, analyze_stats, parse_ratio
from causalrec.experiments.cupac import CUPAC
from causalrec.experiments.cuped import (
    compare_cuped,
    compare_lin,
    cuped_mean,
    cuped_ratio,
    fit_theta,
    lin_mean,
)
from causalrec.experiments.estimators import Comparison, Metric, proportion, ratio, welch
from causalrec.experiments.groupseq import GroupSequentialDesign, boundaries, spending
from causalrec.experiments.offline import OPEComparison, compare_with_ope
from causalrec.experiments.power import achieved_power, mde, sample_size
from causalrec.experiments.quantile import compare_quantile
from causalrec.experiments.result import ABResult
from causalrec.experiments.sequential import confidence_sequence, msprt
from causalrec.experiments.srm import SRMResult, parse_split, srm_test
from causalrec.experiments.stats import ABStats, SuffStats
from causalrec.experiments.synthetic import simulate_experiment

__all__ = [
    "analyze", "analyze_stats", "ABResult", "ABStats", "SuffStats", "CUPAC", "Metric", "parse_ratio", "Comparison",
    "welch", "proportion", "ratio", "cuped_mean", "cuped_ratio", "lin_mean", "compare_cuped", "compare_lin",
    "fit_theta", "compare_quantile", "srm_test", "parse_split", "SRMResult", "mde", "sample_size", "achieved_power",
    "msprt", "confidence_sequence", "boundaries", "spending", "GroupSequentialDesign", "simulate_experiment",
    "compare_with_ope", "OPEComparison",
]
