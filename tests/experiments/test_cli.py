"""``causalrec ab``: exit codes, JSON and report."""

import json
from pathlib import Path

import numpy as np
import pytest

from causalrec.cli import main
from causalrec.experiments import simulate_experiment

SAMPLE = Path(__file__).resolve().parents[2] / "data_samples" / "ab"


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("ab") / "exp.csv"
    simulate_experiment(1500, lift=[0, 0.05], seed=9).to_csv(p, index=False)
    return p


def test_cli_writes_json_and_report(csv, tmp_path):
    out, rep = tmp_path / "r.json", tmp_path / "r.html"
    code = main(["ab", str(csv), "--variant", "variant", "--metric", "revenue", "--metric", "converted",
                 "--ratio", "clicks/sessions", "--covariate", "pre_revenue", "--expected-split", "50/50",
                 "--segment", "platform", "--out", str(out), "--report", str(rep)])
    assert code == 0
    d = json.loads(out.read_text())
    assert d["command"] == "ab" and d["srm"]["mismatch"] is False
    assert d["srm"]["expected_split"] == {"control": 0.5, "treatment": 0.5}
    assert len([e for e in d["estimates"] if e["primary"] and e["target"] == "diff"]) == 3
    html = rep.read_text()
    assert html.index("Sample ratio mismatch") < html.index("Estimates") < html.index("Relative lift")
    assert "data:image/png;base64" in html


def test_cli_matches_statsmodels_welch(csv, tmp_path):
    import pandas as pd
    from statsmodels.stats.weightstats import ttest_ind

    out = tmp_path / "r.json"
    assert main(["ab", str(csv), "--variant", "variant", "--metric", "revenue", "--out", str(out)]) == 0
    e = next(x for x in json.loads(out.read_text())["estimates"] if x["estimator"] == "welch" and x["target"] == "diff")
    df = pd.read_csv(csv)
    t, p, dof = ttest_ind(df.loc[df.variant == "treatment", "revenue"], df.loc[df.variant == "control", "revenue"],
                          usevar="unequal")
    assert e["p_value"] == pytest.approx(p, abs=1e-8) and e["estimate"] / e["se"] == pytest.approx(t, abs=1e-8)
    assert e["df"] == pytest.approx(dof, abs=1e-8)


def test_cli_sample_srm_is_flagged(capsys):
    assert main(["ab", str(SAMPLE / "srm_experiment.csv"), "--variant", "variant", "--metric", "revenue"]) == 0
    assert capsys.readouterr().out.startswith("!!! SAMPLE RATIO MISMATCH")


def test_cli_unit_level_sessions(tmp_path):
    out = tmp_path / "r.json"
    assert main(["ab", str(SAMPLE / "sessions.csv"), "--variant", "variant", "--metric", "clicks",
                 "--unit", "user_id", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["n_units"] < d["n_rows"] and d["estimates"][0]["estimator"] == "delta"


@pytest.mark.parametrize("args, needle", [
    (["--metric", "revenue", "--expected-split", "30/30/40"], "3 weights"),
    (["--metric", "revenue", "--expected-split", "half/half"], "not a list of numbers"),
    (["--metric", "revenue", "--expected-split", "control=50/holdout=50"], "zero units"),
    (["--metric", "history"], "must be numeric"),
    (["--metric", "revenue", "--control", "holdout"], "zero units"),
    (["--metric", "nope"], "missing"),
    (["--ratio", "clicks"], "NUM/DEN"),
    ([], "no metric"),
])
def test_cli_bad_input_exit_2(csv, capsys, args, needle):
    assert main(["ab", str(csv), "--variant", "variant", *args]) == 2
    assert needle in capsys.readouterr().err


def test_cli_one_variant_and_missing_covariates(tmp_path, capsys):
    df = simulate_experiment(400, seed=1)
    one = tmp_path / "one.csv"
    df.assign(variant="control").to_csv(one, index=False)
    assert main(["ab", str(one), "--variant", "variant", "--metric", "revenue"]) == 2
    assert "only one variant" in capsys.readouterr().err
    holes = tmp_path / "holes.csv"
    df.assign(pre_revenue=np.where(np.arange(len(df)) % 7 == 0, np.nan, df["pre_revenue"])).to_csv(holes, index=False)
    out = tmp_path / "r.json"
    assert main(["ab", str(holes), "--variant", "variant", "--metric", "revenue", "--covariate", "pre_revenue",
                 "--out", str(out)]) == 0
    assert any("imputed" in w for w in json.loads(out.read_text())["warnings"])
    assert main(["ab", str(tmp_path / "absent.csv"), "--variant", "variant", "--metric", "revenue"]) == 2
