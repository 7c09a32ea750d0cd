"""``causalrec.uplift.estimate`` and ``causalrec uplift`` end to end (small data, fast models)."""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from causalrec.cli import main
from causalrec.errors import InputError
from causalrec.simulate import simulate_logs
from causalrec.uplift import UpliftResult, estimate


def confounded_frame(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    e = 1 / (1 + np.exp(-(0.8 * X[:, 0] - 0.5 * X[:, 1])))
    t = (rng.random(n) < e).astype(int)
    y = 1.0 + 1.5 * X[:, 0] + X[:, 1] - 0.5 * X[:, 2] + 2.0 * t + rng.normal(size=n)
    return pd.DataFrame({"user_id": np.arange(n) // 3, "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2],
                         "exposed": t, "revenue": y})


def linear_models():
    return dict(propensity_model=LogisticRegression(max_iter=1000), outcome_model=LinearRegression())


@pytest.fixture(scope="module")
def encoder_dir(tiny_encoder_dir):
    """The shared tiny random BERT (tests/conftest.py): every text path, in milliseconds."""
    return tiny_encoder_dir


@pytest.fixture(scope="module")
def sim():
    return simulate_logs(600, seed=1)


def test_covariate_adjustment_recovers_ate_naive_does_not():
    df = confounded_frame()
    r = estimate(df, treatment="exposed", outcome="revenue", covariates=["x1", "x2", "x3"],
                 methods=("naive", "ipw", "aipw", "dml"), n_folds=3, dml_effect_modifiers=0, **linear_models())
    assert isinstance(r, UpliftResult)
    for m in ("ipw", "aipw", "dml"):
        e = r.get(m, "ate")
        assert e.ci_low <= 2.0 <= e.ci_high, (m, e)
    naive = r.get("naive", "ate")
    assert naive.ci_low > 2.0 + 0.3
    assert r.diagnostics["smd_max_after"] < r.diagnostics["smd_max_before"]
    assert r.diagnostics["share_clipped"] == 0.0
    nu = r.nuisance
    for k in ("e_hat", "mu0", "mu1", "X", "t", "y", "groups"):
        assert k in nu
    assert nu["X"].shape == (len(df), 3) and nu["e_hat"].shape == (len(df),)
    assert df.columns.tolist() == ["user_id", "x1", "x2", "x3", "exposed", "revenue"]  # input untouched


def test_json_shape():
    df = confounded_frame(n=900, seed=1)
    r = estimate(df, treatment="exposed", outcome="revenue", covariates=["x1", "x2"],
                 methods=("naive", "aipw"), n_folds=3, **linear_models())
    d = json.loads(r.to_json())
    assert d["command"] == "uplift" and d["n_rows"] == 900
    assert {"causalrec_version", "estimates", "diagnostics", "warnings", "config", "estimand"} <= set(d)
    targets = {(e["estimator"], e["target"]) for e in d["estimates"]}
    assert targets == {("naive", "ate"), ("naive", "att"), ("aipw", "ate"), ("aipw", "att")}
    for e in d["estimates"]:
        assert {"estimate", "se", "ci_low", "ci_high", "ci_level"} <= set(e)
        assert e["ci_low"] <= e["estimate"] <= e["ci_high"]
    assert d["diagnostics"]["ess"] > 0 and "propensity_min" in d["diagnostics"]
    assert d["config"]["n_folds"] == 3


def test_binary_treatment_is_validated(tmp_path):
    df = confounded_frame(n=100)
    df.loc[3, "exposed"] = 2
    with pytest.raises(InputError, match="exposed"):
        estimate(df, treatment="exposed", outcome="revenue", covariates=["x1"], **linear_models())
    path = tmp_path / "logs.csv"
    df.to_csv(path, index=False)
    assert main(["uplift", str(path), "--treatment", "exposed", "--outcome", "revenue",
                 "--covariates", "x1", "--method", "naive"]) == 2
    assert main(["uplift", str(path), "--treatment", "nope", "--outcome", "revenue", "--method", "naive"]) == 2
    one_arm = confounded_frame(n=100).assign(exposed=1)
    with pytest.raises(InputError, match="treated"):
        estimate(one_arm, treatment="exposed", outcome="revenue", methods=("naive",))


def test_bad_options_are_input_errors():
    df = confounded_frame(n=100)
    with pytest.raises(InputError, match="method"):
        estimate(df, treatment="exposed", outcome="revenue", methods=("magic",))
    with pytest.raises(InputError, match="covariate"):
        estimate(df, treatment="exposed", outcome="revenue", features="covariates", methods=("aipw",),
                 **linear_models())
    with pytest.raises(InputError, match="text"):
        estimate(df, treatment="exposed", outcome="revenue", features="text", methods=("aipw",),
                 **linear_models())


def test_trimming_reports_share_and_estimand():
    df = confounded_frame(n=3000, seed=2)
    r = estimate(df, treatment="exposed", outcome="revenue", covariates=["x1", "x2", "x3"],
                 methods=("aipw",), n_folds=3, trim=0.2, **linear_models())
    share = r.diagnostics["share_trimmed"]
    assert 0 < share < 0.5
    assert "overlap population" in r.estimand and any("trimmed" in w for w in r.warnings)
    assert r.nuisance["keep"].sum() == len(r.nuisance["t"]) == round(3000 * (1 - share))


def test_text_features_with_tiny_encoder_and_torch_models(encoder_dir, sim):
    from causalrec.features import TextEmbedder
    from causalrec.models import OutcomeModel, PropensityModel

    emb = TextEmbedder(encoder_dir, device="cpu", cache_dir=False)
    logs = sim.observed()
    r = estimate(logs, features="text", user_text="user_text", item_text="item_text",
                 covariates=["item_price"], methods=("naive", "ipw", "aipw", "dml"), n_folds=2, embedder=emb,
                 propensity_model=PropensityModel(hidden_layer_sizes=(16,), max_epochs=5, device="cpu"),
                 outcome_model=OutcomeModel(hidden_layer_sizes=(16,), max_epochs=5, device="cpu"),
                 dml_effect_modifiers=2)
    d = emb.dim
    assert r.nuisance["X"].shape == (600, 3 * d + 1)
    assert r.config["features"] == "text" and r.config["embedding_dim"] == d
    assert {(e.estimator, e.target) for e in r.estimates} >= {("dml", "ate"), ("dml", "att"), ("aipw", "ate")}
    assert all(np.isfinite(e.estimate) and e.se > 0 for e in r.estimates)
    # rows of one user share a fold (grouped cross-fitting)
    folds = pd.Series(r.nuisance["folds"]).groupby(r.nuisance["groups"]).nunique()
    assert (folds == 1).all()


def test_item_catalog_join_matches_log_text(encoder_dir, sim):
    from causalrec.features import TextEmbedder

    emb = TextEmbedder(encoder_dir, device="cpu", cache_dir=False)
    logs = sim.observed()
    catalog = sim.items.rename(columns={"item_id": "sku"})
    kw = dict(treatment="treatment", outcome="outcome", methods=("aipw",), n_folds=2, embedder=emb, **linear_models())
    a = estimate(logs, item_text="item_text", user_text="user_text", **kw)
    b = estimate(logs.drop(columns=["item_text"]), items=catalog, item_key="sku", item_text="title",
                 user_text="user_text", **kw)
    np.testing.assert_allclose(a.nuisance["X"], b.nuisance["X"])
    bad = catalog.iloc[5:]
    with pytest.raises(InputError, match="catalogue"):
        estimate(logs, items=bad, item_key="sku", item_text="title", user_text="user_text", **kw)


def test_id_features(sim):
    r = estimate(sim.observed(), features="ids", methods=("aipw",), n_folds=2, **linear_models())
    assert r.config["features"] == "ids"
    assert r.nuisance["X"].shape[1] > 100


def test_cli_uplift_writes_json(tmp_path, sim):
    path = tmp_path / "logs.parquet"
    sim.observed().to_parquet(path)
    out = tmp_path / "r.json"
    rc = main(["uplift", str(path), "--treatment", "treatment", "--outcome", "outcome",
               "--covariates", "item_price,user_history_len", "--method", "naive,ipw,aipw",
               "--device", "cpu", "--n-folds", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["command"] == "uplift" and {e["estimator"] for e in d["estimates"]} == {"naive", "ipw", "aipw"}
    assert d["config"]["features"] == "covariates"


def test_cli_report_flag(tmp_path, sim):
    path = tmp_path / "logs.parquet"
    sim.observed().to_parquet(path)
    report = tmp_path / "r.html"
    args = ["uplift", str(path), "--treatment", "treatment", "--outcome", "outcome",
            "--covariates", "item_price", "--method", "naive,aipw", "--device", "cpu", "--n-folds", "2",
            "--report", str(report), "--quiet", "--no-refute", "--no-curves", "--cate", "none"]
    if importlib.util.find_spec("causalrec.report.uplift") is None:
        assert main(args) == 2 and not report.exists()
    else:
        assert main(args) == 0 and report.exists()


def test_cli_uplift_with_item_catalog_and_local_model(tmp_path, sim, encoder_dir, monkeypatch):
    monkeypatch.setenv("CAUSALREC_CACHE", str(tmp_path / "cache"))
    logs_path = tmp_path / "logs.parquet"
    sim.observed().drop(columns=["item_text"]).to_parquet(logs_path)
    items_path = tmp_path / "items.csv"
    sim.items.to_csv(items_path, index=False)
    out = tmp_path / "r.json"
    rc = main(["uplift", str(logs_path), "--treatment", "treatment", "--outcome", "outcome",
               "--user-text", "user_text", "--items", str(items_path), "--item-key", "item_id",
               "--item-text", "title", "--model", str(encoder_dir), "--method", "naive,aipw",
               "--device", "cpu", "--n-folds", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["config"]["features"] == "text" and d["config"]["item_key"] == "item_id"
    assert main(["uplift", str(logs_path), "--treatment", "treatment", "--outcome", "outcome",
                 "--items", str(items_path), "--item-text", "no_such_column", "--model", str(encoder_dir),
                 "--method", "aipw", "--device", "cpu"]) == 2


@pytest.fixture(scope="module")
def small_covariate_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("folds_cli") / "logs.parquet"
    confounded_frame(n=600, seed=4).to_parquet(path, index=False)
    return path


FOLD_ARGS = ["--treatment", "exposed", "--outcome", "revenue", "--covariates", "x1,x2,x3", "--method", "naive",
             "--device", "cpu", "--quiet"]


def _config(path):
    d = json.loads(path.read_text())["config"]
    return d["folds"], d["n_folds"]


def test_cli_folds_spelled_as_in_debias(small_covariate_log, tmp_path, capsys):
    """``--folds split|hash|auto`` and ``--n-folds N`` as in ``causalrec debias``; the old spellings
    (``--folds N``, ``--hash-folds``) give the same run and warn on stderr."""
    log = str(small_covariate_log)
    runs = {"new": ["--folds", "hash", "--n-folds", "3"], "old": ["--hash-folds", "--folds", "3"],
            "split": ["--folds", "split"], "default": []}
    for name, extra in runs.items():
        assert main(["uplift", log, *FOLD_ARGS, *extra, "--out", str(tmp_path / f"{name}.json")]) == 0
        err = capsys.readouterr().err
        assert ("deprecated" in err) == (name == "old"), name
        if name == "old":
            assert "--n-folds 3" in err and "--folds hash" in err
    assert _config(tmp_path / "new.json") == _config(tmp_path / "old.json") == ("hash", 3)
    assert _config(tmp_path / "split.json") == _config(tmp_path / "default.json") == ("split", 5)
    assert json.loads((tmp_path / "new.json").read_text())["estimates"] == \
        json.loads((tmp_path / "old.json").read_text())["estimates"]


@pytest.mark.parametrize("extra,needle", [
    (["--folds", "shuffle"], "unknown --folds"),
    (["--folds", "3", "--n-folds", "4"], "disagree"),
    (["--hash-folds", "--folds", "split"], "contradicts"),
])
def test_cli_bad_folds_exit_2(small_covariate_log, capsys, extra, needle):
    assert main(["uplift", str(small_covariate_log), *FOLD_ARGS, *extra]) == 2
    assert needle in capsys.readouterr().err
