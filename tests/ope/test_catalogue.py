"""Catalogue inputs: bad input (exit 2, column named, the fix) and the CLI end to end with the packaged MiniLM."""

import json

import numpy as np
import pandas as pd
import pytest

from causalrec.cli import main
from causalrec.data import LogSchema
from causalrec.errors import InputError
from causalrec.ope import evaluate
from causalrec.ope.catalogue import Catalogue, cluster_grid, item_clusters
from causalrec.ope.catalogue_synthetic import make_catalogue_logs
from tests.ope.test_mips import _tables, _world

SCHEMA = LogSchema(outcome="click")


@pytest.fixture
def world():
    cat, emb, pi0, pie, g = _world()
    rng = np.random.default_rng(0)
    a = rng.choice(6, size=200, p=pi0)
    logs = pd.DataFrame({"item_id": a, "click": rng.random(200).round(), "propensity": pi0[a]})
    target, logging = _tables(pi0, pie)
    return dict(cat=cat, emb=emb, logs=logs, target=target, logging=logging)


def _run(w, **kw):
    args = dict(schema=SCHEMA, estimators=["ips", "mips"], items=w["cat"], logging_policy=w["logging"],
                embedder=w["emb"], embedding_clusters=3)
    args.update(kw)
    return evaluate(args.pop("logs", w["logs"]), args.pop("target", w["target"]), **args)


def test_logged_item_missing_from_the_catalogue(world):
    logs = world["logs"].copy()
    logs.loc[3, "item_id"] = 99
    with pytest.raises(InputError, match=r"(?s)missing from the item catalogue.*99.*fix"):
        _run(world, logs=logs)


def test_catalogue_item_without_text(world):
    cat = world["cat"].copy()
    cat.loc[2, "title"] = None
    with pytest.raises(InputError, match=r"(?s)'title'.*no text.*fix"):
        _run(world, items=cat)
    cat.loc[2, "title"] = "   "
    with pytest.raises(InputError, match="no text"):
        _run(world, items=cat)
    with pytest.raises(InputError, match="'name'"):
        _run(world, items=world["cat"], item_text="name")


def test_target_item_missing_from_the_catalogue(world):
    with pytest.raises(InputError, match="items of the target policy are missing from the item catalogue"):
        _run(world, items=world["cat"].iloc[:5])


def test_logging_table_gives_the_logged_item_probability_zero(world):
    lg = world["logging"].copy()
    item = int(world["logs"].item_id.iloc[0])
    lg.loc[lg.item_id == item, "prob"] = 0.0
    lg.loc[lg.item_id == (item + 1) % 6, "prob"] += world["logging"].prob[item]
    with pytest.raises(InputError, match=r"(?s)probability 0.*fix"):
        _run(world, logging_policy=lg)


def test_logging_table_disagrees_with_the_propensity(world):
    logs = world["logs"].copy()
    logs.loc[5, "propensity"] *= 1.2
    with pytest.raises(InputError, match=r"(?s)'propensity' disagree.*row 5.*fix"):
        _run(world, logs=logs)
    logs.loc[5, "propensity"] = world["logs"].propensity[5] * (1 + 1e-5)  # within the tolerance
    _run(world, logs=logs)


def test_logging_table_missing_a_logged_item_or_request(world):
    with pytest.raises(InputError, match="missing from the logging policy table"):
        _run(world, logging_policy=world["logging"].iloc[:-1].assign(prob=lambda t: t.prob / t.prob.sum()),
             items=world["cat"])
    logs = world["logs"].assign(request_id=np.arange(200))
    keyed = pd.concat([world["logging"].assign(request_id=r) for r in range(199)], ignore_index=True)
    with pytest.raises(InputError, match=r"(?s)the logging policy table has no probabilities for request.*199.*--logging-policy"):
        _run(world, logs=logs, logging_policy=keyed)


def test_mips_without_a_catalogue(world):
    with pytest.raises(InputError, match="need the item catalogue"):
        evaluate(world["logs"], world["target"], schema=SCHEMA, estimators=["mips"])


def test_cluster_grid_and_nested_ward_clusters():
    assert cluster_grid(2000, 5000)[0] == 128 and cluster_grid(2000, 5000)[-1] == 2
    assert max(cluster_grid(40, 100)) <= 10
    rng = np.random.default_rng(0)
    emb = np.repeat(np.eye(4), 10, axis=0) + 0.01 * rng.normal(size=(40, 4))
    lab4 = item_clusters(emb, 4)
    lab2 = item_clusters(emb, 2)
    truth = np.repeat(np.arange(4), 10)
    assert len(pd.crosstab(lab4, truth).to_numpy().nonzero()[0]) == 4  # exactly the groups
    assert (pd.crosstab(lab4, lab2).to_numpy() > 0).sum() == 4  # nested: each of the 4 inside one of the 2
    km = item_clusters(emb, 4, method="kmeans")
    assert len(pd.crosstab(km, truth).to_numpy().nonzero()[0]) == 4


def test_catalogue_from_a_file_with_duplicate_keys(tmp_path):
    p = tmp_path / "items.csv"
    pd.DataFrame({"item_id": [1, 1], "title": ["a", "b"]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="more than once"):
        Catalogue.from_table(p)


def test_catalogue_default_estimators(world):
    from causalrec.ope.evaluation import CATALOGUE_ESTIMATORS

    r = evaluate(world["logs"], world["target"], schema=SCHEMA, items=world["cat"], logging_policy=world["logging"],
                 embedder=world["emb"], embedding_clusters=3)
    assert [e.estimator for e in r.estimates] == list(CATALOGUE_ESTIMATORS)
    assert {"mips", "snmips", "offcem"} <= set(CATALOGUE_ESTIMATORS)


def test_cli_large_catalogue_with_minilm(tmp_path, capsys):
    sim = make_catalogue_logs(n_rows=600, n_items=60, n_topics=4, seed=1)
    for name, df in (("logs", sim.logs), ("items", sim.catalogue), ("target", sim.target), ("logging", sim.logging)):
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    args = ["ope", str(tmp_path / "logs.csv"), "--target", str(tmp_path / "target.csv"), "--logging-policy",
            str(tmp_path / "logging.csv"), "--items", str(tmp_path / "items.csv"), "--item-key", "item_id",
            "--item-text", "title", "--outcome", "click"]
    rc = main([*args, "--estimators", "ips,snips,mips,snmips,offcem", "--out", str(tmp_path / "r.json"),
               "--report", str(tmp_path / "r.html")])
    assert rc == 0
    js = json.loads((tmp_path / "r.json").read_text())
    names = [e["estimator"] for e in js["estimates"]]
    assert names == ["ips", "snips", "mips", "snmips", "offcem"]
    # without --estimators, --items brings the catalogue estimators (not dm,ips,snips,dr)
    assert main([*args, "--out", str(tmp_path / "d.json"), "--quiet"]) == 0
    assert [e["estimator"] for e in json.loads((tmp_path / "d.json").read_text())["estimates"]] == names
    sel = js["diagnostics"]["selection"]["mips"]
    assert sel["parameter"] == "clusters" and sel["chosen"] in [c["value"] for c in sel["candidates"]]
    assert js["estimates"][2]["clusters"] == sel["chosen"]
    assert js["config"]["logging_policy"].endswith("logging.csv")
    html = (tmp_path / "r.html").read_text()
    assert "SLOPE" in html and "Large catalogue" in html
    # bad input through the CLI: exit 2 and the column named
    bad = sim.catalogue.copy()
    bad.loc[0, "title"] = ""
    bad.to_csv(tmp_path / "bad_items.csv", index=False)
    capsys.readouterr()
    rc = main([*args[:7], str(tmp_path / "bad_items.csv"), *args[8:], "--estimators", "mips"])
    assert rc == 2
    assert "'title'" in capsys.readouterr().err


def _bad_logged_item(sim):
    logs = sim.logs.copy()
    logs.loc[4, "item_id"] = 9_999
    return dict(logs=logs)


def _bad_no_text(sim):
    items = sim.catalogue.copy()
    items.loc[items.item_id == sim.logs.item_id[0], "title"] = None
    return dict(items=items)


def _bad_zero_logging(sim):
    lg = sim.logging.copy()
    item = sim.logs.item_id[0]
    other = int(lg.item_id[lg.item_id != item].iloc[0])
    lg.loc[lg.item_id == other, "prob"] += float(lg.prob[lg.item_id == item].iloc[0])
    lg.loc[lg.item_id == item, "prob"] = 0.0
    return dict(logging=lg)


def _bad_propensity(sim):
    logs = sim.logs.copy()
    logs.loc[7, "propensity"] *= 1.01  # beyond the tolerance 1e-6 + 1e-3 p
    return dict(logs=logs)


@pytest.mark.parametrize("batch", [None, 150])
@pytest.mark.parametrize("make_bad, column, needle, fix", [
    (_bad_logged_item, "'item_id'", "items of the log are missing from the item catalogue", "--item-key"),
    (_bad_no_text, "'title'", "catalogue items have no text (e.g. items ", "give every item"),
    (_bad_zero_logging, "'prob'", "probability 0", "--logging-policy"),
    (_bad_propensity, "'propensity'", "disagree on 1 rows", "fix the propensity column"),
], ids=["logged-item-not-in-catalogue", "item-without-text", "logging-prob-0", "logging-vs-propensity"])
def test_cli_catalogue_bad_input_exits_2_naming_the_column_and_the_fix(tmp_path, capsys, make_bad, column, needle,
                                                                      fix, batch):
    sim = make_catalogue_logs(n_rows=400, n_items=40, n_topics=4, seed=2)
    files = dict(logs=sim.logs, items=sim.catalogue, target=sim.target, logging=sim.logging)
    files.update(make_bad(sim))
    for name, df in files.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    args = ["ope", str(tmp_path / "logs.csv"), "--target", str(tmp_path / "target.csv"), "--logging-policy",
            str(tmp_path / "logging.csv"), "--items", str(tmp_path / "items.csv"), "--item-key", "item_id",
            "--item-text", "title", "--outcome", "click", "--estimators", "mips", "--embedding-clusters", "4",
            "--quiet", *(["--batch-size", str(batch)] if batch else [])]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert column in err and needle in err and "fix:" in err and fix in err, err
    assert "np.int64" not in err and ("9999" in err or make_bad is not _bad_logged_item)  # ids as written
