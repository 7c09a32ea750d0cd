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


def test_cli_stats_round_trip_equals_logs(csv, tmp_path):
    import pandas as pd

    stats, a, b = tmp_path / "s.csv", tmp_path / "a.json", tmp_path / "b.json"
    args = ["--variant", "variant", "--metric", "revenue", "--ratio", "clicks/sessions", "--covariate", "pre_revenue"]
    assert main(["ab", str(csv), *args, "--write-stats", str(stats), "--out", str(a)]) == 0
    table = pd.read_csv(stats)
    assert {"n", "revenue_sum", "revenue_sum_sq", "pre_revenue_sum", "revenue_x_pre_revenue_sum",
            "clicks_x_sessions_sum"} <= set(table.columns) and len(table) == 2
    assert main(["ab", "--stats", str(stats), *args, "--out", str(b)]) == 0
    ea, eb = json.loads(a.read_text())["estimates"], json.loads(b.read_text())["estimates"]
    assert len(ea) == len(eb)
    for x, y in zip(ea, eb, strict=True):
        for k in ("estimate", "se", "ci_low", "ci_high", "p_value"):
            assert x[k] == pytest.approx(y[k], abs=1e-10)


def test_cli_sequential_report(tmp_path):
    out, rep = tmp_path / "r.json", tmp_path / "r.html"
    assert main(["ab", str(SAMPLE / "sessions.csv"), "--variant", "variant", "--metric", "clicks", "--unit", "user_id",
                 "--quantile", "revenue:p90", "--timestamp", "day", "--looks", "7", "--spending", "pocock",
                 "--out", str(out), "--report", str(rep)]) == 0
    d = json.loads(out.read_text())
    assert {e["estimator"] for e in d["estimates"]} >= {"delta", "quantile", "cs", "gst", "msprt"}
    assert len([r for r in d["sequential"] if r["metric"] == "clicks"]) == 7
    html = rep.read_text()
    assert "Sequential analysis" in html and "Boundary and path" in html and "pocock" in html


@pytest.mark.parametrize("make, args, needle", [
    (lambda t: t.assign(n=-t["n"]), [], "non-negative"),
    (lambda t: t.assign(revenue_sum_sq=0.0), [], "revenue_sum_sq"),
    (lambda t: t, ["--quantile", "revenue:0.5"], "needs row-level logs"),
])
def test_cli_bad_stats_exit_2(csv, tmp_path, capsys, make, args, needle):
    import pandas as pd

    stats = tmp_path / "s.csv"
    assert main(["ab", str(csv), "--variant", "variant", "--metric", "revenue", "--write-stats", str(stats)]) == 0
    make(pd.read_csv(stats)).to_csv(stats, index=False)
    capsys.readouterr()
    assert main(["ab", "--stats", str(stats), "--variant", "variant", "--metric", "revenue", *args]) == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize("args, needle", [
    (["--quantile", "revenue:1.5"], "strictly between 0 and 1"),
    (["--metric", "revenue", "--timestamp", "day", "--looks", "9,3,12"], "out of order"),
    (["--metric", "revenue", "--looks", "5"], "needs a timestamp"),
    (["--metric", "revenue", "--cap", "2"], "cap"),
    (["--metric", "revenue", "--lift-ci", "exact"], "lift interval"),
    (["--metric", "revenue", "--corrections", "holm,magic"], "magic"),
    (["--metric", "revenue", "--timestamp", "day", "--spending", "linear"], "spending"),
])
def test_cli_more_bad_input_exit_2(csv, capsys, args, needle):
    assert main(["ab", str(csv), "--variant", "variant", *args]) == 2
    assert needle in capsys.readouterr().err


def test_cli_needs_logs_or_stats(capsys):
    assert main(["ab", "--variant", "variant", "--metric", "revenue"]) == 2
    assert "no input" in capsys.readouterr().err


def test_cli_ab_starts_without_heavy_imports():
    import subprocess
    import sys

    code = ("import sys; from causalrec.cli import main; import causalrec.cli.ab, causalrec.experiments, "
            "causalrec.report.ab; heavy = ('torch', 'econml', 'dowhy', 'transformers', 'statsmodels', 'sklearn', "
            "'scipy.stats', 'scipy.optimize'); print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
