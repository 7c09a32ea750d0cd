"""`causalrec rank train/eval` end to end with the tiny encoder."""

import json

import numpy as np
import pandas as pd
import pytest

from causalrec.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    users = np.array(["user likes jazz piano", "user likes coffee tea", "user likes running shoes"])
    items = np.array(["jazz piano", "coffee tea", "running shoes", "red lamp"])
    n_req = 60
    u = np.repeat(rng.integers(0, 3, n_req), 4)
    i = np.tile(np.arange(4), n_req)
    rel = np.where(u == i, 0.9, 0.1)
    d = tmp_path_factory.mktemp("rank")
    train = pd.DataFrame({"request_id": np.repeat(np.arange(n_req), 4), "user_text": users[u],
                          "item_text": items[i], "click": rng.binomial(1, rel), "w": rng.uniform(0.5, 2, u.size),
                          "true_relevance": rel})
    train.to_parquet(d / "train.parquet", index=False)
    # randomised logs: one impression per row, item uniform over 4, 2 positions
    n = 400
    uu, ii, pp = rng.integers(0, 3, n), rng.integers(0, 4, n), rng.integers(0, 2, n)
    logs = pd.DataFrame({"user_text": users[uu], "item_text": items[ii], "item_id": ii, "position": pp,
                         "propensity": 0.25, "outcome": rng.binomial(1, np.where(uu == ii, 0.8, 0.05))})
    logs.to_csv(d / "random.csv", index=False)
    return d


def test_rank_train_and_eval_known_relevance(data, tiny_encoder_dir, tmp_path, capsys):
    model = tmp_path / "m"
    rc = main(["rank", "train", str(data / "train.parquet"), "--label", "click", "--weight", "w",
               "--model", str(tiny_encoder_dir), "--epochs", "1", "--max-length", "16", "--device", "cpu",
               "--out", str(model)])
    assert rc == 0, capsys.readouterr().err
    assert (model / "model.safetensors").exists() and (model / "train_history.json").exists()
    out = tmp_path / "r.json"
    rc = main(["rank", "eval", str(model), str(data / "train.parquet"), "--relevance", "true_relevance",
               "--k", "2,4", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    d = json.loads(out.read_text())
    assert d["command"] == "rank eval"
    targets = {e["target"] for e in d["estimates"]}
    assert targets == {"ndcg@2", "recall@2", "ndcg@4", "recall@4"}
    for e in d["estimates"]:
        assert e["ci_low"] <= e["estimate"] <= e["ci_high"] and e["se"] >= 0


def test_rank_eval_policy_value_on_randomised_logs(data, tiny_encoder_dir, tmp_path, capsys):
    model = tmp_path / "m"
    assert main(["rank", "train", str(data / "train.parquet"), "--label", "click", "--objective", "pairwise",
                 "--model", str(tiny_encoder_dir), "--epochs", "1", "--max-length", "16", "--out", str(model)]) == 0
    out = tmp_path / "v.json"
    rc = main(["rank", "eval", str(model), str(data / "random.csv"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    d = json.loads(out.read_text())
    ests = {e["estimator"]: e for e in d["estimates"]}
    assert {"ips", "snips", "dr"} <= set(ests)
    assert all(e["target"] == "policy_value" and e["ci_low"] <= e["ci_high"] for e in ests.values())


def test_rank_bad_inputs_exit_2(data, tiny_encoder_dir, tmp_path, capsys):
    assert main(["rank", "train", str(data / "train.parquet"), "--label", "nope", "--model", str(tiny_encoder_dir),
                 "--out", str(tmp_path / "m")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["rank", "eval", str(tmp_path), str(data / "train.parquet"), "--out", str(tmp_path / "r.json")]) == 2
    assert "ranker" in capsys.readouterr().err
    assert main(["rank", "train", str(data / "train.parquet"), "--label", "click", "--objective", "listnet",
                 "--model", str(tiny_encoder_dir), "--out", str(tmp_path / "m")]) == 2


def test_rank_train_epochs_zero_and_eval_side_by_side(data, tiny_encoder_dir, tmp_path, capsys):
    zero, trained = tmp_path / "zero_shot", tmp_path / "trained"
    base = ["rank", "train", str(data / "train.parquet"), "--label", "click", "--model", str(tiny_encoder_dir),
            "--max-length", "16", "--device", "cpu"]
    assert main(base + ["--epochs", "0", "--out", str(zero)]) == 0
    assert "zero-shot" in capsys.readouterr().out
    assert main(base + ["--epochs", "2", "--val-label", "true_relevance", "--out", str(trained)]) == 0
    assert "chosen epoch" in capsys.readouterr().out
    hist = json.loads((trained / "train_history.json").read_text())
    assert [r["epoch"] for r in hist["val_curve"]] == [0, 1, 2] and hist["best_epoch"] in (0, 1, 2)
    out = tmp_path / "both.json"
    rc = main(["rank", "eval", str(zero), str(trained), str(data / "train.parquet"), "--relevance",
               "true_relevance", "--k", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "zero_shot" in printed and "trained" in printed and "side by side" in printed
    d = json.loads(out.read_text())
    models = {e["model"] for e in d["estimates"]}
    assert models == {"zero_shot", "trained"}
    assert {e["target"] for e in d["estimates"] if e["model"] == "zero_shot"} == {"ndcg@2", "recall@2"}


def test_rank_train_click_model_one_based_positions(data, tiny_encoder_dir, tmp_path, capsys):
    df = pd.read_parquet(data / "train.parquet")
    df["slot"] = df.groupby("request_id").cumcount() + 1
    path = tmp_path / "clicks.parquet"
    df.to_parquet(path, index=False)
    args = ["rank", "train", str(path), "--label", "click", "--objective", "click_model", "--position", "slot",
            "--model", str(tiny_encoder_dir), "--epochs", "1", "--max-length", "16", "--out", str(tmp_path / "m")]
    assert main(args) == 2
    assert "--position-base 1" in capsys.readouterr().err
    assert main(args + ["--position-base", "1", "--val-label", "true_relevance"]) == 0
    cfg = json.loads((tmp_path / "m" / "ranker_config.json").read_text())
    assert len(cfg["meta"]["examination"]) == 4 and cfg["meta"]["examination"][0] == 1.0


def test_rank_eval_warns_when_models_truncate_differently(data, tiny_encoder_dir, tmp_path, capsys):
    base = ["rank", "train", str(data / "train.parquet"), "--label", "click", "--model", str(tiny_encoder_dir),
            "--epochs", "0", "--device", "cpu"]
    for name, limit in (("a16", "16"), ("b16", "16"), ("c8", "8")):
        assert main(base + ["--max-length", limit, "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    ev = ["rank", "eval"]
    tail = [str(data / "train.parquet"), "--relevance", "true_relevance", "--k", "2"]
    out = tmp_path / "same.json"
    assert main(ev + [str(tmp_path / "a16"), str(tmp_path / "b16")] + tail + ["--out", str(out)]) == 0
    assert not any("token limits" in w for w in json.loads(out.read_text())["warnings"])
    out = tmp_path / "mixed.json"
    assert main(ev + [str(tmp_path / "a16"), str(tmp_path / "c8")] + tail + ["--out", str(out)]) == 0
    warned = [w for w in json.loads(out.read_text())["warnings"] if "token limits" in w]
    assert len(warned) == 1 and "a16=16" in warned[0] and "c8=8" in warned[0]


def test_rank_train_click_model_with_a_fixed_examination(data, tiny_encoder_dir, tmp_path, capsys):
    df = pd.read_parquet(data / "train.parquet")
    df["slot"] = df.groupby("request_id").cumcount()
    path = tmp_path / "clicks.parquet"
    df.to_parquet(path, index=False)
    base = ["rank", "train", str(path), "--label", "click", "--objective", "click_model", "--position", "slot",
            "--model", str(tiny_encoder_dir), "--epochs", "1", "--max-length", "16"]
    curve = [1.0, 0.5, 0.4, 0.25]
    assert main(base + ["--examination", "1,0.5,0.4,0.25", "--out", str(tmp_path / "a")]) == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "a" / "ranker_config.json").read_text())["meta"]
    np.testing.assert_allclose(meta["examination"], curve, rtol=1e-6)
    assert meta["examination_fixed"] is True
    hist = json.loads((tmp_path / "a" / "train_history.json").read_text())
    assert "rho_k" in hist["val_gains"]  # held-out clicks / rho_k, not raw clicks
    assert all("val_nll" in r for r in hist["val_curve"])  # selected on the held-out click log-likelihood
    assert main(base[:-4] + ["--epochs", "3", "--max-length", "16", "--patience", "1", "--select-by", "dcg",
                             "--examination", "1,0.5,0.4,0.25", "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "train_history.json").read_text())["config"]["patience"] == 1
    # the summary JSON of `causalrec debias` (examination.positions records, here out of order)
    summary = {"command": "debias", "examination": {"method": "randomized", "positions": [
        {"position": k, "examination": v, "se": 0.01} for k, v in reversed(list(enumerate(curve)))]}}
    (tmp_path / "debias.json").write_text(json.dumps(summary))
    assert main(base + ["--examination", str(tmp_path / "debias.json"), "--out", str(tmp_path / "b")]) == 0
    meta_b = json.loads((tmp_path / "b" / "ranker_config.json").read_text())["meta"]
    np.testing.assert_allclose(meta_b["examination"], curve, rtol=1e-6)
    capsys.readouterr()
    # errors: another objective, not numbers, too few slots, a missing file
    assert main(["rank", "train", str(path), "--label", "click", "--model", str(tiny_encoder_dir), "--epochs", "1",
                 "--examination", "1,0.5", "--out", str(tmp_path / "c")]) == 2
    assert "--objective click_model" in capsys.readouterr().err
    assert main(base + ["--examination", "1,half", "--out", str(tmp_path / "d")]) == 2
    assert "not a list of numbers" in capsys.readouterr().err
    assert main(base + ["--examination", "1,0.5", "--out", str(tmp_path / "e")]) == 2
    assert "examination must be 4 positive values" in capsys.readouterr().err
    assert main(base + ["--examination", str(tmp_path / "missing.json"), "--out", str(tmp_path / "f")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_rank_train_click_model_default_epochs_are_an_early_stopped_budget(data, tiny_encoder_dir, tmp_path,
                                                                          capsys):
    df = pd.read_parquet(data / "train.parquet")
    df["slot"] = df.groupby("request_id").cumcount()
    path = tmp_path / "clicks.parquet"
    df.to_parquet(path, index=False)
    args = ["rank", "train", str(path), "--label", "click", "--objective", "click_model", "--position", "slot",
            "--model", str(tiny_encoder_dir), "--max-length", "16", "--examination", "1,0.5,0.4,0.25",
            "--out", str(tmp_path / "m")]
    assert main(args) == 0, capsys.readouterr().err
    hist = json.loads((tmp_path / "m" / "train_history.json").read_text())
    assert hist["config"]["epochs"] == 30 and hist["config"]["patience"] == 3
    assert hist["config"]["ema_epochs"] == 2.0  # the click model validates and saves averaged weights
    assert hist["config"]["refit"] is True
    meta = json.loads((tmp_path / "m" / "ranker_config.json").read_text())["meta"]
    # refit on every row for the chosen epochs, unless the held-out lists kept the zero-shot scorer
    assert meta.get("refit", False) == (hist["best_epoch"] > 0) == (len(hist["refit_losses"]) > 0)
    assert len(hist["val_curve"]) <= 31  # epoch 0 (zero-shot) plus at most the budget
    # an explicit --epochs keeps its meaning: that many passes, no early stop unless asked
    assert main(args[:-1] + [str(tmp_path / "n"), "--epochs", "2"]) == 0
    hist_n = json.loads((tmp_path / "n" / "train_history.json").read_text())
    assert hist_n["config"]["epochs"] == 2 and hist_n["config"]["patience"] is None
    assert main(args[:-1] + [str(tmp_path / "r"), "--epochs", "1", "--ema-epochs", "0"]) == 0
    meta_r = json.loads((tmp_path / "r" / "ranker_config.json").read_text())["meta"]
    assert meta_r["ema_epochs"] == 0.0
    # with no held-out lists nothing can stop it early: the fixed 5 passes
    assert main(args[:-1] + [str(tmp_path / "v"), "--val-share", "0"]) == 0
    hist_v = json.loads((tmp_path / "v" / "train_history.json").read_text())
    assert hist_v["config"]["epochs"] == 5 and hist_v["config"]["patience"] is None


def test_rank_train_click_model_exam_context(data, tiny_encoder_dir, tmp_path, capsys):
    df = pd.read_parquet(data / "train.parquet")
    df["slot"] = df.groupby("request_id").cumcount()
    df["device"] = np.where(df["request_id"].astype("category").cat.codes % 2 == 0, "mobile", "desktop")
    path = tmp_path / "clicks.parquet"
    df.to_parquet(path, index=False)
    args = ["rank", "train", str(path), "--label", "click", "--objective", "click_model", "--position", "slot",
            "--model", str(tiny_encoder_dir), "--epochs", "1", "--max-length", "16", "--out", str(tmp_path / "m")]
    assert main(args + ["--exam-context", "device"]) == 0
    by = json.loads((tmp_path / "m" / "ranker_config.json").read_text())["meta"]["examination_by_context"]
    assert sorted(by) == ["desktop", "mobile"] and all(v[0] == 1.0 and len(v) == 4 for v in by.values())
    capsys.readouterr()
    assert main(args + ["--exam-context", "no_such_column"]) == 2
    assert "--exam-context" in capsys.readouterr().err
