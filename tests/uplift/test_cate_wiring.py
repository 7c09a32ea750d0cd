"""``estimate(..., per_item=, segments=, cate=, curves=, refute=)`` and the CLI options."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from causalrec.cli import main
from causalrec.errors import InputError
from causalrec.uplift import estimate


def _logs(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    e = 1 / (1 + np.exp(-x1))
    t = (rng.random(n) < e).astype(int)
    item = rng.integers(0, 3, n)
    y = x1 + (0.4 + 0.2 * item) * t + rng.normal(size=n)
    return pd.DataFrame({"user_id": rng.integers(0, 300, n).astype(str), "item_id": [f"it{k}" for k in item],
                         "exposed": t, "y": y, "x1": x1, "x2": x2, "region": rng.choice(["north", "south"], n)})


def test_estimate_attaches_analysis():
    df = _logs()
    r = estimate(df, treatment="exposed", outcome="y", covariates=["x1", "x2"], features="covariates",
                 methods=("naive", "aipw"), n_folds=3, propensity_model=LogisticRegression(), outcome_model=Ridge(),
                 per_item=True, segments="region", cate="dr_learner", curves=True, refute=True,
                 analysis_options={"num_simulations": 2, "n_boot": 20, "cate_modifiers": 2})
    a = r.analysis
    assert [g.by for g in a.groups] == ["item_id", "region"]
    items = a.groups[0].table.set_index("item_id")
    for k, truth in enumerate([0.4, 0.6, 0.8]):
        assert items.loc[f"it{k}", "ci_low"] < truth < items.loc[f"it{k}", "ci_high"]
    assert a.cate.method == "dr_learner" and a.curve is not None and a.refutations is not None
    d = json.loads(r.to_json())
    assert set(d["analysis"]) >= {"overlap", "balance", "groups", "cate", "curve", "refutations"}
    assert d["config"]["analysis"]["refute"] is True
    # without the options nothing is attached
    plain = estimate(df, treatment="exposed", outcome="y", covariates=["x1"], features="covariates",
                     methods=("aipw",), n_folds=2, propensity_model=LogisticRegression(), outcome_model=Ridge())
    assert getattr(plain, "analysis", None) is None
    with pytest.raises(InputError):
        estimate(df, treatment="exposed", outcome="y", methods=("naive",), per_item=True)


def test_cli_report_has_every_section(tmp_path):
    path = tmp_path / "logs.csv"
    _logs(n=800).to_csv(path, index=False)
    out, rep, md = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "r.md"
    args = ["uplift", str(path), "--treatment", "exposed", "--outcome", "y", "--covariates", "x1,x2",
            "--features", "covariates", "--method", "naive,ipw,aipw", "--n-folds", "2", "--segments", "region",
            "--refute-simulations", "2", "--n-boot", "20", "--out", str(out), "--quiet"]
    assert main(args + ["--report", str(rep)]) == 0
    html = rep.read_text()
    for h in ("Average effects", "Overlap and balance", "Heterogeneous effects", "Uplift curve",
              "Refutations and sensitivity"):
        assert f"<h2>{h}</h2>" in html
    assert "Effects by region" in html and "Effects by item_id" in html
    assert main(args + ["--segments", "no_such_column", "--report", str(md)]) == 2


def test_cli_analysis_defaults():
    from causalrec.cli.uplift import _analysis_options

    on = _analysis_options(True, "user_text", None, None, 8, None, None, None, 10, 200)
    assert on["per_item"] and on["curves"] and on["refute"] and on["cate"] == "linear_dml"
    assert on["segments"] == "embedding"
    off = _analysis_options(False, "user_text", None, None, 8, None, None, None, 10, 200)
    assert not (off["per_item"] or off["curves"] or off["refute"] or off["cate"] or off["segments"])
    some = _analysis_options(True, None, False, "none", 8, "none", None, False, 3, 50)
    assert some["segments"] is None and some["cate"] is None and not some["refute"] and not some["per_item"]
    assert some["analysis_options"]["num_simulations"] == 3
