"""The large-catalogue ranked-list simulator (``make_catalogue_slate_logs``, ``causalrec simulate
--kind catalogue-slates``): exact truth against simulated clicks, exact PL propensities, the
sampler's slot frequencies, the OPE estimators' unbiasedness over seeds and the CLI path."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from causalrec.cli import app, main
from causalrec.data import LogSchema
from causalrec.ope import catalogue_slate_synthetic as css
from causalrec.ope import evaluate
from causalrec.ope.catalogue_slate_synthetic import make_catalogue_slate_logs

SCHEMA = LogSchema(outcome="click")


def _scan_clicks(rng, q, reward, satisfaction):
    """Clicks of lists with base probabilities ``q``, written here independently of the simulator."""
    n, ell = q.shape
    clicks = np.zeros((n, ell))
    looking = np.ones(n, dtype=bool)
    for k in range(ell):
        c = (rng.random(n) < q[:, k]) & (looking if reward == "cascade" else True)
        clicks[:, k] = c
        if reward == "cascade":
            looking &= ~(c & (rng.random(n) < satisfaction))
    return clicks


@pytest.mark.parametrize("reward", ["cascade", "independent"])
def test_exact_truth_equals_monte_carlo_clicks_of_the_top_lists(reward):
    sim = make_catalogue_slate_logs(n_requests=50, n_items=300, list_length=4, n_topics=10, n_segments=3,
                                    reward=reward, seed=3)
    # the target list of each segment recomputed from the written score table (topk: decreasing score)
    tab = sim.target.merge(sim.logs[["request_id", "segment"]].drop_duplicates(), on="request_id")
    assert tab["segment"].nunique() == 3
    for (_r, s), grp in tab.groupby(["request_id", "segment"]):
        top = grp.sort_values("score", ascending=False)["item_id"].to_numpy()[:4]
        np.testing.assert_array_equal(top, sim.target_lists[s])
    # clicks simulated under the target's lists, segments uniform, from the click model's parameters
    w, n = sim.world, 400_000
    rng = np.random.default_rng(11)
    seg = rng.integers(0, w.n_segments, n)
    lists = sim.target_lists[seg]
    k = np.arange(4)
    q = 1.0 / (1.0 + np.exp(-(w.base + w.z[seg[:, None], lists]))) * w.decay ** k[None, :]
    per_list = _scan_clicks(rng, q, reward, w.satisfaction).sum(axis=1)
    se = per_list.std(ddof=1) / np.sqrt(n)
    assert sim.truth["method"] == "exact" and sim.truth["truth_se"] == 0.0
    assert abs(per_list.mean() - sim.truth["value_per_list"]) < 4 * se, (per_list.mean(), sim.truth, se)
    assert sim.truth["value_per_impression"] == pytest.approx(sim.truth["value_per_list"] / 4, rel=1e-12)


@pytest.mark.parametrize("chunk_cells", [None, 50])  # 50: chunks of 7 requests, the chunked path
def test_logged_propensities_are_the_plackett_luce_conditionals(chunk_cells, monkeypatch):
    if chunk_cells is not None:
        monkeypatch.setattr(css, "CHUNK_CELLS", chunk_cells)
    sim = make_catalogue_slate_logs(n_requests=40, n_items=7, list_length=3, n_topics=3, n_segments=2, seed=5,
                                    keep_logging_scores=True)
    g = sim.logging_scores
    logs = sim.logs.sort_values(["request_id", "position"])
    for r, grp in logs.groupby("request_id"):  # a plain loop over the few requests, on purpose
        items = grp["item_id"].to_numpy()
        assert len(set(items)) == 3  # without replacement
        free = np.ones(7, dtype=bool)
        for k, a in enumerate(items):
            p = np.exp(g[r, a]) / np.exp(g[r, free]).sum()
            assert grp["propensity"].to_numpy()[k] == pytest.approx(p, rel=1e-10)
            free[a] = False


def test_logged_lists_follow_the_plackett_luce_policy():
    # no per-request noise: every request of a segment has the same PL scores, so slot frequencies pool
    n = 60_000
    sim = make_catalogue_slate_logs(n_requests=n, n_items=6, list_length=2, n_topics=3, n_segments=1,
                                    request_noise=0.0, seed=8, keep_logging_scores=True)
    e = np.exp(sim.logging_scores[0])
    p1 = e / e.sum()
    items = sim.logs["item_id"].to_numpy().reshape(n, 2)
    freq1 = np.bincount(items[:, 0], minlength=6) / n
    assert np.all(np.abs(freq1 - p1) < 4 * np.sqrt(p1 * (1 - p1) / n))
    # second slot given the first: p(b | a) = e_b / (E - e_a)
    p2 = (p1[:, None] * e[None, :] / (e.sum() - e[:, None]))
    np.fill_diagonal(p2, 0.0)
    freq2 = np.zeros((6, 6))
    np.add.at(freq2, (items[:, 0], items[:, 1]), 1.0 / n)
    assert np.all(np.abs(freq2 - p2) < 4 * np.sqrt(p2 * (1 - p2) / n) + 1e-12)


def test_rips_and_cascade_dr_unbiased_over_seeds():
    """The mean over several small logs of (estimate - exact truth) is within 4 of its standard errors."""
    errs = {"rips": [], "cascade_dr": []}
    for seed in range(20):
        sim = make_catalogue_slate_logs(n_requests=800, n_items=200, list_length=3, n_topics=8, n_segments=4,
                                        seed=seed, world_seed=0)
        res = evaluate(sim.logs, sim.target, estimators=["rips", "cascade_dr"], schema=SCHEMA, target_kind="topk",
                       n_folds=2, seed=seed)
        for e in errs:
            errs[e].append(res.get(e).estimate - sim.truth["value_per_impression"])
    for e, d in errs.items():
        d = np.asarray(d)
        assert abs(d.mean()) < 4 * d.std(ddof=1) / np.sqrt(d.size), (e, d)


def test_cli_simulate_writes_files_and_its_ope_line_runs(tmp_path):
    runner = CliRunner()
    out = tmp_path / "sim"
    r = runner.invoke(app, ["simulate", "--kind", "catalogue-slates", "--out", str(out), "--n-requests", "3000",
                            "--n-items", "400", "--list-length", "3", "--n-topics", "12", "--seed", "1"])
    assert r.exit_code == 0, r.output
    for f in ("logs.parquet", "catalogue.csv", "target.parquet", "truth.json"):
        assert (out / f).exists(), f
    truth = json.loads((out / "truth.json").read_text())
    logs = pd.read_parquet(out / "logs.parquet")
    cat = pd.read_csv(out / "catalogue.csv")
    tgt = pd.read_parquet(out / "target.parquet")
    assert len(logs) == 9000 and set(logs["position"]) == {0, 1, 2}
    assert list(cat.columns[:2]) == ["item_id", "title"] and len(cat) == 400 and cat["title"].str.len().min() > 0
    assert set(logs["item_id"]) <= set(cat["item_id"])
    assert list(tgt.columns) == ["request_id", "item_id", "score"] and len(tgt) == 3000 * 400
    assert f"{truth['value_per_impression']:.6f}" in r.output
    line = next(x for x in r.output.splitlines() if x.startswith("causalrec ope "))
    args = shlex.split(line)[1:]
    assert "--target-kind" in args and args[args.index("--target-kind") + 1] == "topk"
    r2 = runner.invoke(app, args + ["--quiet"])
    assert r2.exit_code == 0, r2.output
    res = json.loads((out / "ope.json").read_text())
    rows = {e["estimator"]: e for e in res["estimates"]} if isinstance(res["estimates"], list) else None
    assert rows is not None and {"rips", "cascade_dr"} <= set(rows)
    v = truth["value_per_impression"]
    for e in ("rips", "cascade_dr"):
        row = rows[e]
        assert 0 < row["se"] < 0.05 and row["ci_low"] < row["estimate"] < row["ci_high"]
        # one seed: a loose smoke check only (unbiasedness is the multi-seed test above)
        assert abs(row["estimate"] - v) < 5 * row["se"], (e, row, v)


def test_cli_simulate_rejects_unknown_kind_and_bad_sizes(tmp_path, capsys):
    capsys.readouterr()
    assert main(["simulate", "--kind", "slates-please", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--kind" in err and "catalogue-slates" in err and "fix:" in err, err
    assert main(["simulate", "--kind", "catalogue-slates", "--out", str(tmp_path / "b"), "--n-items", "3",
                 "--list-length", "5"]) == 2
    err = capsys.readouterr().err
    assert "list_length" in err and "fix:" in err, err
    assert not (tmp_path / "b" / "logs.parquet").exists()
