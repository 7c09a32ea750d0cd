"""Text confounding with history representations, interaction heads and the text oracle.

Data: :func:`causalrec.simulate.simulate_logs` (confounding 1, ``catalog_seed=0``:
one catalogue, so item texts repeat across seeds and are embedded once; the
embedding cache in ``$CAUSALREC_CACHE`` keeps them across runs). Every method runs
the public :func:`causalrec.uplift.estimate` (cross-fitted, folds grouped by user):

* ``naive``: difference in means;
* ``hist_aipw`` / ``hist_dml``: user = mean of the MiniLM vectors of the history items
  (``user_history="user_text", history_sep=" | "``), user and item vectors replaced by
  soft memberships of KMeans clusters of the item vectors (``text_clusters="auto"``),
  nuisances: causalrec's torch models with no hidden layer (logistic propensity,
  cross-entropy outcome) on ``[u, v, u*v, covariates]``;
* ``hist_auto_aipw`` (``--auto``): the same representation with ``heads="auto"``
  (MLP vs MLP + bilinear ``u^T W v``, chosen per nuisance by cross-fitted loss;
  the choice and the losses are recorded);
* ``joined_aipw`` (``--joined``): the earlier representation, the joined history string
  embedded as one text, MLP heads (the baseline of ``reports/text_confounding.md``);
* ``hist_mix_*``: the same on simplex topic proportions (``text_cluster_weights="mixture"``, the
  package default); ``hist_mix_loss_*`` / ``hist_mix_auto_loss_aipw``: with the cluster count chosen
  by the cross-fitted propensity loss (``text_clusters="loss"``) instead of the silhouette;
* ``hist_mix_loss_default_*`` (``--blocks mix_loss_default``): ``hist_mix_loss_*``'s design with the
  package's default models (none passed): on a cluster design the propensity is the lower cross-fitted
  log loss of the MLP and the L2 logistic, the outcome model the MLP; ``hist_mix_loss_mlpe_aipw`` is the
  same run's AIPW on its MLP propensity candidate (the default before), a paired baseline;
  ``hist_mix_loss_mu64_aipw`` (``--blocks mix_loss_mu64``, opt-in): the same propensity candidates with a
  two-layer (64, 64) MLP outcome model passed by the user;
* ``ceiling_*`` (``--blocks ceiling``, its own CSV): candidate designs' R^2 of the text confounder and
  propensity log loss (see ``_ceiling``);
* ``swap_*`` (``--blocks swap``, its own CSV): the text oracle in one nuisance at a time (see ``_swap``);
* ``logged_e_aipw``: ``propensity="propensity"`` (the propensities the simulated
  recommender logged; no propensity model), history-cluster outcome models;
* ``oracle_text_aipw``: the *text oracle*, the simulator's confounder recomputed
  from the text with the known vocabulary (:func:`causalrec.simulate.text_oracle_features`:
  ``[psi, phi, psi * phi]``), the same linear heads: what the text can remove.

``bias removed`` = 1 - |mean bias| / |mean naive bias| over seeds, against the
simulator's ``ate``. Writes ``reports/text_confounding_history.md`` and the per-run CSV.

    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --seeds 0-19
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 1500 --seeds 0-19 --auto --joined
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --hidden 0.70 --seeds 0-11 \
        --blocks hist,oracle --runs-csv reports/text_confounding_history_runs_n20000_hidden.csv
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --seeds 0-19 --blocks none --auto \
        --runs-csv reports/text_confounding_history_runs_n20000_auto.csv
    # calibration of --hidden (hand-built features only; seeds 100-103):
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --oracle-only --hidden H --seeds 100-103 \
        --runs-csv reports/text_confounding_history_calibration.csv
    # candidates on seeds outside the table: --blocks outer,hist_r,bilinear --seeds 300-302 \
    #     --runs-csv reports/text_confounding_history_pilot.csv
    # (``mix``, ``mix_auto``: hist_aipw's / hist_auto_aipw's heads on simplex topic proportions,
    #  ``text_cluster_weights="mixture"``; --blocks mix,mix_auto --seeds 300-302, the same CSV;
    #  ``mix_k8``, ``mix_k12``, ... : a fixed cluster count; --blocks mix,mix_k8,mix_k12,mix_k16,oracle --seeds 300-307)
    # the mixture default on the partial-confounding and 1,500-row cases:
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --hidden 0.70 --seeds 0-11 \
        --blocks mix,mix_auto --runs-csv reports/text_confounding_history_runs_n20000_hidden_mix.csv
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 1500 --seeds 0-9 \
        --blocks mix,mix_auto --runs-csv reports/text_confounding_history_runs_n1500_mix.csv
    # the cluster count by cross-fitted propensity loss (``text_clusters="loss"``: mix_loss, mix_auto_loss):
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --seeds 0-19 --blocks mix_loss \
        --runs-csv reports/text_confounding_history_runs_n20000_mixloss.csv
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --seeds 0-19 \
        --blocks mix_auto_loss --runs-csv reports/text_confounding_history_runs_n20000_mixautoloss.csv
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 1500 --seeds 0-9 \
        --blocks mix_loss,mix_auto_loss --runs-csv reports/text_confounding_history_runs_n1500_mixloss.csv
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --hidden 0.70 --seeds 0-11 \
        --blocks mix_loss --runs-csv reports/text_confounding_history_runs_n20000_hidden_mixloss.csv
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --hidden 0.70 --seeds 0-11 \
        --blocks mix_auto_loss --runs-csv reports/text_confounding_history_runs_n20000_hidden_mixautoloss.csv
    # the package defaults on the loss-chosen design (and the same run's MLP-propensity AIPW):
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --seeds 0-19 \
        --blocks mix_loss_default --runs-csv reports/text_confounding_history_runs_n20000_mixlossdefault.csv
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --hidden 0.70 --seeds 0-11 \
        --blocks mix_loss_default --runs-csv reports/text_confounding_history_runs_n20000_hidden_mixlossdefault.csv
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 1500 --seeds 0-9 \
        --blocks mix_loss_default --runs-csv reports/text_confounding_history_runs_n1500_mixlossdefault.csv
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --seeds 0-19 \
        --blocks mix_loss_mu64 --runs-csv reports/text_confounding_history_runs_n20000_mixlossmu64.csv
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --hidden 0.70 --seeds 0-11 \
        --blocks mix_loss_mu64 --runs-csv reports/text_confounding_history_runs_n20000_hidden_mixlossmu64.csv
    # hist_mix_auto_loss_aipw re-run after the logistic propensity candidate (into a fresh CSV that replaces the earlier):
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --seeds 0-19 \
        --blocks mix_auto_loss --runs-csv reports/text_confounding_history_runs_n20000_mixautoloss.csv
    # what candidate designs carry of the text confounder (pilot seeds):
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --seeds 300-302 --blocks ceiling \
        --runs-csv reports/text_confounding_history_ceiling.csv
    # the swap diagnostic on pilot seeds (not in the table):
    nice -n 10 .venv/bin/python analyses/text_confounding_history.py --n-rows 20000 --seeds 300-302 --blocks swap \
        --runs-csv reports/text_confounding_history_swap.csv
    .venv/bin/python analyses/text_confounding_history.py --report   # from the CSVs
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "reports" / "text_confounding_history_runs.csv"
REPORT = ROOT / "reports" / "text_confounding_history.md"
COVARIATES = ["item_price", "user_history_len"]
#: clusters for ``hist_outer_*``: chosen on seed 300 (not in the report) by the held-out R^2 of a linear
#: fit of the text confounder on [u, v, u (x) v] (8: 0.78, 12: 0.89, 16: 0.90, 24: 0.90, 32: 0.91)
OUTER_CLUSTERS = 16


def linear_models(seed: int):
    from causalrec.models import OutcomeModel, PropensityModel

    kw = dict(hidden_layer_sizes=(), device="cpu", random_state=seed, batch_size=256, learning_rate=1e-2)
    return PropensityModel(**kw), OutcomeModel(loss="bce", **kw)


def run_seed(seed: int, n_rows: int, hidden: float, args, embedder) -> list[dict]:
    from causalrec.simulate import simulate_logs
    from causalrec.uplift import estimate

    sim = simulate_logs(n_rows=n_rows, seed=seed, confounding=1.0, catalog_seed=0, hidden_confounding=hidden)
    logs = sim.observed()
    ate = sim.truth["ate"]
    meta = {"seed": seed, "n_rows": n_rows, "hidden_confounding": hidden, "truth": ate,
            "naive_truth": sim.truth["naive_difference"]}
    common = dict(treatment="treatment", outcome="outcome", n_folds=3, seed=seed, device="cpu")
    # the softmax memberships stated explicitly: the table's hist_* rows were run with them (the hist_mix_*
    # blocks switch to the simplex topic proportions)
    hist = dict(user_history="user_text", history_sep=" | ", item_text="item_text", embedder=embedder,
                text_clusters="auto", text_cluster_weights="soft", covariates=COVARIATES)
    rows: list[dict] = []

    def record(res, label_of: dict[str, str], seconds: float, extra: dict | None = None):
        for e in res.estimates:
            if e.target == "ate" and e.estimator in label_of:
                rows.append({**meta, "method": label_of[e.estimator], "estimate": e.estimate, "se": e.se,
                             "ci_low": e.ci_low, "ci_high": e.ci_high,
                             "covered": bool(e.ci_low <= ate <= e.ci_high), "seconds": seconds,
                             # the interval's target: the truth above is mean(tau) over the rows, which is
                             # the "sample" (conditional) target; "population" intervals are wider
                             "ci_target": res.config.get("ci_target"), **(extra or {})})

    t0 = time.perf_counter()
    record(estimate(logs, methods=("naive",), **common), {"naive": "naive"}, 0.0)
    blocks = set(args.blocks.split(",")) if args.blocks else {"hist", "outer", "logged", "oracle"}
    if args.oracle_only:  # the calibration of ``hidden_confounding`` needs only the hand-built features
        blocks = {"oracle"}

    if "hist" in blocks:
        pm, om = linear_models(seed)
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw", "dml"), propensity_model=pm, outcome_model=om, **hist, **common)
        record(r, {"aipw": "hist_aipw", "dml": "hist_dml"}, time.perf_counter() - t0,
               {"clusters": r.config.get("text_clusters_k")})

    if "outer" in blocks:
        pm, om = linear_models(seed)
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw", "dml"), propensity_model=pm, outcome_model=om,
                     **{**hist, "text_clusters": OUTER_CLUSTERS}, text_interaction="outer", **common)
        record(r, {"aipw": "hist_outer_aipw", "dml": "hist_outer_dml"}, time.perf_counter() - t0,
               {"clusters": r.config.get("text_clusters_k")})

    if "hist_r" in blocks:  # the observed randomised-slice flag joins the adjustment set
        pm, om = linear_models(seed)
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw", "dml"), propensity_model=pm, outcome_model=om,
                     **{**hist, "covariates": COVARIATES + ["is_random"]}, **common)
        record(r, {"aipw": "hist_r_aipw", "dml": "hist_r_dml"}, time.perf_counter() - t0,
               {"clusters": r.config.get("text_clusters_k")})

    if "bilinear" in blocks:  # causalrec's default-capacity bilinear heads on the cluster memberships
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw", "dml"), heads="bilinear", **hist, **common)
        record(r, {"aipw": "hist_bilinear_aipw", "dml": "hist_bilinear_dml"}, time.perf_counter() - t0,
               {"clusters": r.config.get("text_clusters_k")})

    if "mix" in blocks:  # the same linear heads on simplex topic proportions instead of softmax memberships
        pm, om = linear_models(seed)
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw", "dml"), propensity_model=pm, outcome_model=om,
                     **{**hist, "text_cluster_weights": "mixture"}, **common)
        record(r, {"aipw": "hist_mix_aipw", "dml": "hist_mix_dml"}, time.perf_counter() - t0,
               {"clusters": r.config.get("text_clusters_k")})

    if "mix_auto" in blocks:  # hist_auto_aipw's heads (MLP vs bilinear by cross-fitted loss) on the proportions
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw",), heads="auto", **{**hist, "text_cluster_weights": "mixture"}, **common)
        record(r, {"aipw": "hist_mix_auto_aipw"}, time.perf_counter() - t0, {"clusters": r.config.get("text_clusters_k")})

    for b in sorted(blocks):  # ``mix_k12``: hist_mix_*'s linear heads with a fixed number of clusters (pilot)
        m = re.fullmatch(r"mix(_auto)?_k(\d+)", b)
        if not m:
            continue
        auto, k = bool(m.group(1)), int(m.group(2))
        kw = {**hist, "text_clusters": k, "text_cluster_weights": "mixture"}
        t0 = time.perf_counter()
        if auto:
            r = estimate(logs, methods=("aipw",), heads="auto", **kw, **common)
            labels = {"aipw": f"hist_mix_auto_k{k}_aipw"}
        else:
            pm, om = linear_models(seed)
            r = estimate(logs, methods=("aipw", "dml"), propensity_model=pm, outcome_model=om, **kw, **common)
            labels = {"aipw": f"hist_mix_k{k}_aipw", "dml": f"hist_mix_k{k}_dml"}
        record(r, labels, time.perf_counter() - t0, {"clusters": r.config.get("text_clusters_k")})

    if "mix_loss" in blocks:  # hist_mix_*'s linear heads, k chosen by the cross-fitted propensity loss
        pm, om = linear_models(seed)
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw", "dml"), propensity_model=pm, outcome_model=om,
                     **{**hist, "text_clusters": "loss", "text_cluster_weights": "mixture"}, **common)
        record(r, {"aipw": "hist_mix_loss_aipw", "dml": "hist_mix_loss_dml"}, time.perf_counter() - t0,
               {"clusters": r.config.get("text_clusters_k"),
                "cluster_losses": str(r.config.get("text_cluster_selection", {}).get("losses"))})

    if "mix_auto_loss" in blocks:  # hist_mix_auto_aipw's heads, k chosen by the cross-fitted propensity loss
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw",), heads="auto",
                     **{**hist, "text_clusters": "loss", "text_cluster_weights": "mixture"}, **common)
        sel = r.diagnostics.get("nuisance_selection", {})
        record(r, {"aipw": "hist_mix_auto_loss_aipw"}, time.perf_counter() - t0,
               {"clusters": r.config.get("text_clusters_k"),
                "cluster_losses": str(r.config.get("text_cluster_selection", {}).get("losses")),
                # the propensity candidates (mlp, bilinear and, since the L2 logistic joined them on cluster
                # designs, logistic_l2): which ran is readable from the recorded losses
                "chosen_e": sel.get("propensity", {}).get("chosen"),
                "loss_e": str(sel.get("propensity", {}).get("losses")),
                "chosen_mu": "/".join(str(sel.get("outcome", {}).get(a, {}).get("chosen")) for a in ("mu0", "mu1"))})

    if "mix_loss_default" in blocks:  # the package's default models (none passed) on the loss-chosen design
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw", "dml"), **{**hist, "text_clusters": "loss",
                                                      "text_cluster_weights": "mixture"}, **common)
        sel = r.diagnostics.get("nuisance_selection", {})
        extra = {"clusters": r.config.get("text_clusters_k"),
                 "chosen_e": sel.get("propensity", {}).get("chosen"),
                 "loss_e": str(sel.get("propensity", {}).get("losses"))}
        record(r, {"aipw": "hist_mix_loss_default_aipw", "dml": "hist_mix_loss_default_dml"},
               time.perf_counter() - t0, extra)
        # the same run's MLP propensity candidate (the default before the L2 logistic joined the candidates
        # on cluster designs) beside the same outcome models: AIPW with the estimator's clip, a paired baseline
        _mlp_propensity_row(r, rows, meta, ate, time.perf_counter() - t0, extra)

    if "mix_loss_mu64" in blocks:  # opt-in: the defaults' propensity candidates, a two-layer (64, 64) MLP outcome
        from causalrec.models import OutcomeModel

        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw",), outcome_model=OutcomeModel(hidden_layer_sizes=(64, 64), loss="bce",
                                                                         device="cpu", random_state=seed),
                     **{**hist, "text_clusters": "loss", "text_cluster_weights": "mixture"}, **common)
        sel = r.diagnostics.get("nuisance_selection", {})
        record(r, {"aipw": "hist_mix_loss_mu64_aipw"}, time.perf_counter() - t0,
               {"clusters": r.config.get("text_clusters_k"), "chosen_e": sel.get("propensity", {}).get("chosen"),
                "loss_e": str(sel.get("propensity", {}).get("losses"))})

    if "ceiling" in blocks:  # what linear heads can read of the confounder from each candidate design
        _ceiling(logs, seed, embedder, rows, meta)

    if "swap" in blocks:  # diagnostic: the text oracle in one nuisance at a time (same folds)
        _swap(logs, seed, hist, common, rows, meta, ate)

    if "logged" in blocks:
        pm, om = linear_models(seed)
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw",), propensity="propensity", propensity_model=pm, outcome_model=om,
                     **hist, **common)
        record(r, {"aipw": "logged_e_aipw"}, time.perf_counter() - t0)

    if "oracle" in blocks:
        _oracle(logs, seed, common, record)

    if args.auto:
        t0 = time.perf_counter()
        r = estimate(logs, methods=("aipw",), heads="auto", **hist, **common)
        sel = r.diagnostics.get("nuisance_selection", {})
        record(r, {"aipw": "hist_auto_aipw"}, time.perf_counter() - t0,
               {"chosen_e": sel.get("propensity", {}).get("chosen"),
                "chosen_mu": "/".join(str(sel.get("outcome", {}).get(a, {}).get("chosen")) for a in ("mu0", "mu1")),
                "loss_e": str(sel.get("propensity", {}).get("losses")),
                "loss_mu": str({a: sel.get("outcome", {}).get(a, {}).get("losses") for a in ("mu0", "mu1")})})
    if args.joined:
        from causalrec.models import OutcomeModel, PropensityModel

        kw = dict(hidden_layer_sizes=(64,), device="cpu", random_state=seed, max_epochs=50, learning_rate=3e-3,
                  batch_size=128)
        t0 = time.perf_counter()
        r = estimate(logs, features="text", user_text="user_text", item_text="item_text", covariates=COVARIATES,
                     methods=("aipw",), embedder=embedder, propensity_model=PropensityModel(**kw),
                     outcome_model=OutcomeModel(loss="bce", **kw), **common)
        record(r, {"aipw": "joined_aipw"}, time.perf_counter() - t0)
    return rows


CEILING = ROOT / "reports" / "text_confounding_history_ceiling.csv"


def _ceiling(logs, seed: int, embedder, rows: list[dict], meta: dict) -> None:
    """Candidate text designs: the share of the text confounder a linear fit reads, and the propensity loss.

    For each design ``X`` (mixture memberships of k KMeans clusters, 20 restarts, as ``text_clusters="loss"``
    builds them; principal components of the item vectors; their unions): ``r2`` = held-out R^2 of a ridge fit
    (``RidgeCV``) of the text confounder ``<psi, phi>`` (:func:`causalrec.simulate.text_oracle_features`) on
    ``X``, fitted on two of the run's three user-grouped folds and scored on the third; ``log_loss`` = the
    cross-fitted log loss of the logistic propensity on ``X``
    (:func:`causalrec.uplift.estimate.select_clusters_by_propensity_loss`, the ``text_clusters="loss"``
    criterion). ``r2`` needs the oracle (a reading only); ``log_loss`` is what a user can compute.
    """
    from sklearn.linear_model import RidgeCV

    from causalrec.features import design_matrix
    from causalrec.features.history import (
        encode_history,
        item_components,
        mean_pool,
        topic_clusters,
    )
    from causalrec.models.folds import make_folds
    from causalrec.simulate import text_oracle_features
    from causalrec.uplift.estimate import select_clusters_by_propensity_loss

    t = logs["treatment"].to_numpy()
    hist, hv = encode_history(logs["user_text"], embedder, sep=" | ")
    u, v = mean_pool(hist, hv), embedder.encode_column(logs["item_text"].astype(str))
    basis = np.vstack([hv, v])
    cov = logs[COVARIATES]
    blocks: dict[str, np.ndarray] = {}
    for k in (6, 8, 10, 12, 16):
        tc = topic_clusters(basis, k, seed=seed, n_init=20)
        hu, hi = mean_pool(hist, tc.memberships(hv, "mixture")), tc.memberships(v, "mixture")
        blocks[f"mix{k}"] = design_matrix(user_emb=hu, item_emb=hi)
        if k == 8:
            blocks["mix8_outer"] = design_matrix(user_emb=hu, item_emb=hi, interaction="outer")
    for c in (8, 16, 32):
        pca = item_components(basis, c, seed)
        blocks[f"pc{c}"] = design_matrix(user_emb=pca.transform(u), item_emb=pca.transform(v))
    blocks["pc16_outer"] = design_matrix(user_emb=item_components(basis, 16, seed).transform(u),
                                         item_emb=item_components(basis, 16, seed).transform(v), interaction="outer")
    designs = {name: [name] for name in blocks}
    designs.update({"mix8+pc8": ["mix8", "pc8"], "mix8+pc16": ["mix8", "pc16"], "mix8+pc32": ["mix8", "pc32"],
                    "mix8+pc16_outer": ["mix8", "pc16_outer"], "mix6+8+10": ["mix6", "mix8", "mix10"]})
    c = design_matrix(covariates=cov)
    X = {name: np.hstack([blocks[b] for b in parts] + [c]) for name, parts in designs.items()}
    folds = make_folds(len(t), 3, groups=logs["user_id"].astype(str).to_numpy(), stratify=t, random_state=seed)
    names = list(X)
    _, rep = select_clusters_by_propensity_loss({i: X[n] for i, n in enumerate(names)}, t, folds)
    aff = text_oracle_features(logs["user_text"], logs["item_text"])["affinity"]
    for i, name in enumerate(names):
        pred = np.zeros(len(t))
        for f in range(3):
            tr, te = folds != f, folds == f
            pred[te] = RidgeCV(alphas=np.logspace(-3, 3, 7)).fit(X[name][tr], aff[tr]).predict(X[name][te])
        rows.append({**meta, "method": f"ceiling_{name}", "columns": X[name].shape[1],
                     "r2": float(1 - np.mean((aff - pred) ** 2) / np.var(aff)), "log_loss": rep["losses"][i]})


def _ceiling_lines() -> list[str]:
    """The ``--blocks ceiling`` table, computed from its CSV."""
    if not CEILING.exists():
        return []
    d = pd.read_csv(CEILING)
    d = d[d.method.str.startswith("ceiling_")].drop_duplicates(["n_rows", "hidden_confounding", "method", "seed"],
                                                               keep="last")
    out = ["", "## What the candidate text designs can carry (`--blocks ceiling`)", "",
           "`reports/text_confounding_history_ceiling.csv`: per design, the held-out R^2 of a ridge fit of the "
           "text confounder `<psi, phi>` (needs the oracle: a reading only) and the cross-fitted log loss of a "
           "logistic propensity (the `text_clusters=\"loss\"` criterion, computable by a user); `mixK` = "
           "`[u, v, u * v]` of K mixture memberships, `pcC` = C principal components of the item vectors, "
           "`_outer` = every product `u_j v_l`, `a+b` = both designs' columns. Means over the seeds:", "",
           "| hidden | rows | design | columns | seeds | R^2 of the text confounder | propensity log loss |",
           "| ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    g = d.groupby(["hidden_confounding", "n_rows", "method"], sort=False)
    for (h, n, m), r in g:
        out.append(f"| {h:g} | {int(n):,} | {m[len('ceiling_'):]} | {int(r['columns'].iloc[0])} | {len(r)} | "
                   f"{r.r2.mean():.3f} | {r.log_loss.mean():.5f} |")
    return out


SWAP = ROOT / "reports" / "text_confounding_history_swap.csv"


def _swap(logs, seed: int, hist: dict, common: dict, rows: list[dict], meta: dict, ate: float) -> None:
    """Where the bias sits: AIPW with the text oracle swapped into one nuisance at a time.

    The text design is ``hist_mix_loss_*``'s (mixture memberships, k by the cross-fitted propensity
    loss, linear heads) from the public ``estimate``; the oracle nuisances are the same linear heads on
    ``[psi, phi, psi * phi, covariates]`` cross-fitted by :func:`causalrec.uplift.estimate.cross_fit_nuisances`
    on the run's folds. Rows ``swap_<e>_e_<mu>_mu`` with ``<e>`` in text / oracle / logged (the simulated
    recommender's propensities) and ``<mu>`` in text / oracle; every AIPW clipped at 0.01 like ``estimate``.
    Why: AIPW's bias is the product of the two nuisances' errors; if swapping in the oracle for either one
    removes it, a better text representation for either nuisance suffices.
    """
    from causalrec.simulate import text_oracle_features
    from causalrec.uplift import ate as ate_mod
    from causalrec.uplift import estimate
    from causalrec.uplift.estimate import cross_fit_nuisances

    pm, om = linear_models(seed)
    t0 = time.perf_counter()
    r = estimate(logs, methods=("aipw",), propensity_model=pm, outcome_model=om,
                 **{**hist, "text_clusters": "loss", "text_cluster_weights": "mixture"}, **common)
    nu = r.nuisance
    o = text_oracle_features(logs["user_text"], logs["item_text"])
    F = np.hstack([o["psi"], o["phi"], o["psi"] * o["phi"], logs[COVARIATES].to_numpy(float)])
    F = ((F - F.mean(0)) / (F.std(0) + 1e-12)).astype(np.float32)
    pm, om = linear_models(seed)
    no = cross_fit_nuisances(F, nu["t"], nu["y"], propensity_model=pm, outcome_model=om, n_folds=common["n_folds"],
                             groups=nu["groups"], seed=seed, fold_ids=nu["folds"])
    es = {"text": nu["e_raw"], "oracle": no["e_raw"], "logged": logs["propensity"].to_numpy(float)}
    mus = {"text": (nu["mu0"], nu["mu1"]), "oracle": (no["mu0"], no["mu1"])}
    for ke, e in es.items():
        for km, (m0, m1) in mus.items():
            est = [x for x in ate_mod.aipw(nu["t"], nu["y"], np.clip(e, 0.01, 0.99), m0, m1, groups=nu["groups"],
                                           ci_target=r.config["ci_target"]) if x.target == "ate"][0]
            rows.append({**meta, "method": f"swap_{ke}_e_{km}_mu", "estimate": est.estimate, "se": est.se,
                         "ci_low": est.ci_low, "ci_high": est.ci_high,
                         "covered": bool(est.ci_low <= ate <= est.ci_high), "seconds": time.perf_counter() - t0,
                         "ci_target": r.config["ci_target"], "clusters": r.config.get("text_clusters_k")})


def _swap_lines() -> list[str]:
    """The swap diagnostic's table (``--blocks swap``), computed from its CSV."""
    if not SWAP.exists():
        return []
    d = pd.read_csv(SWAP).drop_duplicates(["n_rows", "hidden_confounding", "method", "seed"], keep="last")
    d = d[d.method.str.startswith("swap_")]
    d = d.assign(err=d.estimate - d.truth)
    out = ["", "## Where the remaining bias sits: the text oracle in one nuisance at a time", "",
           "`--blocks swap` (`reports/text_confounding_history_swap.csv`): the AIPW of `hist_mix_loss_aipw`'s "
           "text design and linear heads, with the propensity (`e`) and/or the outcome models (`mu`) replaced by "
           "the same heads on the text oracle's features (or `e` by the logged propensities), cross-fitted on "
           "the run's folds. Mean error (estimate - truth) and mean SE over the seeds:", "",
           "| hidden | rows | e from | mu from | seeds | mean error | mean SE | coverage | errors per seed |",
           "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for (h, n, m), g in d.groupby(["hidden_confounding", "n_rows", "method"], sort=True):
        ke, km = m[len("swap_"):].split("_e_")
        out.append(f"| {h:g} | {int(n):,} | {ke} | {km[:-len('_mu')]} | {len(g)} | {g.err.mean():+.4f} | "
                   f"{g.se.mean():.4f} | {g.covered.mean():.2f} | "
                   + ", ".join(f"{v:+.4f}" for v in g.sort_values("seed").err) + " |")
    return out


def _mlp_propensity_row(r, rows: list[dict], meta: dict, ate: float, seconds: float, extra: dict) -> None:
    """``hist_mix_loss_mlpe_aipw``: AIPW on the MLP propensity candidate's out-of-fold predictions of run
    ``r`` (clipped at ``r``'s clip), with ``r``'s outcome models, groups, interval level and target."""
    from causalrec.uplift import ate as ate_mod

    nu = r.nuisance
    e = np.clip(nu["crossfit"].candidates["e"]["mlp"][nu["keep"]], r.config["clip"], 1 - r.config["clip"])
    est = [x for x in ate_mod.aipw(nu["t"], nu["y"], e, nu["mu0"], nu["mu1"], groups=nu["groups"],
                                   ci_level=r.config["ci_level"], ci_target=r.config["ci_target"])
           if x.target == "ate"][0]
    rows.append({**meta, "method": "hist_mix_loss_mlpe_aipw", "estimate": est.estimate, "se": est.se,
                 "ci_low": est.ci_low, "ci_high": est.ci_high, "covered": bool(est.ci_low <= ate <= est.ci_high),
                 "seconds": seconds, "ci_target": r.config.get("ci_target"), **extra, "chosen_e": "mlp"})


def _oracle(logs, seed: int, common: dict, record) -> None:
    """``oracle_text_aipw``: the hand-built features from the known vocabulary, ``[psi, phi, psi * phi]``."""
    from causalrec.simulate import text_oracle_features
    from causalrec.uplift import estimate

    o = text_oracle_features(logs["user_text"], logs["item_text"])
    F = np.hstack([o["psi"], o["phi"], o["psi"] * o["phi"]])
    pm, om = linear_models(seed)
    t0 = time.perf_counter()
    r = estimate(logs, features=F, covariates=COVARIATES, methods=("aipw",), propensity_model=pm,
                 outcome_model=om, **common)
    record(r, {"aipw": "oracle_text_aipw"}, time.perf_counter() - t0)


def parse_seeds(s: str) -> list[int]:
    if "-" in s:
        a, b = s.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in s.split(",")]


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    # a seed run twice for one method (e.g. naive in two block runs) counts once: the last run
    df = df.drop_duplicates(["n_rows", "hidden_confounding", "method", "seed"], keep="last")
    for (n, h, m), g in df.groupby(["n_rows", "hidden_confounding", "method"], sort=True):
        naive = df[(df.n_rows == n) & (df.hidden_confounding == h) & (df.method == "naive")]
        # the naive bias on the method's own seeds: a cell with fewer seeds is not compared with the
        # naive mean over other seeds
        naive = naive[naive.seed.isin(g.seed)]
        naive_bias = (naive.estimate - naive.truth).mean()
        bias = (g.estimate - g.truth).mean()
        out.append({"rows": int(n), "hidden": h, "method": m, "runs": len(g), "bias": bias,
                    "rmse": float(np.sqrt(((g.estimate - g.truth) ** 2).mean())), "coverage": g.covered.mean(),
                    "ci_width": (g.ci_high - g.ci_low).mean(),
                    "removed": 1 - abs(bias) / abs(naive_bias) if naive_bias else np.nan,
                    "removed_per_run_mean": float(np.mean(1 - np.abs(g.estimate.values - g.truth.values)
                                                          / np.abs(naive.set_index("seed").loc[g.seed, "estimate"].values
                                                                   - g.truth.values))) if len(naive) else np.nan,
                    "seconds": g.seconds.mean()})
    return pd.DataFrame(out)


def write_report(df: pd.DataFrame) -> None:
    from causalrec.data.atomic import atomic_write_text

    # runs with sample-ATE intervals (recorded ci_target) get their own rows: earlier runs without the
    # column had population intervals, and one cell must not mix the two targets' coverage
    if "ci_target" in df.columns:
        samp = (df.ci_target == "sample") & (df.method != "naive")
        df = df.assign(method=df.method.where(~samp, df.method + " (sample CI)"))
    s = summarise(df)
    order = ["naive", "joined_aipw", "hist_aipw", "hist_dml", "hist_r_aipw", "hist_r_dml", "hist_outer_aipw",
             "hist_outer_dml", "hist_bilinear_aipw", "hist_bilinear_dml", "hist_mix_aipw", "hist_mix_dml",
             "hist_auto_aipw", "hist_mix_auto_aipw", "hist_mix_loss_aipw", "hist_mix_loss_dml",
             "hist_mix_auto_loss_aipw", "hist_mix_loss_mlpe_aipw", "hist_mix_loss_default_aipw",
             "hist_mix_loss_default_dml", "hist_mix_loss_mu64_aipw", "logged_e_aipw",
             "oracle_text_aipw"]
    s["o"] = s.method.str.replace(" (sample CI)", "", regex=False).map({m: k for k, m in enumerate(order)})
    s["o"] = s.o + s.method.str.endswith("(sample CI)") * 0.5
    s = s.sort_values(["hidden", "rows", "o"])
    lines = ["# Text confounding: history representations, interaction heads, text oracle", "",
             "Built by `python analyses/text_confounding_history.py --report` from "
             "`reports/text_confounding_history_runs*.csv`; methods and commands in the script's docstring. "
             "Confounding strength 1; `hidden` = the simulator's `hidden_confounding` (0: the text carries the "
             "whole confounder). `bias removed` = 1 - |mean bias| / |mean naive bias| over the runs; "
             "`per-run` = mean over runs of 1 - |error| / |naive error|.", "",
             "| hidden | rows | method | runs | bias | RMSE | coverage | mean CI width | bias removed | per-run | s/run |",
             "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for _, r in s.iterrows():
        lines.append(f"| {r.hidden:g} | {r.rows:,} | {r.method} | {r.runs} | {r.bias:+.4f} | {r.rmse:.4f} | "
                     f"{r.coverage:.2f} | {r.ci_width:.4f} | {r.removed:.0%} | {r.removed_per_run_mean:.0%} | "
                     f"{r.seconds:.1f} |")
    if "chosen_e" in df.columns and df.chosen_e.notna().any():
        a = df[df.method == "hist_auto_aipw"].drop_duplicates(["n_rows", "hidden_confounding", "seed"], keep="last")
        for (n, h), g in a.groupby(["n_rows", "hidden_confounding"], sort=True):
            lines += ["", f"Head choice by cross-fitted loss (`hist_auto_aipw`, hidden {h:g}, {n:,} rows): propensity "
                      + ", ".join(f"{k}: {v}" for k, v in g.chosen_e.value_counts().items())
                      + "; outcome (mu0/mu1) " + ", ".join(f"{k}: {v}" for k, v in g.chosen_mu.value_counts().items())
                      + " (runs). Losses per run are in the CSV (`loss_e`, `loss_mu`)."]
    lines += ["", "## Headline (computed from the table above)", ""]
    for (h, n), g in s.groupby(["hidden", "rows"], sort=True):
        g = g.set_index("method")
        text = [m for base in ("hist_aipw", "hist_dml", "hist_r_aipw", "hist_r_dml", "hist_outer_aipw", "hist_outer_dml",
                            "hist_bilinear_aipw", "hist_bilinear_dml", "hist_auto_aipw", "hist_mix_aipw",
                            "hist_mix_dml", "hist_mix_auto_aipw", "hist_mix_loss_aipw", "hist_mix_loss_dml",
                            "hist_mix_auto_loss_aipw", "hist_mix_loss_mlpe_aipw", "hist_mix_loss_default_aipw",
                            "hist_mix_loss_default_dml", "hist_mix_loss_mu64_aipw", "joined_aipw")
                for m in (base, base + " (sample CI)") if m in g.index]
        if not text:
            continue
        best = max(text, key=lambda m: g.loc[m, "removed"])
        b = g.loc[best]
        # one decimal: a share just under a target must not print as the target (69.6% is not 70%)
        line = (f"- hidden {h:g}, {n:,} rows ({int(b.runs)} seeds): best text method `{best}` removes "
                f"{b.removed:.1%} of the naive bias (coverage {b.coverage:.2f})")
        if "oracle_text_aipw" in g.index:
            o = g.loc["oracle_text_aipw"]
            line += f"; the text oracle removes {o.removed:.0%} (coverage {o.coverage:.2f})"
        if "logged_e_aipw" in g.index:
            q = g.loc["logged_e_aipw"]
            line += f"; logged propensities remove {q.removed:.0%} (coverage {q.coverage:.2f})"
        if n == 20000 and h == 0:
            ok = b.removed >= 0.85 and b.coverage >= 0.80
            line += (f". Target (>= 85% removed over 20 seeds, coverage >= 0.80): "
                     f"{'met' if ok and b.runs >= 20 else 'NOT met'}"
                     + ("" if b.runs >= 20 else f" (only {int(b.runs)} of 20 seeds ran)"))
            cov = g.loc[text, "coverage"]
            line += f"; the best coverage of any text method is {cov.max():.2f} (`{cov.idxmax()}`)"
        if n == 20000 and h > 0:
            o_ok = "oracle_text_aipw" in g.index and 0.74 <= g.loc["oracle_text_aipw", "removed"] <= 0.76
            n_naive = int(g.loc["naive", "runs"]) if "naive" in g.index else int(b.runs)
            line += (f". Target (>= 70% removed where hand-built features remove 74-76%): "
                     f"{'met' if b.removed >= 0.70 and b.runs >= n_naive else 'NOT met'}"
                     + ("" if b.runs >= n_naive else f" (only {int(b.runs)} of {n_naive} seeds ran)")
                     + ("" if o_ok else " (here the hand-built features' share is outside 74-76%: see the oracle)"))
        lines.append(line + ".")
    lines += _coverage_lines(df)
    lines += _paired_lines(df)
    lines += ["", "## Reading", "",
              "- Every figure above is computed from the per-run CSVs; the number of seeds per cell is in the "
              "`runs` column. The runs shared 2 CPU cores with several other jobs, so fewer seeds "
              "ran than planned where `runs` < 20: the targets are stated for the seeds that ran, not "
              "extrapolated.",
              "- `oracle_text_aipw` bounds what any text representation can do with these heads and folds; "
              "`logged_e_aipw` needs no text for the propensity (the simulated recommender logged it) and is "
              "doubly robust through its outcome models.",
              "- The simulator's randomised slice (10% of requests) also changes exposure and slots, so text "
              "identifies the effect exactly only together with the observed `is_random` flag; these runs adjust "
              "for the text and `item_price`, `user_history_len` only, as the earlier report did.",
              "- `hist_r_*` adds the observed `is_random` flag to the adjustment set; `hist_outer_*` uses 16 "
              "soft clusters with every pairwise user-item product (`text_interaction=\"outer\"`).",
              "- `hist_mix_loss_default_*` is the default public path on this design: no models passed, so on a "
              "cluster design the propensity candidates are the MLP and the L2 logistic (the logistic joined them "
              "in commit 2b01695). Rows of `heads=\"auto\"` blocks without passed models (`hist_auto_aipw`, "
              "`hist_mix_auto_*`) whose CSV `loss_e` does not list `logistic_l2` ran before that change, with the "
              "MLP and bilinear propensities only; re-running them now adds the logistic candidate.",
              "- `hist_mix_loss_mu64_aipw` is an opt-in: the user passes the two-layer outcome MLP; it is not a "
              "candidate any cross-fitted loss chose, so a headline naming it describes that option, not the "
              "default path (`hist_mix_loss_default_aipw`).",
              "- Where the rest of the bias sits (the swap table): with either nuisance fitted on the text "
              "oracle's features, or the propensity logged, the error falls to about the oracle's, so a better "
              "text representation for either nuisance would suffice. The ceiling table shows why the text "
              "designs stop short: no candidate design (more clusters, outer products, principal components, "
              "unions of clusterings) lets a linear fit read much more of the confounder than 8 mixture "
              "memberships, and the cross-fitted propensity loss (mean over the seeds) is lowest for those, so "
              "adding the other designs as `text_clusters=\"loss\"` candidates would not change the choice.",
              "- The default models lower AIPW's bias but not DML's (see the paired table): DML's final stage "
              "partials out `m = e mu1 + (1 - e) mu0` and fits the effect on `[tau_hat, principal components]`, "
              "so the outcome models' errors enter it differently from AIPW's correction term."]
    lines += _swap_lines() + _ceiling_lines() + _calibration_lines() + _pilot_lines()
    atomic_write_text(REPORT, "\n".join(lines) + "\n")
    # the same table as a section of reports/text_confounding.md (replaced on every run)
    main_report = ROOT / "reports" / "text_confounding.md"
    if main_report.exists():
        start, end = "<!-- text-history:start -->", "<!-- text-history:end -->"
        body = main_report.read_text()
        if start in body:
            body = body[: body.index(start)].rstrip() + "\n" + body[body.index(end) + len(end):].lstrip("\n")
        section = [start, "", "## New representations: user history, text clusters, heads, text oracle (issue 14)", "",
                   "From `analyses/text_confounding_history.py` (full report: `reports/text_confounding_history.md`). "
                   "`oracle_text_aipw` is the text oracle: the confounder recomputed from the text with the "
                   "simulator's vocabulary, i.e. the share of the bias the text can remove.", "",
                   *lines[lines.index("| hidden | rows | method | runs | bias | RMSE | coverage | mean CI width | "
                                      "bias removed | per-run | s/run |"):], "", end]
        atomic_write_text(main_report, body.rstrip() + "\n\n" + "\n".join(section) + "\n")


def _coverage_lines(df: pd.DataFrame) -> list[str]:
    """Why coverage is low: residual bias against the reported SE, per (hidden, rows, method).

    With error ``d_s = estimate_s - truth_s`` over seeds ``s``: ``bias / SE = mean(d) / mean(se)``
    and ``SD / SE = sd(d) / mean(se)``. A normal interval ``est +- 1.96 se`` covers about
    ``Phi(1.96 - b) - Phi(-1.96 - b)`` of the runs with ``b = bias / sd(d)`` when ``SD / SE = 1``;
    ``|bias / SE| > 1.96`` alone drives coverage below 0.5, whatever the share of bias removed.
    """
    d = df.drop_duplicates(["n_rows", "hidden_confounding", "method", "seed"], keep="last")
    out = ["", "## Coverage diagnosis: residual bias against the SE (computed from the runs)", "",
           "`SD` is the seed-to-seed standard deviation of the error, `SE` the mean reported SE; "
           "`ci_target` the interval target recorded with the runs (blank: runs made before it was recorded, "
           "when the intervals were population ones).", "",
           "`coverage if SE = SD`: the normal-approximation coverage ``Phi(1.96 - b) - Phi(-1.96 - b)``, "
           "``b = bias / SD``, that intervals would have if the reported SE equalled the seed-to-seed SD "
           "(computed, not run): what an honest SE alone could reach with this bias.", "",
           "| hidden | rows | method | runs | ci_target | bias | SD | mean SE | bias / SE | SD / SE | coverage "
           "| coverage if SE = SD |",
           "| ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    tgt = d["ci_target"] if "ci_target" in d.columns else pd.Series("", index=d.index)
    d = d.assign(ci_target=tgt.fillna("").astype(str))
    for (n, h, m, c), g in d.groupby(["n_rows", "hidden_confounding", "method", "ci_target"], sort=True):
        if m == "naive" or len(g) < 2:
            continue
        err = g.estimate - g.truth
        se = g.se.mean()
        out.append(f"| {h:g} | {int(n):,} | {m} | {len(g)} | {c} | {err.mean():+.4f} | {err.std():.4f} | "
                   f"{se:.4f} | {err.mean() / se:+.2f} | {err.std() / se:.2f} | {g.covered.mean():.2f} | "
                   f"{_honest_coverage(err.mean(), err.std()):.2f} |")
    return out + _by_k_lines(d)


def _honest_coverage(bias: float, sd: float, z: float = 1.959964) -> float:
    """``Phi(z - b) - Phi(-z - b)`` with ``b = bias / sd``: a normal interval's coverage when SE = SD."""
    from scipy.stats import norm

    b = bias / sd if sd > 0 else np.inf
    return float(norm.cdf(z - b) - norm.cdf(-z - b))


def _by_k_lines(d: pd.DataFrame) -> list[str]:
    """Error by the number of clusters each run used (``clusters``), for the 20,000-row text methods."""
    if "clusters" not in d.columns:
        return []
    g = d[(d.n_rows == 20000) & d.clusters.notna() & d.method.str.startswith("hist_mix")]
    if g.empty:
        return []
    out = ["", "Error by the cluster count each run used (20,000 rows; `auto` = silhouette, `loss` = cross-fitted "
           "propensity loss):", "",
           "| hidden | method | clusters | runs | bias | SD | mean SE | SD / SE | coverage |",
           "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (h, m, k), r in g.groupby(["hidden_confounding", "method", "clusters"], sort=True):
        err = r.estimate - r.truth
        sd = err.std() if len(r) > 1 else float("nan")
        out.append(f"| {h:g} | {m} | {int(k)} | {len(r)} | {err.mean():+.4f} | {sd:.4f} | {r.se.mean():.4f} | "
                   f"{sd / r.se.mean():.2f} | {r.covered.mean():.2f} |")
    # the reading of the two tables, from the numbers: is the under-coverage the SE or the bias?
    for m in ("hist_mix_auto_aipw (sample CI)", "hist_mix_loss_aipw (sample CI)", "hist_mix_auto_loss_aipw (sample CI)",
              "hist_mix_loss_mlpe_aipw (sample CI)", "hist_mix_loss_default_aipw (sample CI)"):
        r = g[(g.hidden_confounding == 0) & (g.method == m)]
        if len(r) < 2:
            continue
        err = r.estimate - r.truth
        ks = ", ".join(f"{int(k)}: {c}" for k, c in r.clusters.value_counts().sort_index().items())
        out += ["", f"- `{m}` (hidden 0, {len(r)} seeds; clusters used {ks}): SD / SE {err.std() / r.se.mean():.2f}, "
                f"bias / SE {err.mean() / r.se.mean():+.2f}, coverage {r.covered.mean():.2f}, "
                f"{_honest_coverage(err.mean(), err.std()):.2f} if the SE equalled the SD."]
    return out


CALIBRATION = ROOT / "reports" / "text_confounding_history_calibration.csv"
#: the partial-confounding case's ``hidden_confounding``: interpolated between 0.65 (oracle removes
#: 76.5%) and 0.70 (73.3%) in the calibration runs below (seeds 100-103, not used elsewhere)
HIDDEN_CALIBRATED = 0.67


def _calibration_lines() -> list[str]:
    """The calibration of ``hidden_confounding`` (``--oracle-only`` runs), computed from its CSV."""
    if not CALIBRATION.exists():
        return []
    c = pd.read_csv(CALIBRATION)
    c["err"] = c.estimate - c.truth
    p = c.pivot_table(index=["hidden_confounding", "seed"], columns="method", values="err").dropna()
    g = p.groupby(level=0).agg(["mean", "size"])
    out = ["", "## Calibration of the partial-confounding case", "",
           "The issue's held-out case is a log whose text carries only part of the confounding, where "
           "hand-built features from the known vocabulary (`oracle_text_aipw`) remove 74-76% of the naive "
           "bias. `hidden_confounding` was calibrated with `--oracle-only` runs (20,000 rows, seeds 100-103, "
           "not used in the table above) and set to "
           f"{HIDDEN_CALIBRATED:g} by linear interpolation between the two bracketing values. On the table's seeds "
           "0.67 left the hand-built features at 77%, so 0.70 was run as well (see the oracle rows for the share "
           "they remove on those seeds):", "",
           "| hidden | seeds | naive bias | hand-built features' bias | removed |", "| ---: | ---: | ---: | ---: | ---: |"]
    for h, r in g.iterrows():
        nb, ob = r[("naive", "mean")], r[("oracle_text_aipw", "mean")]
        out.append(f"| {h:g} | {int(r[('naive', 'size')])} | {nb:+.4f} | {ob:+.4f} | {1 - abs(ob) / abs(nb):.1%} |")
    return out


PILOT = ROOT / "reports" / "text_confounding_history_pilot.csv"


#: (candidate, the method it is compared with): the membership kind, the cluster-count rule, the models
PAIRS = [("hist_mix_auto_aipw", "hist_auto_aipw"), ("hist_mix_aipw", "hist_aipw"), ("hist_mix_dml", "hist_dml"),
         # the cluster count by cross-fitted propensity loss (text_clusters="loss") against the silhouette
         ("hist_mix_loss_aipw", "hist_mix_aipw"), ("hist_mix_loss_dml", "hist_mix_dml"),
         ("hist_mix_auto_loss_aipw", "hist_mix_auto_aipw"),
         # the package defaults on the loss-chosen design: propensity by loss among MLP and L2 logistic, against
         # the same run's MLP propensity (the earlier default), and against the linear heads of hist_mix_loss
         ("hist_mix_loss_default_aipw", "hist_mix_loss_mlpe_aipw"), ("hist_mix_loss_default_aipw", "hist_mix_loss_aipw"),
         ("hist_mix_loss_default_dml", "hist_mix_loss_dml"),
         # opt-in: a two-layer outcome MLP beside the defaults' propensity (not chosen by a loss)
         ("hist_mix_loss_mu64_aipw", "hist_mix_loss_default_aipw")]


def _paired_lines(df: pd.DataFrame) -> list[str]:
    """Candidates against their baseline on the seeds both ran (``PAIRS``), table runs and pilot runs."""
    frames = [df] + ([pd.read_csv(PILOT)] if PILOT.exists() else [])
    d = pd.concat(frames, ignore_index=True)
    # the point estimate does not depend on the interval target: compare errors across both labels
    d = d.assign(method=d.method.str.replace(" (sample CI)", "", regex=False)).drop_duplicates(["n_rows", "hidden_confounding", "method", "seed"],
                                                             keep="last")
    d = d.assign(err=d.estimate - d.truth)
    out = []
    for cand, base in PAIRS:
        for (n, h), g in d[d.method.isin([cand, base])].groupby(["n_rows", "hidden_confounding"]):
            w = g.pivot_table(index="seed", columns="method", values="err")
            if cand not in w or base not in w:
                continue
            w = w[[base, cand]].dropna()
            if w.empty:
                continue
            better = int((w[cand].abs() < w[base].abs()).sum())
            out.append(f"| {h:g} | {n:,} | `{cand}` vs `{base}` | {len(w)} | {', '.join(str(int(x)) for x in w.index)} "
                       f"| {w[base].mean():+.4f} | {w[cand].mean():+.4f} | {better} of {len(w)} |")
    if not out:
        return []
    return ["", "## Paired seeds: mixture against softmax memberships, loss-chosen against silhouette cluster counts, default models", "",
            "`hist_mix_*` change one thing of `hist_*`: the cluster memberships are topic proportions by least "
            "squares on the simplex (`text_cluster_weights=\"mixture\"`) instead of the softmax of distances. "
            "`hist_mix_*loss*` change one thing of `hist_mix_*`: the cluster count is the one of 6-16 with the "
            "lowest cross-fitted propensity log loss, 20 KMeans restarts each (`text_clusters=\"loss\"`), "
            "instead of the silhouette's with 4. `hist_mix_loss_default_*` run the package's default models "
            "(none passed) on `hist_mix_loss_*`'s design: the propensity the lower cross-fitted log loss of the "
            "MLP and the L2 logistic, the outcome the MLP; `hist_mix_loss_mlpe_aipw` is the same run's AIPW on "
            "its MLP propensity candidate (the default before the logistic candidate). "
            "Mean error (estimate - truth) on the seeds both ran (table and pilot CSVs):", "",
            "| hidden | rows | pair | seeds | which | baseline mean error | candidate mean error | smaller error |",
            "| ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |"] + out


def _pilot_lines() -> list[str]:
    """Candidate representations/heads tried on seeds outside the table (20,000 rows, hidden 0)."""
    if not PILOT.exists():
        return []
    p = pd.read_csv(PILOT).drop_duplicates(["n_rows", "hidden_confounding", "method", "seed"], keep="last")
    p["err"] = p.estimate - p.truth
    t = p.pivot_table(index="method", columns="seed", values="err")
    out = ["", "## Candidates tried on seeds not in the table (pilot)", "",
           "Error (estimate - truth) per seed, 20,000 rows, hidden 0 (`reports/text_confounding_history_pilot.csv`). "
           "A candidate was to replace `hist_aipw` only if it clearly lowered the error on these seeds.", "",
           "| method | " + " | ".join(f"seed {c}" for c in t.columns) + " |",
           "| --- | " + " | ".join("---:" for _ in t.columns) + " |"]
    for m, r in t.iterrows():
        out.append(f"| {m} | " + " | ".join("" if pd.isna(v) else f"{v:+.4f}" for v in r.values) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-rows", type=int, default=20000)
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--hidden", type=float, default=0.0)
    ap.add_argument("--auto", action="store_true")
    ap.add_argument("--joined", action="store_true")
    ap.add_argument("--oracle-only", action="store_true",
                    help="naive and oracle_text_aipw only (calibration of --hidden)")
    ap.add_argument("--blocks", default="", help="comma list of hist, outer, hist_r, bilinear, mix, mix_auto, mix_loss, "
                         "mix_auto_loss, mix_loss_default, mix_loss_mu64, ceiling, swap, logged, oracle "
                         "(default: hist, outer, logged, oracle)")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--runs-csv", default=str(RUNS))
    args = ap.parse_args()
    if args.report:
        frames = [pd.read_csv(p) for p in sorted((ROOT / "reports").glob("text_confounding_history_runs*.csv"))]
        write_report(pd.concat(frames, ignore_index=True))
        print(REPORT.read_text())
        return
    import torch

    from causalrec.features import TextEmbedder

    torch.set_num_threads(1)
    embedder = TextEmbedder(device="cpu", progress=False)
    path = Path(args.runs_csv)
    for seed in parse_seeds(args.seeds):
        t0 = time.perf_counter()
        rows = run_seed(seed, args.n_rows, args.hidden, args, embedder)
        new = pd.DataFrame(rows)
        if path.exists():
            new = pd.concat([pd.read_csv(path), new], ignore_index=True)
        from causalrec.data.atomic import atomic_write_with

        atomic_write_with(path, lambda p, d=new: d.to_csv(p, index=False))
        print(f"seed {seed}: {time.perf_counter() - t0:.0f}s "
              + " ".join(f"{r['method']}={r['estimate'] - r['truth']:+.4f}" if "estimate" in r
                         else f"{r['method']}: R^2 {r['r2']:.3f}, log loss {r['log_loss']:.5f}" for r in rows), flush=True)


if __name__ == "__main__":
    main()
