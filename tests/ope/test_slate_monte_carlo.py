"""Seeded Monte Carlo marginals of a Plackett-Luce score target, end to end (issue 10: "exact for short
lists, seeded Monte Carlo otherwise, with the error stated").

On a world small enough for exact marginals, exact enumeration is switched off
(``plackett_luce.EXACT_CELLS = 0``) so the same log is evaluated both ways: the Monte Carlo
estimates of the estimators that use the target's marginals (iips, sniips, pi) lie within a few
of their reported ``mc_se`` of the exact ones, ``mc_se`` shrinks like ``1 / sqrt(draws)``, the same
seed gives the same figures, and the estimators that use only conditionals (rips) are unaffected.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from causalrec.cli import main
from causalrec.data import LogSchema
from causalrec.ope import evaluate
from causalrec.ope import plackett_luce as pl
from causalrec.ope.slate_synthetic import make_slate_logs

SCHEMA = LogSchema(outcome="click")
NAMES = ["iips", "sniips", "pi", "rips"]


@pytest.fixture(scope="module")
def sb():
    return make_slate_logs(300, n_items=7, list_length=3, seed=5)


def _ev(sb, **kw):
    return evaluate(sb.logs, sb.target_scores, schema=SCHEMA, target_kind="plackett-luce", estimators=NAMES,
                    propensity_marginal="propensity_marginal", value_per="list", **kw)


def test_monte_carlo_marginals_state_their_error_and_agree_with_exact(sb, monkeypatch):
    exact = _ev(sb)
    assert exact.diagnostics["target_marginal_method"] == "exact"
    assert all("mc_se" not in e.extra for e in exact.estimates)
    monkeypatch.setattr(pl, "EXACT_CELLS", 0)
    few, many = _ev(sb, mc_samples=250, seed=1), _ev(sb, mc_samples=4000, seed=1)
    assert few.diagnostics["target_marginal_method"] == "monte_carlo"
    for name in ("iips", "sniips", "pi"):
        ex, f, m = exact.get(name).estimate, few.get(name), many.get(name)
        assert f.extra["mc_se"] > 0 and m.extra["mc_se"] > 0, name
        assert abs(f.estimate - ex) <= 5 * f.extra["mc_se"], (name, f.estimate, ex, f.extra["mc_se"])
        assert abs(m.estimate - ex) <= 5 * m.extra["mc_se"], (name, m.estimate, ex, m.extra["mc_se"])
        # 16x the draws: about a quarter of the error (loose bounds: the error is itself estimated)
        assert 0.1 < m.extra["mc_se"] / f.extra["mc_se"] < 0.5, name
    # rips uses only the conditionals, which are exact either way
    assert "mc_se" not in few.get("rips").extra
    assert few.get("rips").estimate == pytest.approx(exact.get("rips").estimate, rel=1e-12)
    # seeded: the same seed, the same draws
    again = _ev(sb, mc_samples=250, seed=1)
    assert again.get("iips").estimate == few.get("iips").estimate


def test_cli_json_and_report_carry_the_monte_carlo_error(sb, tmp_path, monkeypatch):
    monkeypatch.setattr(pl, "EXACT_CELLS", 0)
    sb.logs.to_csv(tmp_path / "logs.csv", index=False)
    sb.target_scores.to_csv(tmp_path / "scores.csv", index=False)
    rc = main(["ope", str(tmp_path / "logs.csv"), "--target", str(tmp_path / "scores.csv"), "--outcome", "click",
               "--target-kind", "plackett-luce", "--propensity-marginal", "propensity_marginal",
               "--estimators", "iips,rips", "--mc-samples", "300", "--quiet",
               "--out", str(tmp_path / "r.json"), "--report", str(tmp_path / "r.md")])
    assert rc == 0
    js = json.loads((tmp_path / "r.json").read_text())
    est = {e["estimator"]: e for e in js["estimates"]}
    assert np.isfinite(est["iips"]["mc_se"]) and est["iips"]["mc_se"] > 0
    assert js["diagnostics"]["target_marginal_method"] == "monte_carlo"
    assert "Monte Carlo standard error" in (tmp_path / "r.md").read_text()
