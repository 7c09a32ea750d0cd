"""`causalrec ope`: exit codes, JSON shape (DESIGN.md section 4), report rendering and escaping."""

import json

import numpy as np
import pandas as pd
import pytest

from causalrec.cli import main
from causalrec.data import LogSchema
from causalrec.ope import evaluate
from causalrec.ope.synthetic import make_bandit_logs
from causalrec.report.ope import build_ope_report


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    sb = make_bandit_logs(900, n_items=6, n_positions=3, n_segments=2, seed=4)
    logs = sb.logs.rename(columns={"click": "clicked", "propensity": "ps", "position": "slot"})
    logs["slot"] += 1
    logs.to_csv(d / "logs.csv", index=False)
    sb.targets["greedy_mix"].assign(position=lambda t: t["position"] + 1).to_csv(d / "target.csv", index=False)
    return d, sb, logs


ARGS = ["--outcome", "clicked", "--propensity", "ps", "--position", "slot", "--position-base", "1"]


def test_cli_writes_json_and_report(files, capsys):
    d, sb, _ = files
    rc = main(["ope", str(d / "logs.csv"), "--target", str(d / "target.csv"), *ARGS,
               "--estimators", "ips,snips,dr,sndr,switch_dr,dros,dm", "--bootstrap", "50",
               "--out", str(d / "r.json"), "--report", str(d / "r.html")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "snips" in out and "policy_value" in out
    js = json.loads((d / "r.json").read_text())
    for key in ("causalrec_version", "command", "n_rows", "estimates", "diagnostics", "warnings", "config"):
        assert key in js
    assert js["command"] == "ope" and js["n_rows"] == 900
    assert {e["estimator"] for e in js["estimates"]} == {"ips", "snips", "dr", "sndr", "switch_dr", "dros", "dm"}
    for e in js["estimates"]:
        for k in ("estimator", "target", "estimate", "se", "ci_low", "ci_high", "ci_level", "boot_ci_low"):
            assert k in e
        assert e["target"] == "policy_value" and e["ci_low"] <= e["estimate"] <= e["ci_high"]
    for k in ("ess", "ess_ratio", "weight_max", "weight_p99", "share_clipped", "propensity_min", "propensity_max"):
        assert k in js["diagnostics"]
    assert js["config"]["bootstrap"] == 50 and js["config"]["schema"]["position_base"] == 1
    assert sum(js["weight_histogram"]["counts"]) + js["weight_histogram"]["n_zero"] == 900
    html = (d / "r.html").read_text()
    assert html.count("data:image/png;base64,") >= 2  # forest plot + weight histogram
    assert "Positivity" in html and "src=\"http" not in html
    # the CLI agrees with the API
    api = evaluate(d / "logs.csv", d / "target.csv", estimators=("ips",),
                   schema=LogSchema(outcome="clicked", propensity="ps", position="slot", position_base=1))
    ips = next(e for e in js["estimates"] if e["estimator"] == "ips")
    assert ips["estimate"] == pytest.approx(api.get("ips").estimate, rel=1e-12)


@pytest.mark.parametrize("mutate, column", [
    (lambda df: df.assign(ps=np.where(np.arange(len(df)) == 5, 0.0, df["ps"])), "ps"),
    (lambda df: df.assign(ps=np.where(np.arange(len(df)) == 5, np.nan, df["ps"])), "ps"),
    (lambda df: df.drop(columns=["ps"]), "ps"),
    (lambda df: df.assign(clicked="yes"), "clicked"),
])
def test_bad_logs_exit_2_naming_the_column(files, tmp_path, capsys, mutate, column):
    d, _, logs = files
    mutate(logs).to_csv(tmp_path / "bad.csv", index=False)
    rc = main(["ope", str(tmp_path / "bad.csv"), "--target", str(d / "target.csv"), *ARGS])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"'{column}'" in err and "fix:" in err


@pytest.mark.parametrize("args, needle", [
    (["--estimators", "ips,bogus"], "bogus"),
    (["--clip", "-1"], "clip"),
    (["--ci-level", "1.5"], "ci_level"),
    (["--bootstrap", "1"], "bootstrap"),
])
def test_bad_options_exit_2(files, capsys, args, needle):
    d, _, _ = files
    rc = main(["ope", str(d / "logs.csv"), "--target", str(d / "target.csv"), *ARGS, *args])
    assert rc == 2
    assert needle in capsys.readouterr().err


def test_bad_target_and_missing_file_exit_2(files, tmp_path, capsys):
    d, sb, _ = files
    t = sb.targets["greedy_mix"].assign(position=lambda t: t["position"] + 1)
    pd.concat([t, t.iloc[:1]]).to_csv(tmp_path / "dup.csv", index=False)
    assert main(["ope", str(d / "logs.csv"), "--target", str(tmp_path / "dup.csv"), *ARGS]) == 2
    assert "duplicated" in capsys.readouterr().err
    assert main(["ope", str(tmp_path / "nope.csv"), "--target", str(d / "target.csv"), *ARGS]) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_streaming_cli(files, tmp_path):
    d, sb, logs = files
    logs.to_parquet(tmp_path / "logs.parquet")
    rc = main(["ope", str(tmp_path / "logs.parquet"), "--target", str(d / "target.csv"), *ARGS,
               "--batch-size", "100", "--out", str(tmp_path / "s.json"), "--quiet"])
    assert rc == 0
    js = json.loads((tmp_path / "s.json").read_text())
    assert js["config"]["mode"].startswith("streaming")


def test_report_escapes_user_text(files):
    d, sb, _ = files
    r = evaluate(sb.logs, sb.targets["uniform"], schema=LogSchema(outcome="click"), estimators=("ips", "dr"))
    r.warnings.append("<script>alert('x')</script> & more")
    r.target_policy["kind"] = "<b>evil</b>"
    html = build_ope_report(r).to_html()
    assert "<script>alert" not in html and "<b>evil</b>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;evil&lt;/b&gt;" in html
    md = build_ope_report(r).to_markdown()
    assert "Estimates" in md and "policy" in md


def test_cli_does_not_import_heavy_libraries():
    import subprocess
    import sys

    code = ("import sys; from causalrec.cli import main; import causalrec.ope, causalrec.report.ope; "
            "print(sorted(m for m in ('torch', 'econml', 'dowhy', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
