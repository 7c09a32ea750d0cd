"""``estimate`` / ``causalrec uplift`` with user histories, logged propensities, head choice, text clusters."""

import json

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from causalrec.cli import main
from causalrec.errors import InputError
from causalrec.simulate import simulate_logs
from causalrec.uplift import estimate


@pytest.fixture(scope="module")
def logs():
    return simulate_logs(600, seed=2, catalog_seed=0, n_users=150, n_items=60).observed()


@pytest.fixture(scope="module")
def embedder(tiny_encoder_dir):
    from causalrec.features import TextEmbedder

    return TextEmbedder(model=tiny_encoder_dir, device="cpu", progress=False)


def fast_models():
    return dict(propensity_model=LogisticRegression(max_iter=300), outcome_model=LinearRegression())


def test_history_mean_pooling_and_joined_string(logs, embedder):
    r = estimate(logs, treatment="treatment", outcome="outcome", user_history="user_text", history_sep=" | ",
                 item_text="item_text", methods=("aipw",), n_folds=2, embedder=embedder, **fast_models())
    d = embedder.dim
    assert r.config["user_representation"].startswith("history (mean")
    assert r.nuisance["X"].shape[1] == 3 * d  # [u, v, u*v]: the history column is not embedded joined too
    # the user block is the mean of the history items' vectors
    hist = logs["user_text"].iloc[0].split(" | ")
    expected = embedder.encode(hist).mean(axis=0)
    np.testing.assert_allclose(r.nuisance["X"][0, :d], expected, rtol=1e-4, atol=1e-5)
    # a list column gives the same features as the separator
    lists = logs.assign(hist=logs["user_text"].str.split(" | ", regex=False)).drop(columns="user_text")
    r2 = estimate(lists, treatment="treatment", outcome="outcome", user_history="hist", item_text="item_text",
                  methods=("aipw",), n_folds=2, embedder=embedder, **fast_models())
    np.testing.assert_allclose(r2.nuisance["X"], r.nuisance["X"], rtol=1e-5, atol=1e-6)
    assert r2.get("aipw", "ate").estimate == pytest.approx(r.get("aipw", "ate").estimate, abs=1e-6)


def test_text_clusters_and_attention(logs, embedder):
    r = estimate(logs, treatment="treatment", outcome="outcome", user_history="user_text", history_sep=" | ",
                 item_text="item_text", text_clusters=4, history_pooling="attention", methods=("aipw",),
                 n_folds=2, embedder=embedder, **fast_models())
    X = r.nuisance["X"]
    assert r.config["text_clusters_k"] == 4 and X.shape[1] == 3 * 4
    np.testing.assert_allclose(X[:, 4:8].sum(axis=1), 1.0, atol=1e-5)  # item memberships sum to one


def test_logged_propensity_skips_model(logs, embedder):
    r = estimate(logs, treatment="treatment", outcome="outcome", user_history="user_text", history_sep=" | ",
                 item_text="item_text", propensity="propensity", methods=("ipw", "aipw", "dml"), n_folds=2,
                 embedder=embedder, dml_effect_modifiers=0, **fast_models())
    e = np.clip(logs["propensity"].to_numpy(), 0.01, 0.99)
    np.testing.assert_allclose(r.nuisance["e_hat"], e)
    assert r.config["propensity_model"].startswith("logged column")
    t, y = logs["treatment"].to_numpy(), logs["outcome"].to_numpy(float)
    w1, w0 = t / e, (1 - t) / (1 - e)
    ipw = (w1 * y).sum() / w1.sum() - (w0 * y).sum() / w0.sum()  # Hajek, on the logged propensities
    assert r.get("ipw", "ate").estimate == pytest.approx(ipw, rel=1e-9)
    assert np.isfinite(r.get("dml", "ate").estimate)


def test_heads_auto_reports_choice_and_losses(logs, embedder):
    r = estimate(logs, treatment="treatment", outcome="outcome", user_history="user_text", history_sep=" | ",
                 item_text="item_text", heads="auto", text_clusters=4, methods=("aipw",), n_folds=2,
                 embedder=embedder, device="cpu")
    sel = r.diagnostics["nuisance_selection"]
    # on a cluster design the L2 logistic propensity competes too (flat candidate names)
    assert set(sel["propensity"]["losses"]) == {"mlp", "logistic_l2", "bilinear"}
    for part in (sel["outcome"]["mu0"], sel["outcome"]["mu1"]):
        assert set(part["losses"]) == {"mlp", "bilinear"}
    for part in (sel["propensity"], sel["outcome"]["mu0"], sel["outcome"]["mu1"]):
        losses = part["losses"]
        assert part["chosen"] == min(losses, key=losses.get)


def test_cluster_design_adds_logistic_propensity_candidate(logs, embedder):
    """Default models on text clusters: e is the lower cross-fitted log loss of the MLP and the L2
    logistic (the chosen candidate's out-of-fold predictions are the ones used); mu stays the MLP;
    a passed propensity model or a design without clusters gets no extra candidate."""
    from causalrec.models.crossfit import log_loss

    kw = dict(treatment="treatment", outcome="outcome", user_history="user_text", history_sep=" | ",
              item_text="item_text", methods=("aipw",), n_folds=2, embedder=embedder, device="cpu")
    r = estimate(logs, text_clusters=4, **kw)
    sel = r.diagnostics["nuisance_selection"]
    losses = sel["propensity"]["losses"]
    assert set(losses) == {"mlp", "logistic_l2"}
    cands = r.nuisance["crossfit"].candidates["e"]
    t = logs["treatment"].to_numpy()
    for name, pred in cands.items():  # the reported losses are the out-of-fold log losses
        assert losses[name] == pytest.approx(log_loss(t, pred), rel=1e-9)
    chosen = min(losses, key=losses.get)
    assert sel["propensity"]["chosen"] == chosen
    np.testing.assert_allclose(r.nuisance["e_raw"], cands[chosen])
    assert list(sel["outcome"]["mu1"]["losses"]) == ["OutcomeModel"]  # one outcome model: the MLP
    assert r.config["outcome_model"].startswith("OutcomeModel(")
    no_clusters = estimate(logs, **kw)
    assert "nuisance_selection" not in no_clusters.diagnostics
    passed = estimate(logs, text_clusters=4, propensity_model=LogisticRegression(max_iter=300), **kw)
    assert "nuisance_selection" not in passed.diagnostics  # the user's model, no candidates
    assert passed.config["propensity_model"].startswith("LogisticRegression(")


@pytest.mark.parametrize("kwargs, column", [
    ({"user_text": "nope"}, "nope"),
    ({"item_text": "title_missing"}, "title_missing"),
    ({"user_history": "hist_missing"}, "hist_missing"),
    ({"propensity": "p_missing"}, "p_missing"),
])
def test_named_columns_must_exist(logs, kwargs, column):
    with pytest.raises(InputError) as exc:
        estimate(logs, treatment="treatment", outcome="outcome", methods=("aipw",), **kwargs)
    assert exc.value.column == column


def test_bad_propensity_and_empty_history(logs, embedder):
    bad = logs.assign(p=np.where(np.arange(len(logs)) == 3, 1.0, 0.5))
    with pytest.raises(InputError) as exc:
        estimate(bad, treatment="treatment", outcome="outcome", propensity="p", methods=("ipw",),
                 embedder=embedder, **fast_models())
    assert exc.value.column == "p" and "(0, 1)" in str(exc.value)
    empty = logs.assign(h=[[] for _ in range(len(logs))])
    with pytest.raises(InputError) as exc:
        estimate(empty, treatment="treatment", outcome="outcome", user_history="h", item_text="item_text",
                 methods=("aipw",), embedder=embedder, **fast_models())
    assert exc.value.column == "h" and "empty for every row" in str(exc.value)


def test_cli_options_and_errors(logs, tiny_encoder_dir, tmp_path, capsys):
    path = tmp_path / "logs.csv"
    logs.to_csv(path, index=False)
    out = tmp_path / "r.json"
    code = main(["uplift", str(path), "--treatment", "treatment", "--outcome", "outcome", "--user-history",
                 "user_text", "--history-sep", " | ", "--item-text", "item_text", "--propensity", "propensity",
                 "--text-clusters", "4", "--text-cluster-weights", "mixture", "--method", "naive,aipw", "--n-folds", "2", "--model", str(tiny_encoder_dir),
                 "--device", "cpu", "--out", str(out), "--quiet"])
    assert code == 0
    res = json.loads(out.read_text())
    assert res["config"]["propensity"] == "propensity" and res["config"]["user_history"] == "user_text"
    assert res["config"]["text_cluster_weights"] == "mixture"
    for argv, col in ((["--user-text", "missing_col"], "missing_col"), (["--propensity", "user_id"], "user_id"),
                      (["--item-text", "title_missing"], "title_missing")):
        code = main(["uplift", str(path), "--treatment", "treatment", "--outcome", "outcome", *argv,
                     "--method", "aipw", "--quiet"])
        assert code == 2
        assert col in capsys.readouterr().err


def test_select_clusters_by_propensity_loss_matches_out_of_fold_log_loss():
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from causalrec.models.folds import make_folds
    from causalrec.uplift.estimate import select_clusters_by_propensity_loss

    rng = np.random.default_rng(0)
    n = 2000
    z = rng.normal(size=(n, 3))
    t = (rng.random(n) < 1 / (1 + np.exp(-1.5 * z[:, 0]))).astype(int)
    designs = {4: rng.normal(size=(n, 3)), 8: z}  # only k=8's design carries the confounder
    folds = make_folds(n, 3, stratify=t, random_state=0)
    k, rep = select_clusters_by_propensity_loss(designs, t, folds)
    assert k == 8 and rep["chosen"] == 8 and set(rep["losses"]) == {4, 8}
    for kk, X in designs.items():  # each loss is the out-of-fold log loss on the same folds
        oof = np.empty(n)
        for f in range(3):
            tr, te = folds != f, folds == f
            m = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(X[tr], t[tr])
            oof[te] = m.predict_proba(X[te])[:, 1]
        assert rep["losses"][kk] == pytest.approx(log_loss(t, oof), rel=1e-9)


def test_text_clusters_loss_uses_the_chosen_design(logs, embedder):
    from causalrec.uplift.estimate import CLUSTER_CANDIDATES

    r = estimate(logs, treatment="treatment", outcome="outcome", user_history="user_text", history_sep=" | ",
                 item_text="item_text", text_clusters="loss", methods=("aipw",), n_folds=2, embedder=embedder,
                 **fast_models())
    sel = r.config["text_cluster_selection"]
    assert set(sel["losses"]) <= set(CLUSTER_CANDIDATES) and len(sel["losses"]) >= 2
    assert sel["chosen"] == min(sel["losses"], key=sel["losses"].get) == r.config["text_clusters_k"]
    k = r.config["text_clusters_k"]
    assert r.nuisance["X"].shape[1] == 3 * k  # [u, v, u*v] of the chosen k


def test_text_clusters_loss_needs_the_treatment(logs, embedder):
    from causalrec.uplift.estimate import build_features

    with pytest.raises(InputError) as exc:  # build_features alone has no treatment to choose k with
        build_features(logs, item_text="item_text", embedder=embedder, text_clusters="loss",
                       history=logs["user_text"], history_sep=" | ")
    assert exc.value.column == "text_clusters"


def test_cli_text_clusters_loss(logs, tiny_encoder_dir, tmp_path):
    path = tmp_path / "logs.csv"
    logs.to_csv(path, index=False)
    out = tmp_path / "r.json"
    code = main(["uplift", str(path), "--treatment", "treatment", "--outcome", "outcome", "--user-history",
                 "user_text", "--history-sep", " | ", "--item-text", "item_text", "--text-clusters", "loss",
                 "--method", "aipw", "--n-folds", "2", "--model", str(tiny_encoder_dir), "--device", "cpu",
                 "--out", str(out), "--quiet"])
    assert code == 0
    cfg = json.loads(out.read_text())["config"]
    assert cfg["text_clusters"] == "loss"
    losses = cfg["text_cluster_selection"]["losses"]
    assert cfg["text_clusters_k"] == int(min(losses, key=losses.get))


def test_bilinear_head_is_unfloored_so_clip_and_share_clipped_are_the_estimators(logs, embedder):
    """The bilinear propensity head used to keep its own default floor (0.01): a user's clip below it
    did nothing and ``share_clipped`` was measured on already-floored values (always 0 at 0.01)."""
    kw = dict(treatment="treatment", outcome="outcome", user_text="user_text", item_text="item_text",
              heads="bilinear", methods=("aipw",), n_folds=2, embedder=embedder, device="cpu")
    r = estimate(logs, clip=0.001, **kw)
    assert "clip=None" in r.config["propensity_model"]
    e_raw, e_hat = r.nuisance["e_raw"], r.nuisance["e_hat"]
    np.testing.assert_allclose(e_hat, np.clip(e_raw, 0.001, 0.999))
    assert r.diagnostics["share_clipped"] == pytest.approx(np.mean((e_raw < 0.001) | (e_raw > 0.999)))
    # the raw propensities are not floored at the head's old 0.01 (the model's own floor is gone)
    r_hi = estimate(logs, clip=0.2, **kw)
    assert r_hi.diagnostics["share_clipped"] == pytest.approx(
        np.mean((r_hi.nuisance["e_raw"] < 0.2) | (r_hi.nuisance["e_raw"] > 0.8)))


def test_heads_shared_fits_one_joint_model(logs, embedder, tmp_path, tiny_encoder_dir):
    """``heads="shared"``: the DragonNet-style SharedTextNuisance gives e, mu0, mu1 (one joint fit per
    fold), its losses are reported, its e is unfloored (the estimator's clip applies), estimates finite."""
    from causalrec.models.crossfit import log_loss

    kw = dict(treatment="treatment", outcome="outcome", user_history="user_text", history_sep=" | ",
              item_text="item_text", heads="shared", methods=("ipw", "aipw", "dml"), n_folds=2,
              embedder=embedder, device="cpu", dml_effect_modifiers=0)
    r = estimate(logs, clip=0.001, **kw)
    assert r.config["heads"] == "shared"
    assert r.config["propensity_model"].startswith("SharedTextNuisance(")
    assert r.config["outcome_model"] == r.config["propensity_model"]
    sel = r.diagnostics["nuisance_selection"]
    assert sel["joint"] == "shared"
    for part in (sel["propensity"], sel["outcome"]["mu0"], sel["outcome"]["mu1"]):
        assert set(part["losses"]) == {"joint:shared"} and part["chosen"] == "joint:shared"
    t = logs["treatment"].to_numpy()
    assert sel["propensity"]["loss"] == pytest.approx(log_loss(t, r.nuisance["e_raw"]), rel=1e-9)
    e_raw = r.nuisance["e_raw"]
    np.testing.assert_allclose(r.nuisance["e_hat"], np.clip(e_raw, 0.001, 0.999))
    assert r.diagnostics["share_clipped"] == pytest.approx(np.mean((e_raw < 0.001) | (e_raw > 0.999)))
    for m in ("ipw", "aipw", "dml"):
        assert np.isfinite(r.get(m, "ate").estimate)
    # a logged propensity replaces the joint e (which then only trains the representation)
    lg = estimate(logs, propensity="propensity", **{**kw, "methods": ("aipw",)})
    np.testing.assert_allclose(lg.nuisance["e_hat"], np.clip(logs["propensity"].to_numpy(), 0.01, 0.99))
    assert "propensity" not in lg.diagnostics["nuisance_selection"]
    assert np.isfinite(lg.get("aipw", "ate").estimate)
    # auto does not include it (per-nuisance selection cannot score a joint fit)
    auto = estimate(logs, **{**kw, "heads": "auto", "methods": ("aipw",)})
    assert not any(k.startswith("joint:") for k in auto.diagnostics["nuisance_selection"]["propensity"]["losses"])

    path, out = tmp_path / "logs.csv", tmp_path / "r.json"
    logs.to_csv(path, index=False)
    code = main(["uplift", str(path), "--treatment", "treatment", "--outcome", "outcome", "--user-history",
                 "user_text", "--history-sep", " | ", "--item-text", "item_text", "--heads", "shared",
                 "--method", "aipw", "--n-folds", "2", "--model", str(tiny_encoder_dir), "--device", "cpu",
                 "--out", str(out), "--quiet"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["config"]["heads"] == "shared" and "SharedTextNuisance" in doc["config"]["propensity_model"]
    assert doc["diagnostics"]["nuisance_selection"]["outcome"]["mu1"]["chosen"] == "joint:shared"
    assert all(np.isfinite(e["estimate"]) for e in doc["estimates"])


def test_heads_shared_needs_user_and_item_text(logs, embedder):
    with pytest.raises(InputError) as err:  # a non-text design: tabular covariates
        estimate(logs, treatment="treatment", outcome="outcome", covariates=("user_history_len", "item_price"),
                 features="covariates", heads="shared", methods=("aipw",), n_folds=2, device="cpu")
    assert "heads='shared' needs user and item text" in str(err.value) and "--heads mlp" in err.value.fix
    with pytest.raises(InputError, match="heads='shared' needs user and item text"):  # item text only: no [u, v] blocks to share
        estimate(logs.drop(columns="user_text"), treatment="treatment", outcome="outcome", item_text="item_text", heads="shared",
                 methods=("aipw",), n_folds=2, embedder=embedder, device="cpu")
    with pytest.raises(InputError, match="jointly"):  # a passed model cannot be combined with the joint fit
        estimate(logs, treatment="treatment", outcome="outcome", user_text="user_text", item_text="item_text",
                 heads="shared", methods=("aipw",), n_folds=2, embedder=embedder, device="cpu",
                 propensity_model=LogisticRegression(max_iter=300))
