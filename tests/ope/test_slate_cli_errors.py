"""Bad ranked-list input through the CLI (issue 10, section 4): exit code 2, the column named, the fix.

The same checks are tested on the Python API in ``test_slate_errors.py``; here each one is run the
way a user meets it, as ``causalrec ope`` on a CSV, in memory and streamed (``--batch-size``), with
1-based slots (``--position-base 1``) as in the bundled sample.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from causalrec.cli import main
from causalrec.ope.slate_synthetic import make_slate_logs


@pytest.fixture(scope="module")
def sb():
    return make_slate_logs(40, n_items=5, list_length=3, seed=2)


def _gap(logs, scores):  # request 1: slots 1, 2, 5
    logs = logs.copy()
    logs.loc[logs.index[5], "position"] = 5
    return logs, scores


def _repeat(logs, scores):  # request 1: slots 1, 1, 3
    logs = logs.copy()
    logs.loc[logs.index[4], "position"] = 1
    return logs, scores


def _zero_based(logs, scores):  # slots 0..2 given to --position-base 1
    return logs.assign(position=logs["position"] - 1), scores


def _missing_request(logs, scores):
    return logs, scores[scores["request_id"] != 6]


def _short_list(logs, scores):  # request 5 lost its last slot
    return logs[~((logs["request_id"] == 5) & (logs["position"] == 3))], scores


@pytest.mark.parametrize("batch", [None, 30])
@pytest.mark.parametrize("make_bad, estimators, column, needles", [
    (_gap, "rips", "'position'", ["request 1 has slots [1, 2, 5]", "not 1..3", "numbered from 1 without gaps"]),
    (_repeat, "rips", "'position'", ["request 1 has slots [1, 1, 3]", "repeat a slot"]),
    (_zero_based, "rips", "'position'", ["below the declared base 1", "--position-base 0"]),
    (_missing_request, "rips", "'request_id'", ["no scores for 1 logged request(s), e.g. 6", "score the candidates"]),
    (_short_list, "sips,rips", "'position'", ["unequal lengths", "request 5 has 2 slots", "sips",
                                              "--allow-unequal-lists"]),
    (_short_list, "pi", "'position'", ["unequal lengths", "pi weight", "use rips/iips/cascade_dr"]),
], ids=["slot-gap", "slot-repeat", "0-based-slots-with-base-1", "scores-missing-a-request", "unequal-sips",
        "unequal-pi"])
def test_cli_slate_bad_input_exits_2_naming_the_column_and_the_fix(sb, tmp_path, capsys, make_bad, estimators,
                                                                   column, needles, batch):
    one_based = sb.logs.assign(position=sb.logs["position"] + 1)
    logs, scores = make_bad(one_based, sb.target_scores)
    logs.to_csv(tmp_path / "logs.csv", index=False)
    scores.to_csv(tmp_path / "scores.csv", index=False)
    args = ["ope", str(tmp_path / "logs.csv"), "--target", str(tmp_path / "scores.csv"), "--outcome", "click",
            "--target-kind", "plackett-luce", "--position-base", "1", "--propensity-marginal",
            "propensity_marginal", "--estimators", estimators, "--quiet",
            *(["--batch-size", str(batch)] if batch else [])]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert column in err and "fix:" in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_cli_unequal_lists_are_fine_for_the_estimators_that_use_the_slots_above(sb, tmp_path):
    logs, _ = _short_list(sb.logs.assign(position=sb.logs["position"] + 1), sb.target_scores)
    logs.to_csv(tmp_path / "logs.csv", index=False)
    sb.target_scores.to_csv(tmp_path / "scores.csv", index=False)
    assert main(["ope", str(tmp_path / "logs.csv"), "--target", str(tmp_path / "scores.csv"), "--outcome", "click",
                 "--target-kind", "plackett-luce", "--position-base", "1", "--propensity-marginal",
                 "propensity_marginal", "--estimators", "rips,iips,cascade_dr", "--quiet",
                 "--out", str(tmp_path / "r.json")]) == 0
    est = json.loads((tmp_path / "r.json").read_text())["estimates"]
    assert [e["estimator"] for e in est] == ["rips", "iips", "cascade_dr"]
    assert all(np.isfinite(e["estimate"]) for e in est)
