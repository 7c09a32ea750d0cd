"""How much confounding bias do text embeddings remove? A simulation study.

Data: :func:`causalrec.simulate.simulate_logs` (exposure follows a user-item
affinity that is a function of the user's history text and the item title;
IDs repeat little; 10% new users, 5% new items). One catalogue and user pool
(``catalog_seed=0``) is shared by every run, so texts repeat across seeds and
their embeddings are computed once (disk cache). For each seed the *same* rows,
users and items are drawn at every confounding strength; only exposure changes.

Methods (all through :func:`causalrec.uplift.estimate`, cross-fitted, grouped by user):

* ``naive``: difference in means;
* ``ids_aipw`` / ``ids_dml``: adjustment for one-hot user and item IDs (+ covariates),
  logistic / ridge nuisances (scikit-learn; what an analyst without text would do);
* ``text_aipw`` / ``text_dml``: fixed MiniLM embeddings ``[u, i, u*i]`` (+ covariates),
  causalrec's torch ``PropensityModel`` / ``OutcomeModel``;
* ``sub_adapted_aipw`` / ``sub_adapted_dml``: CausalBERT-like encoder fine-tuned with
  propensity and outcome heads (:mod:`causalrec.models.adapted`), cross-fitted, on the
  first ``--adapted-rows`` rows of each seed (CPU cost); AIPW on its out-of-fold
  nuisances, and econml's ``LinearDML`` final stage on the same nuisances (through
  :class:`causalrec.models.PrecomputedRegressor` / ``PrecomputedClassifier``). Next to
  them, on the same rows: ``sub_naive``, ``sub_text_aipw`` and ``sub_text_dml``;
* ``oracle_aipw`` / ``oracle_dml``: the true affinity (spline basis) as the only
  adjustment variable;
* ``true_nuisance_aipw`` (``--methods true``): AIPW with the simulator's true propensity and
  outcome probabilities (no fitting): the estimator's own sampling behaviour.

Truth: the simulator's ``ate`` (mean of ``p_y1 - p_y0`` over the rows) and ``att``.
Writes ``reports/text_confounding.md`` and ``reports/text_confounding_runs.csv``.

Reproduce the committed report (on the shared 2-core machine: about 20 min for the main
grid, about 25 min for the adapted encoder)::

    .venv/bin/python analyses/text_confounding.py --methods ids,text,dml,oracle   # main grid, 2 processes
    .venv/bin/python analyses/text_confounding.py --methods true --jobs 1 \
        --runs-csv reports/text_confounding_runs_true.csv --out /tmp/true.md
    .venv/bin/python analyses/text_confounding.py --methods adapted \
        --runs-csv /tmp/adapted.csv --out /tmp/adapted.md        # 20 seeds x 3 strengths, 2 processes
    # keep only the sub_* rows of /tmp/adapted.csv in reports/text_confounding_runs_adapted.csv, then
    .venv/bin/python analyses/text_confounding.py \
        --merge reports/text_confounding_runs_adapted.csv,reports/text_confounding_runs.csv,reports/text_confounding_runs_true.csv \
        --wall-seconds <the first command's slowest "total" line>

Without ``--methods`` one run does all but ``true`` (about 45 min).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# One BLAS/OpenMP thread: on a shared 2-core machine, oversubscribed BLAS threads
# made a 1,500-column logistic regression ~70x slower (16 s instead of 0.2 s).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COVARIATES = ["item_price", "user_history_len"]


def sim_kwargs(n_rows: int) -> dict:
    return dict(n_rows=n_rows, catalog_seed=0)


def make_data(seed: int, confounding: float, n_rows: int):
    from causalrec.simulate import simulate_logs

    return simulate_logs(seed=seed, confounding=confounding, **sim_kwargs(n_rows))


def sk_models(seed: int):
    from sklearn.linear_model import LogisticRegression, Ridge

    return LogisticRegression(C=1.0, max_iter=500), Ridge(alpha=1.0)


def mlp_models(seed: int, args):
    from causalrec.models import OutcomeModel, PropensityModel

    hid = (args.hidden,)
    kw = dict(hidden_layer_sizes=hid, device="cpu", random_state=seed, max_epochs=args.epochs,
              learning_rate=3e-3, batch_size=128)
    return PropensityModel(**kw), OutcomeModel(loss="bce", **kw)


def spline_basis(a: np.ndarray) -> np.ndarray:
    from sklearn.preprocessing import SplineTransformer

    return SplineTransformer(n_knots=6, degree=3).fit_transform(a[:, None])


def rows_of(result, name: str, method_label: str, truth: dict, seconds: float, meta: dict) -> list[dict]:
    out = []
    for e in result.estimates:
        if e.estimator != name:
            continue
        tv = truth[e.target]
        out.append({**meta, "method": method_label, "target": e.target, "estimate": e.estimate, "se": e.se,
                    "ci_low": e.ci_low, "ci_high": e.ci_high, "truth": tv,
                    "covered": bool(e.ci_low <= tv <= e.ci_high), "seconds": seconds})
    return out


def run_one(seed: int, confounding: float, args, embedder) -> list[dict]:
    from causalrec.uplift import aipw, estimate

    sim = make_data(seed, confounding, args.n_rows)
    logs = sim.observed()
    truth = {"ate": sim.truth["ate"], "att": sim.truth["att"]}
    meta = {"seed": seed, "confounding": confounding, "n_rows": len(logs),
            "naive_bias_truth": sim.truth["naive_difference"] - sim.truth["ate"]}
    rows: list[dict] = []
    common = dict(treatment="treatment", outcome="outcome", n_folds=args.folds, seed=seed,
                  dml_effect_modifiers=args.dml_modifiers)

    t0 = time.perf_counter()
    r = estimate(logs, methods=("naive",), **common)
    rows += rows_of(r, "naive", "naive", truth, time.perf_counter() - t0, meta)

    if "ids" in args.methods:
        pm, om = sk_models(seed)
        t0 = time.perf_counter()
        r = estimate(logs, features="ids", covariates=COVARIATES, methods=("aipw",),
                     propensity_model=pm, outcome_model=om, **common)
        ta = time.perf_counter() - t0
        rows += rows_of(r, "aipw", "ids_aipw", truth, ta, meta)
    if "ids_dml" in args.methods:
        pm, om = sk_models(seed)
        t0 = time.perf_counter()
        r = estimate(logs, features="ids", covariates=COVARIATES, methods=("dml",),
                     propensity_model=pm, outcome_model=om, **common)
        rows += rows_of(r, "dml", "ids_dml", truth, time.perf_counter() - t0, meta)

    if "text" in args.methods:
        pm, om = mlp_models(seed, args)
        t0 = time.perf_counter()
        r = estimate(logs, features="text", user_text="user_text", item_text="item_text",
                     covariates=COVARIATES, methods=("aipw", "ipw"), embedder=embedder,
                     propensity_model=pm, outcome_model=om, **common)
        ta = time.perf_counter() - t0
        rows += rows_of(r, "aipw", "text_aipw", truth, ta, meta)
        rows += rows_of(r, "ipw", "text_ipw", truth, ta, meta)
        if "text_dml" in args.methods or "dml" in args.methods:
            t0 = time.perf_counter()
            r = estimate(logs, features="text", user_text="user_text", item_text="item_text",
                         covariates=COVARIATES, methods=("dml",), embedder=embedder,
                         propensity_model=pm, outcome_model=om, **common)
            rows += rows_of(r, "dml", "text_dml", truth, time.perf_counter() - t0, meta)

    if "true" in args.methods:
        # AIPW with the simulator's true propensity and outcome probabilities: no fitting,
        # isolates the estimator's own sampling behaviour (bias, SE, coverage)
        t0 = time.perf_counter()
        res = aipw(logs["treatment"].to_numpy(), logs["outcome"].to_numpy(float), sim.logs["propensity"].to_numpy(),
                   sim.logs["p_y0"].to_numpy(), sim.logs["p_y1"].to_numpy(), groups=logs["user_id"].to_numpy())
        secs = time.perf_counter() - t0
        for est in res:
            tv = truth[est.target]
            rows.append({**meta, "method": "true_nuisance_aipw", "target": est.target, "estimate": est.estimate,
                         "se": est.se, "ci_low": est.ci_low, "ci_high": est.ci_high, "truth": tv,
                         "covered": bool(est.ci_low <= tv <= est.ci_high), "seconds": secs})

    if "oracle" in args.methods:
        pm, om = sk_models(seed)
        basis = spline_basis(sim.logs["true_affinity"].to_numpy())
        t0 = time.perf_counter()
        r = estimate(logs, features=basis, methods=("aipw",), propensity_model=pm, outcome_model=om, **common)
        rows += rows_of(r, "aipw", "oracle_aipw", truth, time.perf_counter() - t0, meta)
        t0 = time.perf_counter()
        r = estimate(logs, features=basis, methods=("dml",), propensity_model=pm, outcome_model=om, **common)
        rows += rows_of(r, "dml", "oracle_dml", truth, time.perf_counter() - t0, meta)

    if "adapted" in args.methods and seed < args.adapted_seeds and confounding in args.adapted_strengths:
        rows += run_adapted(sim, logs, truth, meta, seed, args)
    return rows


def run_adapted(sim, logs, truth, meta, seed, args) -> list[dict]:
    """On the first ``adapted_rows`` rows: naive, fixed-embedding AIPW and the cross-fitted
    CausalBERT-like encoder (nuisances from fine-tuned text heads, then AIPW), against the
    subset's own truth. Fine-tuning MiniLM costs a forward and backward pass per row and
    epoch, too slow on this CPU for every run of the main grid."""
    from sklearn.decomposition import PCA

    from causalrec.models import PrecomputedClassifier, PrecomputedRegressor, cross_fit_adapted
    from causalrec.uplift import aipw, estimate
    from causalrec.uplift.ate import dml

    n = min(args.adapted_rows, len(logs))
    sub = logs.iloc[:n].reset_index(drop=True)
    tau = sim.logs["true_uplift"].to_numpy()[:n]
    t = sub["treatment"].to_numpy()
    y = sub["outcome"].to_numpy(float)
    truth_sub = {"ate": float(tau.mean()), "att": float(tau[t == 1].mean())}
    meta = {**meta, "n_rows": n}
    groups = sub["user_id"].to_numpy()
    rows: list[dict] = []
    t0 = time.perf_counter()
    r = estimate(sub, methods=("naive",), treatment="treatment", outcome="outcome")
    rows += rows_of(r, "naive", "sub_naive", truth_sub, time.perf_counter() - t0, meta)
    pm, om = mlp_models(seed, args)
    t0 = time.perf_counter()
    r = estimate(sub, features="text", user_text="user_text", item_text="item_text", covariates=COVARIATES,
                 methods=("aipw",), embedder=args.embedder, propensity_model=pm, outcome_model=om,
                 treatment="treatment", outcome="outcome", n_folds=args.adapted_folds, seed=seed)
    rows += rows_of(r, "aipw", "sub_text_aipw", truth_sub, time.perf_counter() - t0, meta)
    X_fixed = r.nuisance["X"]
    assert X_fixed.shape[0] == n, "the fixed-embedding fit dropped rows; the DML below needs all of them"
    t0 = time.perf_counter()
    r = estimate(sub, features="text", user_text="user_text", item_text="item_text", covariates=COVARIATES,
                 methods=("dml",), embedder=args.embedder, propensity_model=pm, outcome_model=om,
                 treatment="treatment", outcome="outcome", n_folds=args.adapted_folds, seed=seed,
                 dml_effect_modifiers=args.dml_modifiers)
    rows += rows_of(r, "dml", "sub_text_dml", truth_sub, time.perf_counter() - t0, meta)
    t0 = time.perf_counter()
    pred = cross_fit_adapted(sub["user_text"].tolist(), t, y, text_pair=sub["item_text"].tolist(),
                             n_folds=args.adapted_folds, groups=groups, random_state=seed,
                             epochs=args.adapted_epochs, device="cpu", progress=False, num_threads=args.threads)
    e = pred.e_hat  # already calibrated and clipped at AdaptedTextModel's clip (0.01)
    res = aipw(t, y, e, pred.mu0, pred.mu1, groups=groups)
    secs = time.perf_counter() - t0
    # DML on the same out-of-fold adapted nuisances: econml's LinearDML final stage with the
    # main grid's effect modifiers (leading principal components of the fixed-embedding design)
    t1 = time.perf_counter()
    mods = PCA(n_components=args.dml_modifiers, random_state=seed).fit_transform(
        (X_fixed - X_fixed.mean(0)) / (X_fixed.std(0) + 1e-8))
    res_dml, _ = dml(np.arange(n)[:, None], t, y, model_y=PrecomputedRegressor(e * pred.mu1 + (1 - e) * pred.mu0),
                     model_t=PrecomputedClassifier(e), effect_modifiers=mods, n_folds=args.adapted_folds,
                     groups=groups, seed=seed)
    secs_dml = secs + time.perf_counter() - t1
    for method, ests, sec in (("sub_adapted_aipw", res, secs), ("sub_adapted_dml", res_dml, secs_dml)):
        for est in ests:
            tv = truth_sub[est.target]
            rows.append({**meta, "method": method, "target": est.target, "estimate": est.estimate,
                         "se": est.se, "ci_low": est.ci_low, "ci_high": est.ci_high, "truth": tv,
                         "covered": bool(est.ci_low <= tv <= est.ci_high), "seconds": sec})
    return rows


def recoverability(seeds: range, n_rows: int, embedder) -> pd.DataFrame:
    """How visible is the confounder in the fixed embeddings? Per seed: correlation of the
    cosine similarity of the user and item embeddings with the true affinity."""
    out = []
    for s in seeds:
        logs = make_data(s, 1.0, n_rows).logs
        u = embedder.encode_column(logs["user_text"])
        v = embedder.encode_column(logs["item_text"])
        a = logs["true_affinity"].to_numpy()
        out.append({"seed": s, "corr_cosine_affinity": float(np.corrcoef((u * v).sum(1), a)[0, 1])})
    return pd.DataFrame(out)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.assign(error=runs["estimate"] - runs["truth"], width=runs["ci_high"] - runs["ci_low"])
    g = runs.groupby(["target", "confounding", "method"], sort=False)
    s = g.agg(runs=("error", "size"), bias=("error", "mean"), rmse=("error", lambda v: float(np.sqrt(np.mean(v ** 2)))),
              coverage=("covered", "mean"), ci_width=("width", "mean"), seconds=("seconds", "mean")).reset_index()
    naive = s[s["method"] == "naive"].set_index(["target", "confounding"])["bias"]
    sub_naive = s[s["method"] == "sub_naive"].set_index(["target", "confounding"])["bias"]
    key = list(zip(s["target"], s["confounding"], s["method"].str.startswith("sub_"), strict=True))
    nb = np.array([(sub_naive if is_sub else naive).get((tg, c), np.nan) for tg, c, is_sub in key])
    s["bias_removed"] = 1.0 - np.abs(s["bias"]) / np.abs(nb)
    return s


ORDER = ["naive", "ids_aipw", "ids_dml", "text_ipw", "text_aipw", "text_dml", "oracle_aipw", "oracle_dml",
         "true_nuisance_aipw",
         "sub_naive", "sub_text_aipw", "sub_text_dml", "sub_adapted_aipw", "sub_adapted_dml"]


def to_markdown(summary: pd.DataFrame, runs: pd.DataFrame, args, total_seconds: float, env: dict) -> str:
    lines = ["# Text confounding: does adjusting for text embeddings remove exposure bias?", "",
             ("Merged from per-run CSVs by `" + env["command"] + "`; the main grid's run took "
              if env["merged"] else "Generated by `" + env["command"] + "` (")
             + f"wall-clock {total_seconds / 60:.1f} min with {env['jobs']} process(es), on {env['machine']}"
             + (". The times of the other runs merged in are under Reading. " if env["merged"] else "). ")
             + "Every number below comes from those runs; per-run figures are in `"
             + env["runs_csv"] + "`.", "",
             "## Set-up", "",
             f"- Data: `causalrec.simulate.simulate_logs(n_rows={args.n_rows}, seed=s, confounding=c, catalog_seed=0)` "
             f"for seeds s = 0..{args.seeds - 1} and confounding c in {args.strengths}. Exposure probability "
             "`e = 0.05 + 0.9 sigmoid(-0.5 + 1.5 c z)` with `z` the standardised user-item affinity, a function of the "
             "user's history text and the item title only; 10% of requests come from new users and 5% of candidates "
             "are new items; IDs repeat a few times at most. Outcome: purchase (binary); effect of exposure "
             "heterogeneous in affinity and slot.",
             "- Truth: `ate` = mean over rows of `p_y1 - p_y0`; `att` the same over exposed rows.",
             f"- Cross-fitting: {args.folds} folds grouped by user; propensities clipped to [0.01, 0.99]; "
             f"DML = econml `LinearDML` with {args.dml_modifiers} principal components of the adjustment set as effect "
             "modifiers, ATE = mean of the fitted effects.",
             f"- Nuisance models: ids and oracle: scikit-learn `LogisticRegression` / `Ridge`; text: causalrec "
             f"`PropensityModel` / `OutcomeModel` (MLP, hidden {args.hidden}, learning rate 3e-3, batch 128, cross-entropy outcome loss, at most "
             f"{args.epochs} epochs, early stopping; calibrated propensities) over `[u, i, u*i, covariates]` with all-MiniLM-L6-v2 embeddings; oracle: a cubic spline basis "
             "of the true affinity.",
             ]
    if "adapted" in args.methods:
        lines.append(f"- Adapted encoder: {env.get('adapted_note', '')}")
    lines += ["", "## ATE: bias, RMSE, coverage of the 95% interval", "",
              "`bias removed` = 1 - |bias| / |naive bias| at the same confounding strength.", ""]
    for target in ("ate", "att"):
        if target == "att":
            lines += ["", "## ATT", ""]
        sub = summary[summary["target"] == target].copy()
        sub["order"] = sub["method"].map({m: i for i, m in enumerate(ORDER)})
        sub = sub.sort_values(["confounding", "order"])
        lines.append("| confounding | method | runs | bias | RMSE | coverage | mean CI width | bias removed | seconds/run |")
        lines.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for _, r in sub.iterrows():
            lines.append(f"| {r['confounding']:g} | {r['method']} | {r['runs']} | {r['bias']:+.4f} | {r['rmse']:.4f} | "
                         f"{r['coverage']:.2f} | {r['ci_width']:.4f} | {r['bias_removed']:.0%} | {r['seconds']:.1f} |")
    truth = runs[runs["target"] == "ate"].groupby("confounding")["truth"].mean()
    lines += ["", "Mean true ATE per confounding strength: " +
              ", ".join(f"c={c:g}: {v:.4f}" for c, v in truth.items()) + ".", ""]
    lines += ["## Headline (computed from the table above)", ""] + headline(summary) + [""]
    rec = env.get("recoverability")
    if rec is not None and len(rec):
        lines += ["## How visible is the confounder in fixed MiniLM embeddings?", "",
                  f"Over seeds 0..{len(rec) - 1} (confounding 1, {args.n_rows} rows each): the cosine similarity of "
                  f"the user-history and item-title embeddings correlates {rec['corr_cosine_affinity'].mean():.2f} "
                  f"(range {rec['corr_cosine_affinity'].min():.2f}-{rec['corr_cosine_affinity'].max():.2f}) with the "
                  "true affinity (1 would mean the embeddings' similarity is the confounder itself).", ""]
    lines += ["## Reading", "", "{{DISCUSSION}}", ""]
    return "\n".join(lines)


def headline(summary: pd.DataFrame) -> list[str]:
    """One bullet per confounding strength: best text method vs. IDs vs. oracle (ATE)."""
    out = []
    ate = summary[summary["target"] == "ate"]
    for c, sub in ate.groupby("confounding", sort=True):
        sub = sub.set_index("method")
        text = sub[sub.index.str.startswith(("text_", "adapted_"))]
        ids = sub[sub.index.str.startswith("ids_")]
        if text.empty:
            continue
        best = text["bias"].abs().idxmin()
        b = text.loc[best]
        parts = [f"confounding {c:g}: naive bias {sub.loc['naive', 'bias']:+.4f}; best text method "
                 f"`{best}` removes {b['bias_removed']:.0%} of it (bias {b['bias']:+.4f}, coverage "
                 f"{b['coverage']:.2f}, RMSE {b['rmse']:.4f})"]
        if not ids.empty:
            bi = ids["bias"].abs().idxmin()
            parts.append(f"best ID method `{bi}` removes {ids.loc[bi, 'bias_removed']:.0%} "
                         f"(coverage {ids.loc[bi, 'coverage']:.2f})")
        if "oracle_aipw" in sub.index:
            o = sub.loc["oracle_aipw"]
            parts.append(f"oracle AIPW removes {o['bias_removed']:.0%} (coverage {o['coverage']:.2f})")
        target_met = b["bias_removed"] >= 0.8
        parts.append("target (>= 80% removed) " + ("met" if target_met else "NOT met"))
        out.append("- " + "; ".join(parts) + ".")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--seed-start", type=int, default=0, help="first seed (to split the grid over processes)")
    p.add_argument("--seed-stop", type=int, default=None, help="last seed + 1 (default: --seeds)")
    p.add_argument("--merge", type=lambda s: [Path(v) for v in s.split(",")], default=None,
                   help="only build the report from these per-run CSVs (written by earlier shards)")
    p.add_argument("--jobs", type=int, default=2, help="processes, each running a contiguous block of seeds")
    p.add_argument("--n-rows", type=int, default=1500)
    p.add_argument("--strengths", type=lambda s: [float(v) for v in s.split(",")], default=[0.5, 1.0, 2.0])
    p.add_argument("--methods", type=lambda s: s.split(","), default=["ids", "text", "dml", "oracle", "adapted"],
                   help="ids, ids_dml, text, dml (text DML), oracle, adapted, true (AIPW with the true nuisances)")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--dml-modifiers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--adapted-seeds", type=int, default=20)
    p.add_argument("--adapted-strengths", type=lambda s: [float(v) for v in s.split(",")], default=[0.5, 1.0, 2.0])
    p.add_argument("--adapted-rows", type=int, default=400)
    p.add_argument("--adapted-epochs", type=int, default=1)
    p.add_argument("--adapted-folds", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "text_confounding.md")
    p.add_argument("--runs-csv", type=Path, default=ROOT / "reports" / "text_confounding_runs.csv")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--wall-seconds", type=float, default=None,
                   help="with --merge: wall-clock of the run that wrote the CSVs (as it reported), for the report")
    p.add_argument("--recoverability-seeds", type=int, default=5)
    p.add_argument("--discussion", type=Path, default=ROOT / "analyses" / "text_confounding_discussion.md",
                   help="Markdown inserted as the report's Reading section")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from tqdm import tqdm

    from causalrec.data.atomic import atomic_write_text
    from causalrec.features import TextEmbedder

    start = time.perf_counter()
    embed_seconds = 0.0
    stop = args.seed_stop if args.seed_stop is not None else args.seeds
    shard = args.seed_start != 0 or stop != args.seeds
    merged_by_user = args.merge is not None
    if args.jobs > 1 and not shard and not args.merge:
        import subprocess

        edges = np.linspace(0, args.seeds, args.jobs + 1).round().astype(int)
        parts, procs = [], []
        base = [a for a in (argv if argv is not None else sys.argv[1:])]
        for j in range(args.jobs):
            part = args.runs_csv.with_name(f".{args.runs_csv.stem}.part{j}.csv")
            parts.append(part)
            cmd = [sys.executable, __file__, *base, "--jobs", "1", "--seed-start", str(edges[j]),
                   "--seed-stop", str(edges[j + 1]), "--runs-csv", str(part)]
            procs.append(subprocess.Popen(cmd))
        codes = [p.wait() for p in procs]
        if any(codes):
            print(f"shards failed: {codes}", file=sys.stderr)
            return 1
        args.merge = parts
    if args.merge:
        runs = pd.concat([pd.read_csv(f) for f in args.merge], ignore_index=True)
        # runs of the same (seed, strength, method) in several CSVs (e.g. naive) are identical
        runs = runs.drop_duplicates(["seed", "confounding", "method", "target"], keep="first")
        runs = runs.sort_values(["seed", "confounding", "method", "target"], kind="stable").reset_index(drop=True)
        runs.to_csv(args.runs_csv, index=False)
        for f in args.merge:
            if f.name.startswith("."):
                f.unlink()
    else:
        embedder = TextEmbedder(device="cpu", progress=False)
        args.embedder = embedder
        # embed every text once up front (cached on disk: later runs only read the cache)
        texts = set()
        for s in range(args.seed_start, stop):
            d = make_data(s, args.strengths[0], args.n_rows).logs
            texts |= set(d["user_text"]) | set(d["item_text"])
        t0 = time.perf_counter()
        embedder.encode(sorted(texts))
        embed_seconds = time.perf_counter() - t0
        print(f"embedded {len(texts)} unique texts in {embed_seconds:.1f} s "
              f"({embedder.last_stats.n_cache_hits} cache hits)", file=sys.stderr)
        rows: list[dict] = []
        jobs = [(s, c) for s in range(args.seed_start, stop) for c in args.strengths]
        for s, c in tqdm(jobs, desc="runs", file=sys.stderr):
            rows += run_one(s, c, args, embedder)
            pd.DataFrame(rows).to_csv(args.runs_csv, index=False)  # partial results survive an interruption
        runs = pd.DataFrame(rows)
        runs.to_csv(args.runs_csv, index=False)
        total = time.perf_counter() - start
        print(f"embedding: {embed_seconds:.1f} s; total {total:.1f} s", file=sys.stderr)
        if shard:
            return 0  # a shard: the parent process merges and writes the report
    summary = summarise(runs)
    wall = time.perf_counter() - start if args.wall_seconds is None else args.wall_seconds
    rec = recoverability(range(args.recoverability_seeds), args.n_rows, TextEmbedder(device="cpu", progress=False))
    env = {"command": "python analyses/text_confounding.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": f"{os.cpu_count()} shared CPU cores, torch threads={args.threads} per process",
           "jobs": args.jobs, "recoverability": rec, "merged": merged_by_user,
           "runs_csv": str(args.runs_csv.resolve().relative_to(ROOT)) if args.runs_csv.resolve().is_relative_to(ROOT)
           else str(args.runs_csv),
           "adapted_note": f"`causalrec.models.cross_fit_adapted` (MiniLM fine-tuned with propensity and outcome "
                           f"heads, user text and item title as a sequence pair, {args.adapted_epochs} epoch(s), "
                           f"{args.adapted_folds} folds) only on the first {args.adapted_rows} rows of seeds "
                           f"0..{args.adapted_seeds - 1} at confounding {args.adapted_strengths}, for CPU time; "
                           "AIPW and DML (econml `LinearDML` final stage, same effect modifiers as the main grid) "
                           "on its out-of-fold nuisances. Rows `sub_*` compare it with the naive difference and "
                           "fixed-embedding AIPW and DML on the same subset, against the subset's own true "
                           "effect; `bias removed` for them is relative to `sub_naive`"}
    md = to_markdown(summary, runs, args, wall, env)
    disc = args.discussion
    md = md.replace("{{DISCUSSION}}", disc.read_text() if disc.exists() else "(no discussion written yet)")
    atomic_write_text(args.out, md)
    print(summary[summary["target"] == "ate"].to_string(index=False), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
