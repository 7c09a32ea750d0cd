"""Bad ranked-list input: a clear InputError naming the column and the fix (exit code 2 from the CLI)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from causalrec.cli import main
from causalrec.data import LogSchema
from causalrec.errors import InputError
from causalrec.ope import evaluate
from causalrec.ope.slate_synthetic import make_slate_logs

SCHEMA = LogSchema(outcome="click")


@pytest.fixture(scope="module")
def sb():
    return make_slate_logs(40, n_items=5, list_length=3, seed=2)


def ev(logs, target, **kw):
    kw.setdefault("estimators", ["rips"])
    return evaluate(logs, target, schema=SCHEMA, target_kind="plackett-luce", **kw)


def test_slots_must_be_0_to_L_minus_1(sb):
    logs = sb.logs.copy()
    logs.loc[logs.index[4], "position"] = 3  # request 1: slots 0, 3, 2
    with pytest.raises(InputError, match=r"'position': request 1 has slots \[0, 2, 3\], which are not 0..2") as e:
        ev(logs, sb.target_scores)
    assert "fix:" in str(e.value)
    dup = sb.logs.copy()
    dup.loc[dup.index[4], "position"] = 0
    with pytest.raises(InputError, match="repeat a slot"):
        ev(dup, sb.target_scores)
    one_based = sb.logs.assign(position=sb.logs["position"] + 1)
    with pytest.raises(InputError, match="--position-base 1"):
        ev(one_based, sb.target_scores)
    res = evaluate(one_based, sb.target_scores, schema=SCHEMA.with_(position_base=1), target_kind="plackett-luce",
                   estimators=["rips"])
    assert res.get("rips").estimate == pytest.approx(ev(sb.logs, sb.target_scores).get("rips").estimate, rel=1e-12)


def test_score_table_missing_a_request(sb):
    scores = sb.target_scores[sb.target_scores["request_id"] != 7]
    with pytest.raises(InputError, match="no scores for 1 logged request.*7") as e:
        ev(sb.logs, scores)
    assert e.value.column == "request_id"


def test_table_target_missing_a_slot(sb):
    tab = pd.DataFrame({"request_id": sb.logs["request_id"], "position": sb.logs["position"],
                        "item_id": sb.logs["item_id"], "prob": 1.0})
    evaluate(sb.logs, tab, schema=SCHEMA, estimators=["rips"])  # complete: fine
    with pytest.raises(InputError, match="at slot 2"):
        evaluate(sb.logs, tab[~((tab["request_id"] == 3) & (tab["position"] == 2))], schema=SCHEMA,
                 estimators=["rips"])


def test_unequal_lists_are_refused_by_the_estimators_that_weight_the_whole_list(sb):
    short = sb.logs[~((sb.logs["request_id"] == 5) & (sb.logs["position"] == 2))]
    with pytest.raises(InputError, match=r"unequal lengths.*request 5 has 2 slots.*sips, pi") as e:
        ev(short, sb.target_scores, estimators=["sips", "rips", "pi"], propensity_marginal="propensity_marginal")
    assert "--allow-unequal-lists" in str(e.value) and "rips" in str(e.value)
    ok = ev(short, sb.target_scores, estimators=["rips", "iips", "cascade_dr"],
            propensity_marginal="propensity_marginal")  # slots above each row only: fine
    assert ok.n_rows == len(short)
    allowed = ev(short, sb.target_scores, estimators=["sips", "pi"], propensity_marginal="propensity_marginal",
                 allow_unequal_lists=True)
    assert np.isfinite(allowed.get("sips").estimate)


def test_marginal_propensity_must_match_the_conditional_at_the_top_slot(sb):
    logs = sb.logs.copy()
    top = logs.index[logs["position"] == 0][3]
    logs.loc[top, "propensity_marginal"] = logs.loc[top, "propensity_marginal"] / 2
    with pytest.raises(InputError, match="'propensity_marginal' disagrees with 'propensity' at the top slot"):
        ev(logs, sb.target_scores, estimators=["iips"], propensity_marginal="propensity_marginal")
    bad = sb.logs.assign(propensity_marginal=0.0)
    with pytest.raises(InputError, match="propensity_marginal"):
        ev(bad, sb.target_scores, estimators=["iips"], propensity_marginal="propensity_marginal")


@pytest.mark.parametrize("kw, match", [
    (dict(estimators=["ips", "rips"]), "cannot be mixed with the slate estimators"),
    (dict(estimators=["iips"]), "--propensity-marginal"),
    (dict(estimators=["rips"], propensity_marginal="nope"), "'nope'"),
    (dict(estimators=["rips"], value_per="slate"), "value_per"),
    (dict(estimators=["rips"], cluster="session"), "'session'"),
])
def test_bad_options(sb, kw, match):
    with pytest.raises(InputError, match=match):
        ev(sb.logs, sb.target_scores, **kw)


def test_missing_request_column_and_unsorted_stream(sb, tmp_path):
    with pytest.raises(InputError, match="request column 'request_id'"):
        ev(sb.logs.drop(columns=["request_id"]), sb.target_scores.drop(columns=["request_id"]))
    path = tmp_path / "shuffled.parquet"
    sb.logs.sample(frac=1.0, random_state=0).to_parquet(path)
    with pytest.raises(InputError, match="sorted by 'request_id'"):
        ev(path, sb.target_scores, batch_size=30, progress=False)
    ev(path, sb.target_scores)  # in memory any order works


def test_scores_without_a_kind_and_a_callable_target(sb):
    with pytest.raises(InputError, match="--target-kind"):
        evaluate(sb.logs, sb.target_scores, schema=SCHEMA, estimators=["rips"])
    with pytest.raises(InputError, match="not a callable"):
        evaluate(sb.logs, lambda b: None, schema=SCHEMA, estimators=["rips"])


def test_cli_ranked_lists_and_exit_code_2(sb, tmp_path, capsys):
    sb.logs.to_csv(tmp_path / "logs.csv", index=False)
    sb.target_scores.to_csv(tmp_path / "scores.csv", index=False)
    args = ["ope", str(tmp_path / "logs.csv"), "--target", str(tmp_path / "scores.csv"), "--outcome", "click",
            "--target-kind", "plackett-luce", "--propensity-marginal", "propensity_marginal"]
    rc = main([*args, "--estimators", "sips,iips,rips,cascade_dr,pi", "--value-per", "list",
               "--out", str(tmp_path / "r.json"), "--report", str(tmp_path / "r.html")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "cascade_dr" in out and "policy_value_per_list" in out
    js = json.loads((tmp_path / "r.json").read_text())
    assert {e["estimator"] for e in js["estimates"]} == {"sips", "iips", "rips", "cascade_dr", "pi"}
    assert js["config"]["cluster"] == "request_id" and js["config"]["cluster_choice"] == "auto"
    html = (tmp_path / "r.html").read_text()
    assert "cluster-robust by" in html and "chosen automatically" in html and "cascade model" in html
    rc = main([*args])  # default slate estimators
    assert rc == 0
    assert {"rips", "snrips", "cascade_dr", "iips", "sniips"} <= set(capsys.readouterr().out.split())
    bad = sb.target_scores[sb.target_scores["request_id"] != 0]
    bad.to_csv(tmp_path / "bad.csv", index=False)
    rc = main(["ope", str(tmp_path / "logs.csv"), "--target", str(tmp_path / "bad.csv"), "--outcome", "click",
               "--target-kind", "topk", "--estimators", "rips"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "'request_id'" in err and "fix:" in err
    rc = main([*args, "--estimators", "rips", "--cluster", "none", "--out", str(tmp_path / "n.json"), "--quiet"])
    assert rc == 0 and json.loads((tmp_path / "n.json").read_text())["config"]["cluster"] is None
