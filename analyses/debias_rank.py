"""Naive vs corrected training labels for a ranker, judged on unbiased data.

(a) Simulator (``causalrec.simulate.simulate_logs``, 10 slots, exposure that
    follows the logging recommender's user-item affinity, examination
    ``(1 + k)^-1``): train the two-tower ranker on the logged (non-random)
    requests with naive click labels (every candidate a row), position-only
    IPS and DR labels on the shown lists (listwise, each click weighted by
    ``1 / rho_k``), and the two-tower click model on the shown rows' clicks,
    then NDCG@5/10 and recall@5 against the true
    relevance on fresh test requests, over several seeds. The examination curve
    is estimated from a separate randomised bucket (CTR ratio) and by regression-EM on
    the logged part, and compared with the truth.
(b) Open Bandit Dataset: fit a scorer on the Bernoulli-TS logs (biased), then
    estimate the value of its top-3 list per position on the uniform-random logs
    by IPS / SNIPS / DR (``causalrec.ope.evaluate``). OBD items have hashed
    categorical features, not text, so part (b) uses a feature-based scorer: the
    (weighted, corrected) click rate per item, shrunk towards the global rate.

Run: ``.venv/bin/python analyses/debias_rank.py`` (writes reports/debias_rank.md
and reports/debias_rank.json; ``DEBIAS_RANK_SEEDS=3`` for a quicker run; ``DEBIAS_RANK_SEED_BASE=100
DEBIAS_RANK_CATALOG_SEED=1 DEBIAS_RANK_OUT=/tmp/x`` for a held-out check on other seeds and another catalogue). ``--render-only``
re-renders the Markdown from the JSON of the last run. Sized for a loaded 2-core CPU:
see SIZES below.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = Path(os.environ.get("DEBIAS_RANK_OUT", str(ROOT / "reports")))  # smoke runs write elsewhere
sys.path.insert(0, str(ROOT))

from causalrec.data import LogSchema  # noqa: E402
from causalrec.debias import debias, examination_from_randomized, regression_em  # noqa: E402
from causalrec.report import Report  # noqa: E402
from causalrec.results import jsonable  # noqa: E402

SIZES = {
    "seeds": int(os.environ.get("DEBIAS_RANK_SEEDS", "5")),
    # a held-out check runs other seeds (and another catalogue draw) than the development ones, 0..seeds-1
    "seed_base": int(os.environ.get("DEBIAS_RANK_SEED_BASE", "0")),
    "catalog_seed": int(os.environ.get("DEBIAS_RANK_CATALOG_SEED", "0")),
    "train_rows": int(os.environ.get("DEBIAS_RANK_TRAIN_ROWS", "100000")),  # candidate rows (10 per request)
    "test_rows": int(os.environ.get("DEBIAS_RANK_TEST_ROWS", "3000")),
    "n_users": 1000,
    "n_items": 300,
    "n_positions": 10,
    "max_length": 32,
    "epochs": int(os.environ.get("DEBIAS_RANK_EPOCHS", "6")),
    "objective": os.environ.get("DEBIAS_RANK_OBJECTIVE", "listwise"),
    # the click model's epoch budget and early-stopping patience: it selects (and stops) on its own held-out
    # click log-likelihood (train_ranker select_by="auto"), so the budget is a ceiling, not a fixed length
    "two_tower_epochs": int(os.environ.get("DEBIAS_RANK_TT_EPOCHS", "30")),
    "two_tower_patience": int(os.environ.get("DEBIAS_RANK_TT_PATIENCE", "3")),
    "trainable_layers": 0,
    "batch_size": 32,
    "head_lr": 5e-4,
    "reg": 1e-3,
    "val_share": 0.2,
    "position_clip": 0.05,
    # DR's floor on rho_k: below it the outcome model carries the label (r_hat + (c - rho r_hat) / 0.2);
    # at the IPS floor of 0.05 (never binding here: min rho ~ 0.1) DR labels equal IPS labels exactly
    "dr_position_clip": float(os.environ.get("DEBIAS_RANK_DR_CLIP", "0.2")),
    "obd_em_bootstrap": 50,
    "obd_prior_rows": 20,
    "obd_top_k": (5, 20),
    "random_bucket_rows": 20000,
    "em_requests": int(os.environ.get("DEBIAS_RANK_EM_REQUESTS", "20000")),
    "em_slots": 5,
    # simulator examination (1 + k)^-position_bias; the logging recommender promotes titles for a reason
    # unrelated to relevance (simulate_logs logging_item_boost), so click-trained rankers inherit its bias
    "position_bias": float(os.environ.get("DEBIAS_RANK_POSITION_BIAS", "1.0")),
    "logging_item_boost": float(os.environ.get("DEBIAS_RANK_ITEM_BOOST", "2.0")),
    "em_position_bias": 0.8,
    "em_seeds": int(os.environ.get("DEBIAS_RANK_EM_SEEDS", "3")),
}
METHODS = ("naive", "ips", "dr")
RANKERS = ("zero_shot", "naive", "ips", "dr", "two_tower", "oracle")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class _CachedEmbedder:
    """``encode(texts)`` through the zero-shot ranker's tower and the study's shared state cache."""

    def __init__(self, ranker, cache: dict):
        self.ranker, self.cache = ranker, cache

    def encode(self, texts):
        return self.ranker.embed(list(texts), cache=self.cache)


def simulator_part(bottom_cache: dict) -> dict:
    from causalrec.features import design_matrix
    from causalrec.models import OutcomeModel
    from causalrec.ranking import (
        TrainConfig,
        TwoTowerRanker,
        per_request_metrics,
        ranking_estimates,
        train_ranker,
    )
    from causalrec.simulate import simulate_logs

    S = SIZES
    rows, label_rows, exam_rows, curve_rows = [], [], [], []
    schema = LogSchema(outcome="click")
    K = S["n_positions"]
    for seed in range(S["seed_base"], S["seed_base"] + S["seeds"]):
        t0 = time.time()
        pool = {"n_users": S["n_users"], "n_items": S["n_items"], "catalog_seed": S["catalog_seed"],
                "n_positions": K,
                "position_bias": S["position_bias"], "logging_item_boost": S["logging_item_boost"]}
        sim = simulate_logs(S["train_rows"], seed=seed, random_share=0.0, **pool)
        test = simulate_logs(S["test_rows"], seed=10_000 + seed, random_share=0.0, **pool).logs
        logged = sim.logs.reset_index(drop=True)
        truth_exam = np.asarray(sim.truth["examination"], dtype=float)
        # a dedicated randomised bucket (positions shuffled) run alongside the logging policy
        bucket = simulate_logs(S["random_bucket_rows"], seed=20_000 + seed, random_share=1.0, **pool).logs
        rnd = bucket[bucket.treatment == 1]
        pb_rand = examination_from_randomized(rnd.click.to_numpy(), rnd.position.to_numpy(), n_positions=K)
        for k in range(K):
            exam_rows.append({"seed": seed, "position": k, "truth": truth_exam[k],
                              "randomized": pb_rand.examination[k]})
        zero = TwoTowerRanker.from_encoder(None, max_length=S["max_length"], trainable_layers=0, seed=seed)
        # DR outcome features: the frozen MiniLM sentence vectors (the zero-shot tower), cached per text
        X = design_matrix(zero.embed(list(logged.user_text), cache=bottom_cache),
                          zero.embed(list(logged.item_text), cache=bottom_cache))
        shown = logged.treatment.to_numpy() == 1
        # position-only correction on the shown lists: the shown items are taken as given (a constant
        # propensity of 1, so no exposure weights) and only the slot is corrected, c / rho_k. The candidate-mode
        # labels T c / (pi rho_k) of the previous runs (SD 3.6 against relevance's 0.3, max 224) never let a
        # trained epoch pass the validation gate; with c / rho_k the labels are bounded by 1 / min(rho) ~ 10.
        sh = logged[shown].reset_index(drop=True).assign(shown_as_given=1.0)
        sh_schema = LogSchema(outcome="click", propensity="shown_as_given")
        labels, frames = {}, {}
        for m in METHODS:
            frame, sch = (logged, schema) if m == "naive" else (sh, sh_schema)
            res = debias(frame, schema=sch, method=m, examination=pb_rand,
                         position_clip=S["dr_position_clip"] if m == "dr" else S["position_clip"],
                         outcome_features=X[shown] if m == "dr" else None,
                         outcome_model=OutcomeModel(hidden_layer_sizes=(64,), max_epochs=20, random_state=seed),
                         n_folds=3, seed=seed, bootstrap=0)
            labels[m] = res.frame["corrected_label"].to_numpy()
            frames[m] = frame
            err = labels[m] - frame.true_relevance.to_numpy()
            label_rows.append({"seed": seed, "method": m, "rows": "candidates" if m == "naive" else "shown",
                               "bias": err.mean(), "bias_se": err.std(ddof=1) / np.sqrt(err.size),
                               "label_sd": labels[m].std(), "label_max": labels[m].max()})
        labels["oracle"] = logged.true_relevance.to_numpy()
        frames["oracle"] = logged
        cfg = TrainConfig(objective=S["objective"], epochs=S["epochs"], max_length=S["max_length"],
                          batch_size=S["batch_size"], head_lr=S["head_lr"], reg=S["reg"], val_share=S["val_share"],
                          trainable_layers=0, seed=seed, progress=False, device="cpu")
        for m in RANKERS:
            t1 = time.time()
            if m == "zero_shot":
                model, hist = train_ranker(logged.user_text, logged.item_text, labels["naive"],
                                           config=TrainConfig(epochs=0, max_length=S["max_length"],
                                                              trainable_layers=0, seed=seed))
            elif m == "two_tower":
                # relevance tower x examination per slot on the clicks of shown rows; the examination tower
                # is fixed to the randomised-bucket curve (a learned one is confounded by the personalised
                # ranking). Epochs are chosen by train_ranker's own click-model validation: held-out shown
                # lists scored with c / rho_k, unbiased for the DCG of re-ordering the shown items under the
                # examination hypothesis. The candidate-mode IPS labels (exposure x position weights, SD 3.6
                # against relevance's 0.3 in the last run, paired SE 0.04 of a 2.2 DCG) were too noisy to pick
                # an epoch: the two-tower ranker kept the zero-shot scorer on 3 of 5 seeds.
                import dataclasses

                model, hist = train_ranker(sh.user_text, sh.item_text, sh.click.to_numpy(np.float64),
                                           groups=sh.request_id.to_numpy(), positions=sh.position.to_numpy(),
                                           examination=pb_rand.examination,
                                           config=dataclasses.replace(cfg, objective="click_model",
                                                                      batch_size=256,
                                                                      epochs=S["two_tower_epochs"],
                                                                      patience=S["two_tower_patience"]),
                                           bottom_cache=bottom_cache)
            else:
                # each pipeline selects its epoch with its own labels on its own held-out lists: naive on
                # the clicks of candidate lists, ips / dr on their corrected labels of shown lists (DCG of
                # re-ordering the shown items, unbiased under the examination hypothesis), the oracle on
                # the true relevance (a reference, not a method)
                f = frames[m]
                model, hist = train_ranker(f.user_text, f.item_text, labels[m], groups=f.request_id.to_numpy(),
                                           config=cfg, bottom_cache=bottom_cache)
            for r in hist.val_curve:
                curve_rows.append({"seed": seed, "method": m, **r, "chosen": r["epoch"] == hist.best_epoch})
            scores = model.score(list(test.user_text), list(test.item_text), cache=bottom_cache)
            pr = per_request_metrics(scores, test.true_relevance.to_numpy(), test.request_id.to_numpy(), ks=(5, 10),
                                     seed=seed)
            for e in ranking_estimates(pr, (5, 10), estimator=m):
                rows.append({"seed": seed, "method": m, "metric": e.target, "value": e.estimate, "se": e.se,
                             "best_epoch": hist.best_epoch, "train_s": time.time() - t1})
        log(f"simulator seed {seed} done in {time.time() - t0:.0f}s")
    return {"metrics": pd.DataFrame(rows), "labels": pd.DataFrame(label_rows),
            "examination": pd.DataFrame(exam_rows), "val_curves": pd.DataFrame(curve_rows)}


def em_part(bottom_cache: dict) -> dict:
    """Position bias under a personalised ranking: item-level EM, EM with text features, harvesting vs truth."""
    from causalrec.debias.relevance_features import text_relevance_features
    from causalrec.ranking import TwoTowerRanker
    from causalrec.simulate import simulate_logs

    S = SIZES
    rows, warn_rows = [], []
    zero = TwoTowerRanker.from_encoder(None, max_length=S["max_length"], trainable_layers=0, seed=0)
    emb = _CachedEmbedder(zero, bottom_cache)
    for seed in range(S["em_seeds"]):
        for ranking, share in (("personalised", 0.0), ("shuffled", 1.0)):
            t0 = time.time()
            sim = simulate_logs(S["em_requests"] * S["em_slots"], seed=100 + seed, n_positions=S["em_slots"],
                                new_user_share=0.0,
                                position_bias=S["em_position_bias"], random_share=share, n_users=S["n_users"],
                                n_items=S["n_items"], catalog_seed=0)
            L = sim.logs
            truth = np.asarray(sim.truth["examination"], dtype=float)
            schema = LogSchema(outcome="click")
            feats = text_relevance_features(L.user_text, L.item_text, embedder=emb, seed=seed)
            runs = {
                "em_item": dict(examination="em"),
                "em_text_features": dict(examination="em", relevance_features=feats),
                "harvest": dict(examination="harvest"),
            }
            for name, kw in runs.items():
                try:
                    res = debias(L, schema=schema, method="ips", exposure="treatment", bootstrap=0, seed=seed, **kw)
                except Exception as exc:  # harvesting raises when no pair repeats at two slots
                    warn_rows.append({"seed": seed, "ranking": ranking, "method": name, "warned": True,
                                      "max_abs_error": float("nan"), "message": f"error: {exc}"})
                    continue
                est = res.position_bias.examination
                for k in range(S["em_slots"]):
                    rows.append({"seed": seed, "ranking": ranking, "method": name, "position": k,
                                 "truth": truth[k], "estimate": est[k]})
                rel = [w for w in res.warnings if "EM" in w or "harvesting" in w or "NOT trusted" in w]
                warn_rows.append({"seed": seed, "ranking": ranking, "method": name, "warned": bool(rel),
                                  "trusted": bool(res.position_bias.extra.get("trusted", False)),
                                  "issues": "; ".join(i.split(":")[0] for i in res.position_bias.extra.get("issues", [])),
                                  "max_abs_error": float(np.max(np.abs(est - truth))),
                                  "message": rel[0][:160] if rel else ""})
            log(f"EM case seed {seed} ({ranking}) in {time.time() - t0:.0f}s")
    return {"curves": pd.DataFrame(rows), "warnings": pd.DataFrame(warn_rows)}


def obd_part() -> dict:
    from causalrec.data.obd import bts_policy_table, load_obd
    from causalrec.models import OutcomeModel
    from causalrec.ope import evaluate

    bts = load_obd("bts").logs
    rnd = load_obd("random").logs
    K = int(rnd.position.max()) + 1
    items = np.sort(pd.unique(rnd.item_id))
    schema = LogSchema()
    pb_rand = examination_from_randomized(rnd.outcome.to_numpy(), rnd.position.to_numpy(), n_positions=K,
                                          bootstrap=500, seed=0)
    pb_em = regression_em(bts.outcome.to_numpy(), bts.position.to_numpy(), groups=bts.item_id.to_numpy(),
                          n_positions=K, bootstrap=SIZES["obd_em_bootstrap"], seed=0)
    user_cols = [c for c in bts.columns if c.startswith("user_feature")]
    out_rows, diag_rows = [], []
    policies = {}
    for m in METHODS:
        res = debias(bts, schema=LogSchema(covariates=tuple(user_cols)), method=m, examination=pb_em,
                     clip=0.01, position_clip=0.05, bootstrap=0, n_folds=3, seed=0,
                     outcome_model=OutcomeModel(hidden_layer_sizes=(32,), max_epochs=30, random_state=0))
        f = res.frame
        w, y = f["weight"].to_numpy(), f["corrected_label"].to_numpy()
        codes = np.searchsorted(items, f.item_id.to_numpy())
        sw = np.bincount(codes, weights=w, minlength=items.size)
        sy = np.bincount(codes, weights=w * y, minlength=items.size)
        g = float(np.sum(w * y) / np.sum(w))
        a = SIZES["obd_prior_rows"] * w.mean()
        score = (sy + a * g) / (sw + a)
        order = np.argsort(-score, kind="stable")
        top = order[:K]
        # top-1: the item ranked k-th at position k; top-k: uniform over the k best items at every position
        rank_of = np.empty(items.size, np.int64)
        rank_of[order] = np.arange(items.size)
        pos_grid = np.repeat(np.arange(K), items.size)
        item_grid = np.tile(np.arange(items.size), K)
        policies[f"{m} top-1"] = pd.DataFrame({"item_id": items[item_grid], "position": pos_grid,
                                               "prob": (rank_of[item_grid] == pos_grid).astype(float)})
        for kk in SIZES["obd_top_k"]:
            policies[f"{m} top-{kk}"] = pd.DataFrame({"item_id": items[item_grid], "position": pos_grid,
                                                      "prob": (rank_of[item_grid] < kk) / kk})
        diag_rows.append({"method": m, **{k: res.diagnostics.get(k) for k in
                                          ("ess", "ess_ratio", "max_weight", "share_clipped")},
                          "top_items": [int(items[t]) for t in top]})
    policies["bts_logging_policy"] = bts_policy_table(n_sim=100_000, seed=0)
    for name, tab in policies.items():
        r = evaluate(rnd, tab, schema=schema, estimators=("ips", "snips", "dr"), seed=0)
        for e in r.estimates:
            out_rows.append({"policy": name, "estimator": e.estimator, "value": e.estimate, "se": e.se,
                             "ci_low": e.ci_low, "ci_high": e.ci_high})
    exam = pd.DataFrame({"position": np.arange(K), "randomized": pb_rand.examination,
                         "randomized_lo": pb_rand.ci_low, "randomized_hi": pb_rand.ci_high,
                         "em_bts": pb_em.examination, "em_lo": pb_em.ci_low, "em_hi": pb_em.ci_high,
                         "ctr_random": pb_rand.ctr, "n_random": pb_rand.n})
    return {"values": pd.DataFrame(out_rows), "weights": pd.DataFrame(diag_rows), "examination": exam,
            "random_ctr": float(rnd.outcome.mean()), "random_clicks": int(rnd.outcome.sum()),
            "bts_clicks": int(bts.outcome.sum()), "n_random": len(rnd), "n_bts": len(bts)}


def _paired(wide: pd.DataFrame, a: str, b: str) -> list[dict]:
    out = []
    d = wide[a] - wide[b]
    for metric, dd in d.groupby(wide["metric"]):
        out.append({"comparison": f"{a} - {b}", "metric": metric, "mean_diff": dd.mean(), "sd_diff": dd.std(ddof=1),
                    "min_diff": dd.min(), "n_seeds": dd.size, "seeds_better": int((dd > 0).sum())})
    return out


def write_report(sim: dict, em: dict, obd: dict, elapsed: float, cmd: str) -> None:
    met = sim["metrics"]
    met = met[met.metric.str.startswith("ndcg")]
    summary = (met.groupby(["method", "metric"])["value"].agg(["mean", "std", "min", "max", "count"]).reset_index())
    order = {m: i for i, m in enumerate(RANKERS)}
    summary = summary.sort_values(["metric", "method"], key=lambda c: c.map(order) if c.name == "method" else c)
    wide = met.pivot_table(index=["seed", "metric"], columns="method", values="value").reset_index()
    corrected = [m for m in ("ips", "dr", "two_tower") if m in wide.columns]
    diffs = []
    for m in corrected:
        diffs += _paired(wide, m, "zero_shot") + _paired(wide, m, "naive")
    diffs += _paired(wide, "naive", "zero_shot")
    diffs = pd.DataFrame(diffs)
    w10 = wide[wide.metric == "ndcg@10"].set_index("seed")
    best = max(corrected, key=lambda m: w10[m].mean())
    labels = sim["labels"].groupby(["method", "rows"])[["bias", "bias_se", "label_sd", "label_max"]].mean().reset_index()
    ex = sim["examination"].groupby("position")[["truth", "randomized"]].mean().reset_index()
    epochs = met[met.metric == "ndcg@10"].pivot_table(index="seed", columns="method", values="best_epoch").reset_index()
    curves = sim["val_curves"]

    rep = Report("Debiased labels and a ranker trained on them: zero-shot vs naive vs corrected",
                 f"Generated by `{cmd}` in {elapsed / 60:.1f} min on this machine (2 shared CPU cores, no GPU). "
                 "Every number below comes from that run (raw values in reports/debias_rank.json).")
    rep.heading("Sizing")
    rep.kv({k: str(v) for k, v in SIZES.items()})
    rep.text(f"{SIZES['train_rows']:,} candidate rows ({SIZES['train_rows'] // 10:,} requests of 10 slots) per "
             f"training seed, {SIZES['test_rows']:,} test rows, a pool of {SIZES['n_users']:,} users and "
             f"{SIZES['n_items']:,} items, {SIZES['seeds']} seeds, MiniLM at max_length {SIZES['max_length']}, "
             f"objective `{SIZES['objective']}` (softmax cross-entropy per request list with the labels as gains), "
             f"{SIZES['epochs']} epochs, trainable_layers=0 (the frozen MiniLM with a trained projection, item "
             f"prior, scale and bias, pulled toward the zero-shot values with L2-SP reg={SIZES['reg']}). "
             f"{SIZES['val_share']:.0%} of the training requests are held out; the epoch (0 = the zero-shot "
             "scorer) is chosen by DCG@10 on them with the pipeline's own labels as gains, and a trained epoch "
             "replaces epoch 0 only if its paired gain is at least one standard error. No GPU was lent to this "
             "session, so there are no GPU timings; training times per model are in the JSON (`train_s`).")
    rep.heading("(a) Simulator: NDCG against true relevance")
    rep.text("Training set: the logged (non-randomised, personalised) requests. `naive`: click labels on every "
             "candidate (shown or not), listwise over the 10 candidates, epoch chosen on clicks. `ips`: "
             "position-only IPS on the shown lists: label `c / max(rho_k, "
             f"{SIZES['position_clip']})` for each shown row (`causalrec.debias.debias` on the shown rows with a "
             "constant propensity of 1: the shown items are taken as given, only the slot is corrected), trained "
             "with the same listwise objective over each shown list, i.e. the IPS-weighted softmax loss of "
             "unbiased learning to rank (each click weighted by 1 / rho_k; Joachims et al. 2017, Ai et al. 2018). "
             f"`dr`: `r_hat + (c - rho_k r_hat) / max(rho_k, {SIZES['dr_position_clip']})` on the shown rows, "
             "`r_hat` an OutcomeModel of `c / rho_k` on frozen MiniLM features (cross-fitted, 3 folds): below the "
             "floor the outcome model carries the label instead of a large weight. ips and dr choose their epoch "
             "with their own labels on held-out shown lists. "
             "`two_tower`: the click model `sigma(s(u, a)) rho_k` fitted on the raw clicks of shown rows, its "
             "examination tower fixed to the randomised-bucket curve, up to "
             f"{SIZES['two_tower_epochs']} epochs with early stopping (patience {SIZES['two_tower_patience']}) "
             "on its own held-out click log-likelihood (held-out shown lists; the likelihood-best epoch is the "
             "candidate), which replaces the zero-shot scorer only if its DCG@10 with `c / rho_k` gains on "
             "held-out lists by at least one paired standard error. It runs `train_ranker`'s click-model "
             "defaults: the weights validated, selected and returned are an exponential moving average over "
             "about 2 passes (`ema_epochs`), and once the held-out lists have chosen the epoch count the model is "
             "retrained from the zero-shot start on every shown list for that many epochs (`refit`). "
             "`rho`: estimated from a separate randomised bucket of "
             f"{SIZES['random_bucket_rows']:,} candidate rows. "
             "Test: fresh requests of 10 candidates with their true relevance. `zero_shot`: `rank train "
             "--epochs 0` (the untrained MiniLM cosine); `oracle` trains and selects on the true relevance "
             "(reference only).")
    rep.table(summary, title="NDCG over seeds (mean, sd, min, max)")
    rep.table(diffs, title="Paired differences (same seed, same test set)")
    rep.table(epochs, title="Chosen epoch per seed (0 = kept the zero-shot scorer)")
    if len(curves):
        cols = [c for c in ("val_dcg", "gain_vs_zero_shot", "gain_se", "val_nll") if c in curves.columns]
        grp = curves.groupby(["method", "epoch"])
        cm = grp[cols].mean().reset_index().merge(grp.size().rename("seeds").reset_index(), on=["method", "epoch"])
        rep.table(cm, title="Validation curves (held-out DCG@10 with each pipeline's own labels; mean over seeds)",
                  note="naive's curve is measured with clicks, so it is not comparable across pipelines; "
                       "gain_se is the paired standard error of the gain over epoch 0; val_nll (two_tower) the "
                       "held-out click NLL it selects and stops on. `seeds`: how many seeds reached the epoch "
                       "(two_tower stops early), so means past the shortest run cover fewer seeds.")
    rep.table(labels, title="Training labels vs true relevance (mean over seeds)",
              note="bias = mean(label - true relevance) over the training rows of each pipeline (naive: every "
                   "candidate; ips / dr: the shown rows). The position-only labels are unbiased for the relevance "
                   "of the shown items; which items were shown (exposure) is not corrected.")
    rep.table(ex, title="Examination curve: truth vs randomised-bucket estimate (mean over seeds)")
    rep.heading("(a2) Position bias under a personalised ranking: EM vs truth")
    rep.text(f"{SIZES['em_requests']:,} requests x {SIZES['em_slots']} slots, examination "
             f"(1 + k)^-{SIZES['em_position_bias']} (truth 1, 0.574, 0.415, 0.330, 0.276), {SIZES['em_seeds']} "
             "seeds, estimated by `causalrec.debias.debias` on the shown rows: `em_item` regression-EM with "
             "per-item relevance (the default), `em_text_features` regression-EM with a logistic relevance model "
             "on MiniLM features of the two texts (cosine, 16 PCA components of each side and their product), "
             "`harvest` intervention harvesting over (user, item) pairs seen at several slots. `personalised`: "
             "the logging ranker orders by affinity + noise; `shuffled`: random order (the reference case).")
    ec = em["curves"]
    if len(ec):
        tab = ec.groupby(["ranking", "method", "position"])[["truth", "estimate"]].mean().reset_index()
        tab["error"] = tab["estimate"] - tab["truth"]
        rep.table(tab.pivot_table(index=["ranking", "method"], columns="position", values="estimate").reset_index(),
                  title="Estimated examination per slot (mean over seeds)")
        rep.table(tab.pivot_table(index=["ranking", "method"], columns="position", values="error").reset_index(),
                  title="Error vs truth per slot (mean over seeds)")
    rep.table(em["warnings"], title="Per run: largest error over slots, and whether causalrec warned")
    rep.heading("(b) Open Bandit Dataset: train on Bernoulli-TS logs, evaluate on uniform-random logs")
    rep.text(f"OBD sample shipped in the obp 0.5.7 sdist: {obd['n_bts']:,} BTS rows with {obd['bts_clicks']} clicks "
             f"(training), {obd['n_random']:,} uniform-random rows with {obd['random_clicks']} clicks (test, "
             f"CTR {obd['random_ctr']:.4f}). Scorer: per-item weighted mean of the (corrected) label, shrunk to the "
             f"global mean with {SIZES['obd_prior_rows']} pseudo-rows; policy: its top-3 items at positions 0-2 "
             "for every user (`top-1`), and uniform over its top-5 / top-20 items at every position (`top-k`, more "
             "overlap with the random logs, hence less variance). Labels: naive clicks; IPS / DR with BTS propensities clipped at 0.01 and "
             "regression-EM examination from the BTS logs. The BTS logging policy itself is the reference.")
    rep.table(obd["values"], title="Policy value (clicks per impression) on the random logs")
    rep.table(obd["weights"].drop(columns=["top_items"]).assign(
        top_items=obd["weights"]["top_items"].map(lambda v: ",".join(map(str, v)))), title="Training weights (BTS)")
    rep.table(obd["examination"], title="OBD examination relative to position 0: random-log CTR ratio vs regression-EM on BTS")
    rep.heading("Reading the results")
    rep.bullets(_findings(summary, diffs, labels, obd, w10, best, em))
    rep.write(OUT_DIR / "debias_rank.md")
    payload = {"sizes": SIZES, "elapsed_s": elapsed, "command": cmd,
               "simulator": {k: v.to_dict(orient="records") for k, v in sim.items()},
               "em": {k: v.to_dict(orient="records") for k, v in em.items()},
               "obd": {k: (v.to_dict(orient="records") if isinstance(v, pd.DataFrame) else v) for k, v in obd.items()}}
    (OUT_DIR / "debias_rank.json").write_text(json.dumps(jsonable(payload), indent=1) + "\n")


def _findings(summary, diffs, labels, obd, w10, best, em) -> list[str]:
    out = []
    mean = summary.set_index(["method", "metric"])["mean"]
    d0 = w10[best] - w10["zero_shot"]
    dn = w10[best] - w10["naive"]
    # exactly the issue-11 target: mean gain >= 0.02 over >= 5 seeds, better on every seed, and a larger
    # mean gain over naive than over zero-shot
    met_target = bool(d0.size >= 5 and d0.mean() >= 0.02 and (d0 > 0).all() and dn.mean() > d0.mean())
    out.append(f"TARGET (best corrected ranker beats zero-shot by >= 0.02 NDCG@10 on the mean over >= 5 seeds AND "
               f"is better on every seed, AND beats naive by more): best corrected = `{best}`, {best} - zero_shot {d0.mean():+.4f} (better on "
               f"{int((d0 > 0).sum())} of {d0.size} seeds, min {d0.min():+.4f}); {best} - naive {dn.mean():+.4f} "
               f"(better on {int((dn > 0).sum())} of {dn.size}). " + ("Met." if met_target else "NOT met."))
    # the weaker reading of "and the naive ranker by more": a gain over naive of at least the same 0.02
    out.append(f"Weaker reading (best corrected beats naive by >= 0.02 NDCG@10 on the mean, better on every seed): "
               f"{best} - naive {dn.mean():+.4f}, better on {int((dn > 0).sum())} of {dn.size}, min {dn.min():+.4f}. "
               + ("Met." if dn.size >= 5 and dn.mean() >= 0.02 and (dn > 0).all() else "NOT met."))
    dnz = w10["naive"] - w10["zero_shot"]
    out.append(f"naive - zero_shot on NDCG@10: {dnz.mean():+.4f} (better on {int((dnz > 0).sum())} of {dnz.size} "
               f"seeds); oracle reaches {mean[('oracle', 'ndcg@10')]:.4f} vs zero-shot "
               f"{mean[('zero_shot', 'ndcg@10')]:.4f}: the room a perfect label would give.")
    for m in ("ips", "dr", "two_tower"):
        if m in w10.columns:
            dz = w10[m] - w10["zero_shot"]
            out.append(f"{m}: NDCG@10 {w10[m].mean():.4f}; vs zero-shot {dz.mean():+.4f} (min {dz.min():+.4f}, "
                       f"never below zero-shot by more than {max(0.0, -dz.min()):.4f}).")
    wr = em["warnings"]
    if len(wr):
        for (ranking, method), g in wr.groupby(["ranking", "method"]):
            err = g["max_abs_error"]
            ok = bool((err <= 0.05).all())
            # flagged: a warning, or the curve's verdict says it is not to be trusted
            trusted = g["trusted"].astype(bool) if "trusted" in g else pd.Series(True, index=g.index)
            warned = bool((g["warned"].astype(bool) | ~trusted).all())
            out.append(f"EM case, {ranking} lists, {method}: largest slot error {err.max():.3f} over seeds; "
                       + ("within 0.05 of the truth" if ok else "NOT within 0.05")
                       + ("; causalrec warned on every seed" if warned else
                          ("; no warning" if not g["warned"].any() else "; warned on some seeds"))
                       + ("" if ok or warned else " -- a silent failure"))
    oe = obd["examination"]
    covers = bool(((oe["randomized_lo"] <= 1.0) & (oe["randomized_hi"] >= 1.0)).all())
    out.append(f"OBD examination: the random-log CTR ratios ({', '.join(f'{v:.2f}' for v in oe['randomized'])}) "
               + ("have intervals that include 1 at every position, i.e. no measurable position bias among OBD's "
                  "three slots" if covers else "exclude 1 at some position")
               + f"; regression-EM on the BTS logs gives {', '.join(f'{v:.2f}' for v in oe['em_bts'])}, "
               f"with only {obd['bts_clicks']} clicks to fit 80 item relevances and 3 slots. The corrected OBD labels "
               "therefore differ from the naive ones mostly through the exposure weights (ESS ratio "
               f"{float(obd['weights'].set_index('method').loc['ips', 'ess_ratio']):.2f}, "
               f"{float(obd['weights'].set_index('method').loc['ips', 'share_clipped']):.1%} of rows clipped).")
    v = obd["values"]
    for est in ("ips", "dr"):
        sub = v[(v.estimator == est) & ~v.policy.str.endswith("top-1")].set_index("policy")
        parts = [f"{p} {sub.loc[p, 'value']:.4f} [{sub.loc[p, 'ci_low']:.4f}, {sub.loc[p, 'ci_high']:.4f}]"
                 for p in sub.index]
        out.append(f"OBD {est.upper()} policy values: " + "; ".join(parts) + ".")
    cell = obd["n_random"] / (80 * 3)
    out.append(f"OBD top-1 policies: the random logs hold about {cell:.0f} impressions per (item, position) cell, so "
               f"a deterministic top-3 list matches about {3 * cell:.0f} test rows and, at CTR "
               f"{obd['random_ctr']:.4f}, usually no click; its value is not estimable on this sample.")
    out.append(f"OBD intervals overlap heavily: with {obd['random_clicks']} clicks in {obd['n_random']:,} random "
               "impressions the test set cannot separate these policies; the comparison is reported, not claimed "
               "as a gain or a loss.")
    return out


def _from_json(path: Path) -> tuple[dict, dict, dict, float, str]:
    """Re-render the report from a previous run's raw values (no recomputation)."""
    d = json.loads(path.read_text())
    sim = {k: pd.DataFrame(v) for k, v in d["simulator"].items()}
    em = {k: pd.DataFrame(v) for k, v in d["em"].items()}
    obd = {k: (pd.DataFrame(v) if isinstance(v, list) else v) for k, v in d["obd"].items()}
    SIZES.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in d["sizes"].items()})
    return sim, em, obd, float(d["elapsed_s"]), d["command"]


def main() -> None:
    if "-h" in sys.argv or "--help" in sys.argv:
        print(__doc__)
        return
    if "--render-only" in sys.argv:
        write_report(*_from_json(OUT_DIR / "debias_rank.json"))
        return
    import torch

    torch.set_num_threads(int(os.environ.get("DEBIAS_RANK_THREADS", "1")))
    t0 = time.time()
    bottom_cache: dict = {}
    log("part (b): Open Bandit Dataset")
    obd = obd_part()
    log("part (a): simulator")
    sim = simulator_part(bottom_cache)
    log("part (a2): EM under a personalised ranking")
    em = em_part(bottom_cache)
    elapsed = time.time() - t0
    write_report(sim, em, obd, elapsed, "python analyses/debias_rank.py")
    log(f"done in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
