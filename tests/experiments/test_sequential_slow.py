"""Sequential designs and quantile metrics by simulation (slow; run by `make bench`).

Runs ``analyses/ab_sequential.py`` (the report it writes is ``reports/ab_sequential.md``)
and asserts its targets: under continuous monitoring with 20 looks the A/A
false-positive rate is <= 5% for the confidence sequence and within 5% +/- 1.5% for
the group-sequential tests (O'Brien-Fleming and Pocock spending), while naive peeking
is far above 5%; the sequential designs keep power against a real effect; quantile
intervals cover 93-97% (i.i.d. users and sessions clustered by user).
"""

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def load():
    spec = importlib.util.spec_from_file_location("ab_sequential", ROOT / "analyses" / "ab_sequential.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ab_sequential"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def study():
    mod = load()
    res = mod.run(sims=2000, power_sims=1000, quantile_sims=1000)
    mod.write_report(res)
    return res


def rate(table, prefix):
    rows = table[table["method"].str.startswith(prefix)]
    return dict(zip(rows["method"], rows["rate"], strict=True))


def test_monitoring_false_positive_rates(study):
    aa = study["aa"]
    print(aa.to_string())
    for name, r in rate(aa, "group-sequential").items():
        assert 0.035 <= r <= 0.065, (name, r)
    assert rate(aa, "confidence sequence")["confidence sequence"] <= 0.05
    assert rate(aa, "mSPRT")["mSPRT"] <= 0.05 + 0.01
    assert rate(aa, "naive")[next(iter(rate(aa, "naive")))] > 0.15
    assert 0.035 <= rate(aa, "fixed")[next(iter(rate(aa, "fixed")))] <= 0.065


def test_power_of_sequential_designs(study):
    pw = study["power"].set_index("method")
    print(pw.to_string())
    fixed = pw.loc["fixed horizon, last look only", "rate"]
    assert 0.7 <= fixed <= 0.9
    obf = pw.loc["group-sequential, obf spending", "rate"]
    assert obf >= fixed - 0.05  # O'Brien-Fleming keeps nearly all of the fixed-horizon power
    for name in pw.index:
        if name.startswith(("group-sequential", "confidence", "mSPRT")):
            assert pw.loc[name, "mean_units_at_stop"] < pw.loc["fixed horizon, last look only", "mean_units_at_stop"]


def test_quantile_coverage(study):
    cov = study["coverage"]
    print(cov.to_string())
    valid = cov[cov["design"] != "sessions, naive per row"]
    for _, row in valid.iterrows():
        if row["quantile"] < 0.99:
            assert 0.93 <= row["coverage"] <= 0.97, row.to_dict()
    naive = cov[cov["design"] == "sessions, naive per row"]
    assert (naive["coverage"] < 0.9).all()
