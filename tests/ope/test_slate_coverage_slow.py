"""Simulation study (slow): the slate estimators' 95% intervals cover the true value 93-97% of the time.

1,000 independent logs of 2,000 lists (3 slots, 6 items, 3 user segments) per world, from
:mod:`causalrec.ope.slate_synthetic`; intervals from the influence-function standard errors
clustered by request (the default). With 1,000 logs the Monte Carlo SE of a coverage rate
is 0.7 points, so 93-97% is about +/- 3 Monte Carlo SEs.

- product logging (slots filled independently) and independent clicks: every estimator's
  assumptions hold (pi's too);
- Plackett-Luce logging and cascade clicks: the assumptions of sips, rips and cascade_dr
  (and their self-normalised versions) hold.
"""

import numpy as np
import pytest

from causalrec.data import LogSchema
from causalrec.ope import evaluate
from causalrec.ope.slate_synthetic import make_slate_logs, make_world, true_value

N_LOGS = 1000
N_REQUESTS = 2000
ALL = ["sips", "snsips", "iips", "sniips", "rips", "snrips", "cascade_dr", "pi", "snpi"]


@pytest.mark.slow
@pytest.mark.parametrize("logging, reward, names", [
    ("independent", "independent", ALL),
    ("plackett-luce", "cascade", ["sips", "snsips", "rips", "snrips", "cascade_dr"]),
])
def test_interval_coverage_of_the_slate_estimators(logging, reward, names):
    world = make_world(6, 3, 3, logging=logging, reward=reward, world_seed=7)
    truth = true_value(world)
    hits = {k: 0 for k in names}
    widths = {k: [] for k in names}
    for rep in range(N_LOGS):
        sb = make_slate_logs(N_REQUESTS, world=world, truth=truth, seed=50_000 + rep)
        res = evaluate(sb.logs, sb.target_scores, schema=LogSchema(outcome="click"), target_kind="plackett-luce",
                       estimators=names, propensity_marginal="propensity_marginal", value_per="list")
        for e in res.estimates:
            hits[e.estimator] += e.ci_low <= truth[0] <= e.ci_high
            widths[e.estimator].append(e.ci_high - e.ci_low)
    coverage = {k: hits[k] / N_LOGS for k in names}
    print(logging, reward, "truth", truth, "coverage", coverage,
          "mean width", {k: round(float(np.mean(v)), 4) for k, v in widths.items()})
    for k in names:
        assert 0.93 <= coverage[k] <= 0.97, (k, coverage[k])
