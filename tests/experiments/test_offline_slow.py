"""compare_with_ope by simulation (slow; run by `make bench`): when OPE is right, the agreement
test rejects at its level only if the OPE side is clustered by the experiment's unit.

Users see 15 impressions each and share a click propensity across them; the control arm is
logged by a uniform policy, the treatment arm runs the target policy, so the off-policy
prediction is unbiased for what the experiment measures. 1,000 replications (Monte-Carlo SE
of a 5% rate: 0.7%).
"""

import numpy as np
import pandas as pd
import pytest

from causalrec.data.schema import LogSchema
from causalrec.experiments import analyze, compare_with_ope

pytestmark = pytest.mark.slow
CTR = np.array([0.05, 0.10, 0.20])
TARGET = [0.1, 0.2, 0.7]


def _logs(probs, offset, seed, n_users=600, per=15):
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(n_users), per)
    lift = np.repeat(rng.normal(0, 0.15, n_users), per)
    item = rng.choice(3, size=len(user), p=probs)
    click = rng.random(len(user)) < np.clip(CTR[item] + lift, 0, 1)
    return pd.DataFrame({"item_id": item, "outcome": click.astype(int), "propensity": np.asarray(probs)[item],
                         "user": user + offset})


def test_agreement_test_has_its_level_when_clustered():
    table = pd.DataFrame({"item_id": [0, 1, 2], "prob": TARGET})
    schema = LogSchema(position=None, user_id=None)
    reject = {"clustered by user": [], "per impression": []}
    for i in range(1000):
        control, treatment = _logs([1 / 3] * 3, 0, 2 * i), _logs(TARGET, 10**6, 2 * i + 1)
        both = pd.concat([control.assign(arm="control"), treatment.assign(arm="new")], ignore_index=True)
        ab = analyze(both, variant="arm", metrics=["outcome"], unit="user", planning=False)
        for name, kw in (("clustered by user", {}), ("per impression", {"ope_kwargs": {"cluster": None}})):
            cmp = compare_with_ope(control, table, ab, schema=schema, estimators=("snips",), **kw)
            reject[name].append(not bool(cmp.agreement["agree"].iloc[0]))
    rates = {k: float(np.mean(v)) for k, v in reject.items()}
    print("agreement-test rejection rate when OPE is right:", rates)
    assert 0.03 <= rates["clustered by user"] <= 0.07
    assert rates["per impression"] > rates["clustered by user"] + 0.02
