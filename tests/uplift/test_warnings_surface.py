"""Issue 14, section 3: heavy-tailed influence values, poor calibration and balance that gets
worse after weighting each raise a warning naming the rows responsible, and the warning
reaches the CLI table, the JSON and the HTML report (not only the Python result)."""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
import pytest

from causalrec.cli import main

N = 1500
OUTLIER = 321  # log row whose outcome is extreme


@pytest.fixture(scope="module")
def bad_log(tmp_path_factory) -> str:
    """Randomised exposure (true e = 0.5, independent of x), one extreme outcome, and a logged
    propensity that follows x: weighting by it unbalances x and it is miscalibrated."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=N)
    t = (rng.random(N) < 0.5).astype(int)
    y = x + t + rng.normal(size=N)
    y[OUTLIER] = 1e4
    wrong_e = 1.0 / (1.0 + np.exp(-2.5 * x))  # depends on x although exposure does not
    path = tmp_path_factory.mktemp("warn") / "logs.csv"
    pd.DataFrame({"x": x, "t": t, "y": y, "p": np.clip(wrong_e, 0.02, 0.98)}).to_csv(path, index=False)
    return str(path)


def test_warnings_reach_table_json_and_report(bad_log, tmp_path, capsys):
    out, report = tmp_path / "r.json", tmp_path / "r.html"
    code = main(["uplift", bad_log, "--treatment", "t", "--outcome", "y", "--covariates", "x",
                 "--propensity", "p", "--method", "naive,aipw", "--n-folds", "2", "--no-refute",
                 "--no-curves", "--cate", "none", "--out", str(out), "--report", str(report)])
    assert code == 0
    table = capsys.readouterr().out
    warnings = json.loads(out.read_text())["warnings"]
    page = html.unescape(report.read_text())
    kinds = ("heavy-tailed influence values", "poorly calibrated propensities",
             "covariate balance is worse after weighting")
    for kind in kinds:
        hits = [w for w in warnings if w.startswith(kind)]
        assert len(hits) == 1, (kind, warnings)
        assert "log rows" in hits[0]  # the rows responsible are named
        assert f"WARNING: {hits[0]}" in table
        assert hits[0] in page
    tail = next(w for w in warnings if w.startswith(kinds[0]))
    assert f"log rows {OUTLIER}, " in tail  # the extreme outcome carries the most influence
    assert ", 0.02, " in tail and "there 0, " not in tail  # the low propensities keep their digits


def test_no_such_warnings_on_a_clean_randomised_log(tmp_path, capsys):
    rng = np.random.default_rng(8)
    x = rng.normal(size=N)
    t = (rng.random(N) < 0.5).astype(int)
    path = tmp_path / "clean.csv"
    pd.DataFrame({"x": x, "t": t, "y": x + t + rng.normal(size=N), "p": np.full(N, 0.5)}).to_csv(path, index=False)
    out = tmp_path / "r.json"
    code = main(["uplift", str(path), "--treatment", "t", "--outcome", "y", "--covariates", "x",
                 "--propensity", "p", "--method", "aipw", "--n-folds", "2", "--no-refute", "--no-curves",
                 "--cate", "none", "--out", str(out), "--quiet"])
    assert code == 0
    warnings = json.loads(out.read_text())["warnings"]
    assert not [w for w in warnings if w.startswith(("heavy-tailed", "poorly calibrated", "covariate balance"))]
