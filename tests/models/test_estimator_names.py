"""OPE estimator names are instance properties: two IPS with different clips stay distinct."""

import numpy as np
import pytest

from causalrec.data import LogSchema
from causalrec.errors import InputError
from causalrec.ope import evaluate
from causalrec.ope.estimators import DR, IPS, SNIPS, run_names
from causalrec.ope.synthetic import make_bandit_logs


def test_labels_derive_from_parameters():
    assert IPS().label == "ips" and IPS(clip=10.0).label == "ips(clip=10)"
    assert IPS(clip=10.0, alias="ips_capped").label == "ips_capped"
    assert run_names([IPS(), SNIPS(clip=5.0), DR()]) == ["ips", "snips", "dr"]  # unique: plain names
    assert run_names([IPS(clip=10.0), IPS(clip=100.0), IPS()]) == ["ips(clip=10)", "ips(clip=100)", "ips"]
    with pytest.raises(InputError, match="twice"):
        run_names([IPS(clip=10.0), IPS(clip=10.0)])


def test_two_ips_in_one_run_stay_distinct():
    sb = make_bandit_logs(2000, n_items=5, n_positions=2, n_segments=2, seed=3)
    t = sb.targets["greedy_mix"]
    sch = LogSchema(outcome="click")
    r = evaluate(sb.logs, t, schema=sch, estimators=[IPS(clip=2.0), IPS(clip=50.0), "snips"])
    names = [e.estimator for e in r.estimates]
    assert names == ["ips(clip=2)", "ips(clip=50)", "snips"]
    d = r.to_dict()
    assert d["config"]["estimators"] == names
    assert d["config"]["estimator_params"]["ips(clip=2)"] == {"clip": 2.0}
    low, high = r.get("ips(clip=2)"), r.get("ips(clip=50)")
    # a tighter cap gives a different number (here the cap binds on some rows)
    single = evaluate(sb.logs, t, schema=sch, estimators=[IPS(clip=2.0)])
    assert low.estimate == pytest.approx(single.get("ips").estimate)
    assert np.isfinite(high.estimate) and low.estimate != high.estimate
