"""Outcome models (sklearn, cross-fitted), warnings, and the shipped data sample."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.errors import InputError
from causalrec.ope import evaluate
from causalrec.ope.synthetic import make_bandit_logs

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data_samples" / "ope"


@pytest.fixture(scope="module")
def sb():
    return make_bandit_logs(3000, n_items=6, n_positions=2, n_segments=3, seed=8)


def test_sklearn_outcome_models_with_covariates(sb):
    from sklearn.linear_model import LogisticRegression, Ridge

    logs = sb.logs.assign(seg1=(sb.logs["segment"] == 1) * 1.0, seg2=(sb.logs["segment"] == 2) * 1.0)
    sch = LogSchema(outcome="click", covariates=("seg1", "seg2"))
    t = sb.targets["greedy_mix"]
    ridge = evaluate(logs, t, schema=sch, estimators=("dm", "dr", "sndr"), outcome_model=Ridge(alpha=1.0))
    logit = evaluate(logs, t, schema=sch, estimators=("dm", "dr"), outcome_model=LogisticRegression(C=1.0))
    cells = evaluate(logs, t, schema=sch, estimators=("dm", "dr"))
    assert ridge.outcome_model["outcome_model"] == "Ridge" and ridge.outcome_model["covariates"] == ["seg1", "seg2"]
    for r in (ridge, logit, cells):
        assert abs(r.get("dr").estimate - sb.truth["greedy_mix"]) < 4 * r.get("dr").se
    # DR barely depends on the outcome model; DM does
    assert abs(ridge.get("dr").estimate - cells.get("dr").estimate) < 0.5 * cells.get("dr").se
    with pytest.raises(InputError, match="0/1 outcome"):
        evaluate(logs.assign(click=logs["click"] * 2.5), t, schema=sch, estimators=("dr",),
                 outcome_model=LogisticRegression())


def test_sklearn_cross_fitting_uses_other_folds(sb):
    # a 1-nearest-neighbour regressor memorises its training rows: without cross-fitting
    # q(logged) = y exactly and the DR correction would vanish
    from sklearn.neighbors import KNeighborsRegressor

    logs = sb.logs.assign(noise=np.random.default_rng(0).normal(size=len(sb.logs)))
    sch = LogSchema(outcome="click", covariates=("noise",))
    r = evaluate(logs, sb.targets["uniform"], schema=sch, estimators=("dm", "dr"),
                 outcome_model=KNeighborsRegressor(n_neighbors=1))
    r1 = evaluate(logs, sb.targets["uniform"], schema=sch, estimators=("dm", "dr"),
                  outcome_model=KNeighborsRegressor(n_neighbors=1), n_folds=1)
    assert r1.get("dr").estimate == pytest.approx(r1.get("dm").estimate, abs=1e-12)  # own-observation fit
    assert r.get("dr").estimate != pytest.approx(r.get("dm").estimate, abs=1e-6)


def test_low_ess_and_mean_weight_warnings(sb):
    logs = sb.logs
    rare = int(pd.Series(logs["item_id"]).value_counts().idxmin())
    t = pd.DataFrame({"item_id": range(6), "prob": [1.0 if i == rare else 0.0 for i in range(6)]})
    tiny = logs.assign(propensity=np.where(logs["item_id"] == rare, 1e-4, logs["propensity"]))
    r = evaluate(tiny, t, schema=LogSchema(outcome="click"), estimators=("ips", "snips"))
    assert r.diagnostics["weight_mean"] > 100
    assert any("mean importance weight" in w for w in r.warnings)
    r2 = evaluate(logs, sb.targets["uniform"], schema=LogSchema(outcome="click"), estimators=("ips",), clip=0.5)
    assert any("clipped" in w for w in r2.warnings)


def test_ess_warning_below_one_percent():
    n = 2000
    w_item = np.r_[np.zeros(n - 5, dtype=int), np.ones(5, dtype=int)]
    logs = pd.DataFrame({"item_id": w_item, "outcome": 1.0,
                         "propensity": np.r_[np.full(n - 5, 0.999), np.full(5, 0.001)]})
    t = pd.DataFrame({"item_id": [0, 1], "prob": [0.5, 0.5]})
    r = evaluate(logs, t, schema=LogSchema(position=None), estimators=("ips",))
    assert r.diagnostics["ess_ratio"] < 0.01
    assert any("effective sample size" in w for w in r.warnings)


def test_data_sample_is_reproducible_and_covered(tmp_path):
    truth = json.loads((SAMPLE / "truth.json").read_text())
    spec = importlib.util.spec_from_file_location("make_ope_sample", ROOT / "analyses" / "make_ope_sample.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--out", str(tmp_path)])
    for f in ("logs.csv", "target_greedy_mix.csv", "target_uniform.csv", "truth.json"):
        assert (tmp_path / f).read_bytes() == (SAMPLE / f).read_bytes(), f
    assert (SAMPLE / "logs.csv").stat().st_size < 400_000
    sch = LogSchema(outcome="click", position_base=1)
    for name in ("greedy_mix", "uniform"):
        r = evaluate(SAMPLE / "logs.csv", SAMPLE / f"target_{name}.csv", schema=sch, estimators=("ips", "dr"))
        v = truth["policy_value"][name]
        for e in r.estimates:
            assert e.ci_low - e.se < v < e.ci_high + e.se, (name, e)
