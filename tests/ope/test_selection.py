"""SLOPE: the rule on hand-made candidates, and through evaluate / the CLI for clip, tau, lambda and K."""

import json

import numpy as np
import pytest

from causalrec.cli import main
from causalrec.data import LogSchema
from causalrec.errors import InputError
from causalrec.ope import evaluate
from causalrec.ope.selection import CLIP_GRID, LAMBDA_GRID, TAU_GRID, slope_index
from causalrec.ope.synthetic import make_bandit_logs
from causalrec.report.ope import build_ope_report


def test_slope_rule_by_hand():
    # intervals +-2 se: [0.8, 1.2], [0.85, 1.05], [0.9, 1.1] intersect; [1.3, 1.4] does not
    assert slope_index([1.0, 0.95, 1.0, 1.35], [0.1, 0.05, 0.05, 0.025]) == 2
    assert slope_index([1.0, 2.0], [0.1, 0.1]) == 0  # the second already disagrees
    assert slope_index([1.0, 1.1, 1.25], [0.1, 0.1, 0.1], width=1.0) == 1  # [0.9,1.1] [1.0,1.2] [1.15,1.35]
    assert slope_index([1.0, 1.1, 1.25], [0.1, 0.1, 0.1], width=0.4) == 0
    assert slope_index([np.nan, 1.0, 1.01], [np.nan, 0.1, 0.05]) == 2  # an undefined least-biased candidate is skipped
    assert slope_index([1.0, 1.0, np.nan], [0.1, 0.1, np.nan]) == 1


@pytest.fixture(scope="module")
def sb():
    return make_bandit_logs(3000, n_items=10, n_positions=2, n_segments=2, seed=3)


def test_clip_tau_lambda_chosen_by_slope(sb):
    r = evaluate(sb.logs, sb.targets["greedy_mix"], schema=LogSchema(outcome="click"),
                 estimators=["ips", "snips", "switch_dr", "dros", "dm"], clip="slope", switch_tau="slope",
                 dros_lambda="slope")
    assert [e.estimator for e in r.estimates] == ["ips", "snips", "switch_dr", "dros", "dm"]
    sel = r.diagnostics["selection"]
    assert set(sel) == {"ips", "snips", "switch_dr", "dros"}
    for name, grid, par in (("ips", CLIP_GRID, "clip"), ("switch_dr", TAU_GRID, "tau"), ("dros", LAMBDA_GRID, "lambda")):
        s = sel[name]
        assert s["parameter"] == par and len(s["candidates"]) == len(grid)
        j = slope_index([c["estimate"] for c in s["candidates"]], [c["se"] for c in s["candidates"]])
        assert s["chosen"] == s["candidates"][j]["value"]
        assert r.get(name).estimate == s["candidates"][j]["estimate"]
        assert r.get(name).extra["selected_by"] == "slope"
    # a fixed value is the same number as the candidate with that value
    fixed = evaluate(sb.logs, sb.targets["greedy_mix"], schema=LogSchema(outcome="click"), estimators=["ips"], clip=30.0)
    c30 = next(c for c in sel["ips"]["candidates"] if c["value"] == 30.0)
    assert fixed.get("ips").estimate == pytest.approx(c30["estimate"], abs=1e-12)
    assert r.config["selection"]["ips"]["chosen"] == sel["ips"]["chosen"]


def test_bad_choice_and_cli(sb, tmp_path, capsys):
    with pytest.raises(InputError, match="'slope'"):
        evaluate(sb.logs, sb.targets["greedy_mix"], schema=LogSchema(outcome="click"), clip="auto")
    sb.logs.to_csv(tmp_path / "logs.csv", index=False)
    sb.targets["greedy_mix"].to_csv(tmp_path / "t.csv", index=False)
    rc = main(["ope", str(tmp_path / "logs.csv"), "--target", str(tmp_path / "t.csv"), "--outcome", "click",
               "--estimators", "ips,switch_dr", "--clip", "slope", "--switch-tau", "slope", "--out",
               str(tmp_path / "r.json"), "--report", str(tmp_path / "r.html")])
    assert rc == 0
    js = json.loads((tmp_path / "r.json").read_text())
    assert set(js["diagnostics"]["selection"]) == {"ips", "switch_dr"}
    assert js["config"]["clip"] == "slope"
    assert "SLOPE" in (tmp_path / "r.html").read_text()
    capsys.readouterr()
    assert main(["ope", str(tmp_path / "logs.csv"), "--target", str(tmp_path / "t.csv"), "--outcome", "click",
                 "--dros-lambda", "big"]) == 2


def test_selected_estimators_keep_their_run_names(sb):
    # an alias (or two instances of one estimator) must survive selection under its own name
    from causalrec.ope.estimators import IPS

    r = evaluate(sb.logs, sb.targets["greedy_mix"], schema=LogSchema(outcome="click"),
                 estimators=[IPS(alias="ips(tuned)"), "snips", "dm"], clip="slope")
    assert [e.estimator for e in r.estimates] == ["ips(tuned)", "snips", "dm"]
    assert set(r.diagnostics["selection"]) == {"ips(tuned)", "snips"}


def test_report_names_and_marks_a_chosen_none_candidate(sb):
    """'No clip' is a candidate (value None): the report names it and marks it when SLOPE keeps it."""
    r = evaluate(sb.logs, sb.targets["greedy_mix"], schema=LogSchema(outcome="click"), estimators=["ips"],
                 clip="slope")
    sel = r.diagnostics["selection"]["ips"]
    assert sel["candidates"][0]["value"] is None
    md = build_ope_report(r).to_markdown()
    assert f"clip chosen = {sel['chosen']}" in md and "| none | " in md
    sel["chosen"] = None  # as when the unclipped estimate is the one kept
    md = build_ope_report(r).to_markdown()
    assert "ips: clip chosen = none" in md
    none_row = next(line for line in md.splitlines() if line.startswith("| none | "))
    assert none_row.rstrip().endswith("| yes |")
    assert sum(line.rstrip().endswith("| yes |") for line in md.splitlines()) == 1
