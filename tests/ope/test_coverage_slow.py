"""Simulation study (slow): 95% intervals cover the true policy value about 95% of the time.

1,000 independent logs of 4,000 impressions from one synthetic world with known value
(moderate weights, max about 3). With 1,000 logs the Monte Carlo SE of a coverage rate is
0.7 points, so the 93-97% band is about +/- 3 Monte Carlo SEs.
"""

import numpy as np
import pytest

from causalrec.data import LogSchema
from causalrec.ope import evaluate
from causalrec.ope.synthetic import make_bandit_logs

N_LOGS = 1000
N_ROWS = 4000


@pytest.mark.slow
def test_interval_coverage_of_ips_snips_dr():
    names = ("ips", "snips", "dr")
    hits = {k: 0 for k in names}
    widths = {k: [] for k in names}
    truth = None
    for rep in range(N_LOGS):
        sb = make_bandit_logs(N_ROWS, n_items=10, n_positions=3, n_segments=4, world_seed=7, seed=10_000 + rep,
                              shared_context=False)
        truth = sb.truth["greedy_mix"]
        r = evaluate(sb.logs, sb.targets["greedy_mix"], schema=LogSchema(outcome="click"), estimators=names)
        for k in names:
            e = r.get(k)
            hits[k] += e.ci_low <= truth <= e.ci_high
            widths[k].append(e.ci_high - e.ci_low)
    coverage = {k: hits[k] / N_LOGS for k in names}
    print("coverage", coverage, "truth", truth, {k: float(np.mean(v)) for k, v in widths.items()})
    for k in names:
        assert 0.93 <= coverage[k] <= 0.97, (k, coverage[k])
