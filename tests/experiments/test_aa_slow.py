"""Validation by simulation (slow; run by `make bench`).

A/A: with no effect, the share of experiments whose primary p-value is below
0.05 must be 5% +/- 1.5% for a mean metric (Welch), a CUPED-adjusted mean
and a ratio metric computed from impression logs aggregated to the user
(delta method). 2,000 experiments: the Monte-Carlo SE of a 5% rate is 0.49%.

Known lift: with a true +5% relative lift the 95% intervals of the relative
lift must cover it in 93-97% of 1,000 experiments (Monte-Carlo SE 0.69%).
"""

import numpy as np
import pytest

from causalrec.experiments import analyze, simulate_experiment

pytestmark = pytest.mark.slow


def _run(n_sims, lift, seed0):
    from tqdm import tqdm

    rows = []
    for i in tqdm(range(n_sims), desc=f"A/B simulations (lift {lift})", mininterval=5):
        users = simulate_experiment(800, lift=[0.0, lift], seed=seed0 + i)
        r = analyze(users, variant="variant", metrics=["revenue"], covariates=["pre_revenue"], planning=False)
        sess = simulate_experiment(800, click_lift=[0.0, lift], seed=10_000_000 + seed0 + i, impressions=True)
        q = analyze(sess, variant="variant", metrics=["clicks"], unit="user_id", planning=False)
        row = {}
        for name, res, est, metric in (("welch", r, "welch", "revenue"), ("cuped", r, "cuped", "revenue"),
                                       ("delta", q, "delta", "clicks")):
            d = res.get(est, "diff", metric=metric)
            lf = res.get(est, "lift", metric=metric)
            row[f"{name}_p"] = d.p_value
            row[f"{name}_cover"] = lf.ci_low <= lift <= lf.ci_high
        # naive per-impression test for contrast (ignores the user clustering)
        row["naive_p"] = analyze(sess, variant="variant", metrics=["clicks"], planning=False).get("proportion", "diff").p_value
        rows.append(row)
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def test_aa_false_positive_rate():
    res = _run(2000, 0.0, seed0=1000)
    fpr = {k: float(np.mean(res[f"{k}_p"] < 0.05)) for k in ("welch", "cuped", "delta", "naive")}
    print("A/A false-positive rates at alpha=0.05 over 2000 experiments:", fpr)
    for k in ("welch", "cuped", "delta"):
        assert 0.035 <= fpr[k] <= 0.065, (k, fpr[k])


def test_known_lift_coverage():
    res = _run(1000, 0.05, seed0=50_000)
    cover = {k: float(np.mean(res[f"{k}_cover"])) for k in ("welch", "cuped", "delta")}
    print("coverage of a +5% relative lift by 95% lift CIs over 1000 experiments:", cover)
    for k, c in cover.items():
        assert 0.93 <= c <= 0.97, (k, c)
