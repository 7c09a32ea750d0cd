"""IHDP response surface B (Hill 2011) through causalrec's public uplift path.

Data: ``econml.data.dgps.ihdp_surface_B(seed)`` -- the 747 IHDP children and the
covariate matrix that ships with econml (26 columns, one of them constant), the real
treatment assignment, and a simulated non-linear outcome per seed with known individual
effects. Each draw is written as a table ``x1..x26, T, Y`` and analysed exactly as a user
would with

    causalrec uplift ihdp.csv --treatment T --outcome Y --covariates x1,...,x26 --method aipw,dml

i.e. :func:`causalrec.uplift.estimate` with ``covariates=`` and every other option at its
default (the estimator's own folds, models, clipping and seed). Nothing is standardised,
dropped or fitted here: the study measures the code users run.

Per draw and estimator (``aipw``, ``dml``; target ``ate``) we record |estimate - sample ATE|,
whether the 95% interval covers the sample ATE, the standard error, whether the estimate
lies inside the range an effect can take (``[min Y - max Y, max Y - min Y]``), the warnings
the run raised, and the run time. Rows are appended to ``--runs`` (JSON lines) so an
interrupted run resumes; the Markdown is written from every finished draw.

    .venv/bin/python analyses/ihdp.py --seeds 50

``--assignment resampled`` keeps each draw's covariates, response surfaces, noise and
individual effects but draws the treatment anew per seed, ``T_i ~ Bernoulli(e(x_i))`` with
``e`` an L2 logistic regression (scikit-learn defaults, standardised covariates) of IHDP's real
treatment on ``X``, fitted once; ``Y`` is rebuilt from the draw's two surfaces and its noise. In
IHDP itself the treatment vector is the same in every draw, so the seed-to-seed spread of an
estimate holds the assignment fixed, while an interval for the conditional (sample) ATE also
counts the assignment's variation (``T`` random given ``X``); the resampled variant measures
the intervals where the assignment varies as the estimand assumes:

    .venv/bin/python analyses/ihdp.py --assignment resampled --runs reports/ihdp_runs_resampled.jsonl \
        --out reports/ihdp_resampled.md
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

METHODS = ("aipw", "dml")
TARGET_ERROR = 0.10
TARGET_COVERAGE = (0.90, 0.97)


ASSIGNMENTS = ("ihdp", "resampled")


def _surfaces(seed: int, X: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The noise-free surfaces ``mu0(x), mu1(x)`` of econml's ``ihdp_surface_B(random_state=seed)``.

    Same recipe and random stream as econml 0.17 (``beta`` is the first draw of the seed's
    RandomState; ``mu1 = X beta - omega``, ``mu0 = exp((X + offset) beta)``, ``omega`` from the
    real treated rows); :func:`ihdp_table` checks the result against econml's individual effects.
    """
    from sklearn.utils import check_random_state

    n, d = X.shape
    beta = check_random_state(seed).choice([0, 0.1, 0.2, 0.3, 0.4], size=d, replace=True,
                                           p=[0.6, 0.1, 0.1, 0.1, 0.1])
    offset = np.concatenate((np.zeros((n, 1)), np.ones((n, d - 1)) * 0.5), axis=1)
    mu0 = np.exp((X + offset) @ beta)
    omega = np.mean((X @ beta - mu0)[T == 1]) - 4
    return mu0, X @ beta - omega


_ASSIGNMENT_E: dict[str, np.ndarray] = {}


def _assignment_propensity(X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """``e(x)`` for ``--assignment resampled``: L2 logistic regression of IHDP's treatment on ``X``."""
    if "e" not in _ASSIGNMENT_E:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        Xs = StandardScaler().fit_transform(X)
        _ASSIGNMENT_E["e"] = LogisticRegression(max_iter=5000).fit(Xs, T).predict_proba(Xs)[:, 1]
    return _ASSIGNMENT_E["e"]


def ihdp_table(seed: int, assignment: str = "ihdp"):
    """One surface-B draw as a user's table (``x1..x26``, ``T``, ``Y``) and its individual effects.

    ``assignment="resampled"``: the same draw with ``T`` drawn from ``e(x)`` (module docstring).
    """
    import pandas as pd
    from econml.data.dgps import ihdp_surface_B

    if assignment not in ASSIGNMENTS:
        raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}")
    Y, T, X, te = ihdp_surface_B(random_state=seed)
    if assignment == "resampled":
        T = np.asarray(T).astype(int).ravel()
        mu0, mu1 = _surfaces(seed, X, T)
        if not np.allclose(mu1 - mu0, te):  # econml changed its recipe: refuse rather than mislabel
            raise RuntimeError("econml's ihdp_surface_B no longer matches analyses/ihdp.py's surfaces")
        noise = Y - np.where(T == 1, mu1, mu0)
        T = (np.random.default_rng([seed, 14]).random(len(T)) < _assignment_propensity(X, T)).astype(int)
        Y = np.where(T == 1, mu1, mu0) + noise
    df = pd.DataFrame(X, columns=[f"x{j + 1}" for j in range(X.shape[1])])
    df["T"] = T.astype(int)
    df["Y"] = Y.astype(float)
    return df, np.asarray(te, dtype=float)


def run_draw(seed: int, assignment: str = "ihdp") -> list[dict]:
    """The public path on one draw: one row per estimator (ATE)."""
    from causalrec.uplift import estimate

    df, te = ihdp_table(seed, assignment)
    covariates = [c for c in df.columns if c.startswith("x")]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = estimate(df, treatment="T", outcome="Y", covariates=covariates, methods=list(METHODS))
    seconds = time.perf_counter() - t0
    sate = float(te.mean())
    span = float(df["Y"].max() - df["Y"].min())
    rows = []
    for e in res.estimates:
        if e.target != "ate":
            continue
        rows.append({"seed": seed, "method": e.estimator, "sate": sate, "ate": e.estimate, "se": e.se,
                     "ci_low": e.ci_low, "ci_high": e.ci_high, "abs_error": abs(e.estimate - sate),
                     "covered": bool(e.ci_low <= sate <= e.ci_high), "effect_range": span,
                     "in_range": bool(abs(e.estimate) <= span), "n_warnings": len(res.warnings),
                     "warnings": list(res.warnings), "seconds": seconds, "assignment": assignment,
                     "treated_share": float(df["T"].mean())})
    return rows


def load_runs(path: Path):
    import pandas as pd

    if not path.exists():
        return pd.DataFrame()
    df = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    return df.drop_duplicates(["seed", "method"], keep="last")


def summarise(df):
    import pandas as pd

    g = df.groupby("method")
    n = g.size()
    out = pd.DataFrame({
        "draws": n,
        "mean abs ATE error": g["abs_error"].mean(),
        "se of that mean": g["abs_error"].std() / np.sqrt(n),
        "median abs ATE error": g["abs_error"].median(),
        "max abs ATE error": g["abs_error"].max(),
        "95% CI coverage": g["covered"].mean(),
        "mean SE": g["se"].mean(),
        # seed-to-seed SD of the error over the mean SE: about 1 when the SE is calibrated
        "SD of error / mean SE": (df["ate"] - df["sate"]).groupby(df["method"]).std() / g["se"].mean(),
        "max abs estimate": g["ate"].apply(lambda s: s.abs().max()),
        "estimates outside the effect range": g["in_range"].apply(lambda s: int((~s).sum())),
        "seconds per draw": g["seconds"].mean(),
    })
    return out.loc[[m for m in METHODS if m in out.index]]


def _verdict(row) -> str:
    err_ok = row["mean abs ATE error"] <= TARGET_ERROR
    cov = row["95% CI coverage"]
    cov_ok = TARGET_COVERAGE[0] <= cov <= TARGET_COVERAGE[1]
    rng_ok = row["estimates outside the effect range"] == 0
    parts = [f"mean |ATE error| {row['mean abs ATE error']:.3f} ({'meets' if err_ok else 'MISSES'} <= {TARGET_ERROR})",
             f"coverage {cov:.0%} ({'meets' if cov_ok else 'MISSES'} {TARGET_COVERAGE[0]:.0%}-"
             f"{TARGET_COVERAGE[1]:.0%})",
             f"{'no estimate' if rng_ok else str(row['estimates outside the effect range']) + ' estimates'} "
             "outside the effect range"]
    return "; ".join(parts)


def _assignment_of(df) -> str:
    return str(df["assignment"].iloc[0]) if "assignment" in df.columns and df["assignment"].notna().any() else "ihdp"


def _z_sd(df) -> dict:
    """SD over draws of ``(estimate - sample ATE) / SE`` per method: about 1 when the SEs are calibrated
    (unlike SD / mean SE it is not dominated by the draws whose surface gives a large SE)."""
    return ((df["ate"] - df["sate"]) / df["se"]).groupby(df["method"]).std().to_dict()


def _interval_reading(table, df, others: list, assignment: str) -> str:
    """Why DML's intervals are wider than its seed-to-seed spread on IHDP, from the studies' rows.

    ``others``: ``(path, runs)`` of ``--assignment resampled`` studies (the 'ihdp' report compares).
    """
    def ratios(t, d):
        z = _z_sd(d)
        return ", ".join(f"{m} {t.loc[m, 'SD of error / mean SE']:.2f} / {z[m]:.2f} (coverage "
                         f"{t.loc[m, '95% CI coverage']:.0%})" for m in t.index)

    here = f"SD of the error / mean SE, and SD of the z-score (error / SE), here: {ratios(table, df)}."
    if assignment == "resampled":
        return (f"- {here} The treatment is drawn anew in every draw, as the conditional (sample) ATE's "
                "interval assumes (`T` random given `X`); compare with `reports/ihdp.md`, where IHDP's one "
                "treatment vector is reused by every draw.")
    others = [(p, o) for p, o in others if o is not None and len(o)]
    if not others:
        return (f"- {here} Run `--assignment resampled` (module docstring) to measure the same intervals "
                "where the treatment varies between draws.")
    lines = [f"- {here} With the treatment drawn anew in every draw (`--assignment resampled`: each draw's "
             "surfaces, noise and individual effects kept):"]
    for path, o in others:
        seeds = sorted(o["seed"].unique())
        lines.append(f"  seeds {seeds[0]}..{seeds[-1]} (`{path.as_posix()}`): {ratios(summarise(o), o)};")
    import pandas as pd

    pooled = pd.concat([o for _, o in others], ignore_index=True)
    zr = _z_sd(pooled)
    zh = _z_sd(df)
    n = pooled["seed"].nunique()
    lines[-1] = lines[-1].rstrip(";") + "."
    lines.append(f"  Pooled over those {n} draws the SD of the z-score is aipw {zr['aipw']:.2f}, dml {zr['dml']:.2f} "
                 f"(this study: aipw {zh['aipw']:.2f}, dml {zh['dml']:.2f}).")
    lines.append("""- Reading of DML's width: the final stage's scores are `(T - e) phi (Y - m - (T - e) theta)`; besides
  the outcome noise their residual holds the outcome-model misfit `m - m_hat` and the part of the
  effect the linear final stage misses, `tau - theta`, multiplied by `T - e`. For an interval on the
  conditional (sample) ATE -- covariates fixed, treatment random given them (Imbens 2004) -- that
  product is sampling error and the sandwich counts it; IHDP's draws all reuse one treatment vector,
  so that part cannot vary between them.""")
    if zr["dml"] >= zr["aipw"] - 0.05:
        lines.append(f"  Where the treatment is drawn anew, DML's SE is as calibrated as AIPW's (z-score SD "
                     f"{zr['dml']:.2f} against {zr['aipw']:.2f}): no DML-specific excess was found, and narrowing "
                     "its SE to IHDP's fixed-treatment spread would be tuning to this benchmark, so it is kept and "
                     "DML's coverage above 97% here is reported as a miss.")
    else:
        lines.append(f"  Even where the treatment is drawn anew DML's z-score SD ({zr['dml']:.2f}) is below AIPW's "
                     f"({zr['aipw']:.2f}): the fixed treatment does not explain all of DML's width.")
    return "\n".join(lines)


def write_markdown(df, path: Path, runs_path: Path, others: list | None = None) -> str:
    from causalrec.data.atomic import atomic_write_text

    assignment = _assignment_of(df)
    table = summarise(df)
    seeds = sorted(df["seed"].unique())
    fmt = table.copy()
    for c in fmt.columns:
        if c == "95% CI coverage":
            fmt[c] = fmt[c].map(lambda v: f"{v:.0%}")
        elif c not in ("draws", "estimates outside the effect range"):
            fmt[c] = fmt[c].map(lambda v: f"{v:.3f}")
    cols = ["estimator", *fmt.columns]
    md = "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] +
                   ["| " + " | ".join([str(m), *(str(v) for v in r)]) + " |" for m, r in fmt.iterrows()])
    verdicts = "\n".join(f"- **{m}**: {_verdict(r)}." for m, r in table.iterrows())
    warned = df.groupby("seed")["n_warnings"].first()
    common = {}
    for ws in df.drop_duplicates("seed")["warnings"]:
        for w in ws:
            key = w.split(":")[0][:90]
            common[key] = common.get(key, 0) + 1
    warn_lines = "\n".join(f"- {k}... ({v} of {len(seeds)} draws)" for k, v in
                           sorted(common.items(), key=lambda kv: -kv[1])[:6]) or "- none"
    share = df.drop_duplicates("seed")["treated_share"].mean() if "treated_share" in df.columns else None
    if assignment == "resampled":
        treatment_text = (f"a treatment drawn anew per draw from a logistic propensity fitted to IHDP's real "
                          f"treatment ({share:.1%} treated on average; `--assignment resampled`)")
    else:
        treatment_text = "the real IHDP treatment (18.6% treated, the same in every draw)"
    reading = _interval_reading(table, df, others or [], assignment)
    title = " (treatment resampled per draw)" if assignment == "resampled" else ""
    text = f"""# IHDP (response surface B) through `causalrec uplift`{title}

Produced by `analyses/ihdp.py` (per-draw rows: `{runs_path.as_posix()}`). {len(seeds)} draws of
`econml.data.dgps.ihdp_surface_B(random_state=seed)`, seeds {seeds[0]}..{seeds[-1]}: 747 children, the
covariate matrix that ships with econml (26 columns `x1..x26`, `x1` constant), {treatment_text}
and a simulated non-linear outcome with known individual effects.

Every draw runs the public path a user runs,
`causalrec.uplift.estimate(df, treatment="T", outcome="Y", covariates=["x1", ..., "x26"],
methods=["aipw", "dml"])` (the same as `causalrec uplift ihdp.csv --treatment T --outcome Y
--covariates x1,...,x26 --method aipw,dml`), every other option at its default: for tabular
covariates each nuisance (e, mu0, mu1) has two candidates, causalrec's torch MLP and a linear model
(L2 logistic regression / ridge, penalty chosen on shuffled inner folds, `causalrec.models.linear`),
cross-fitted once on 5 folds; the candidate with the smaller cross-fitted loss is kept per nuisance
and shared by AIPW and DML; propensities clipped at 0.01. Nothing is standardised, dropped or tuned
by the study. CPU only, on a 2-core machine shared with other jobs (times are inflated).

* **|ATE error|**: |estimated ATE - sample ATE| (the sample ATE is the mean of the draw's
  individual effects over the 747 children).
* **95% CI coverage**: share of draws whose 95% interval covers the sample ATE. The intervals are
  for the sample (conditional) ATE, the default `ci_target="sample"`: the influence values leave out
  the spread of the fitted effect across rows (`ci_target="population"` keeps it).
* **effect range**: an estimate is flagged when |estimate| > max(Y) - min(Y), the widest
  effect the outcome's range allows.

{md}

## Against the targets (issue 14)

{verdicts}

## Warnings the runs raised

{warned.gt(0).sum()} of {len(seeds)} draws raised at least one warning:

{warn_lines}

## Reading

- The table and the verdicts above are computed from the per-draw rows; nothing is typed in.
- What changed the AIPW error (0.296 on seeds 0..49 in the previous version of this study): the
  default torch propensity model was over-confident on these 747 rows (9.1% of its cross-fitted
  propensities below the 0.01 clip, effective sample size 74 on every draw). The linear candidate
  has the smaller cross-fitted log loss once its penalty is chosen on *shuffled* folds (IHDP's rows
  are ordered; unshuffled inner folds chose a nearly constant model), so the engine now keeps it.
{reading}

## What changed since the previous version of this study

The previous study fitted the nuisances its own way (it standardised the covariates, dropped the
constant column and fitted each arm by zero weights on the other arm's rows), so it did not measure
the public path. Through the public path the AIPW ATE was between -291,798 and +253,535 on draws
whose truth is 3.5-5.8: the arm-wise outcome fits standardised the covariates in float32 on the
arm's own rows, where a binary covariate was constant; its spurious standard deviation of 1e-7 turned
held-out rows into inputs of 1e7 and outcome predictions of ~3e6. The torch models now standardise
in float64 and zero a column that is constant on the training rows, outcome predictions are bounded
by the observed outcome range, and DML's final stage uses the out-of-fold `mu1 - mu0` as an effect
modifier next to the principal components.
"""
    atomic_write_text(path, text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--runs", default="reports/ihdp_runs.jsonl")
    ap.add_argument("--out", default="reports/ihdp.md")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the Markdown from --runs")
    ap.add_argument("--assignment", choices=ASSIGNMENTS, default="ihdp",
                    help="'ihdp': IHDP's real treatment in every draw; 'resampled': T drawn per draw (docstring)")
    ap.add_argument("--resampled-runs",
                    default="reports/ihdp_runs_resampled.jsonl,reports/ihdp_runs_resampled_heldout.jsonl",
                    help="comma list of --assignment resampled runs the 'ihdp' report compares with, when present")
    a = ap.parse_args(argv)
    runs = Path(a.runs)
    runs.parent.mkdir(parents=True, exist_ok=True)
    if not a.report_only:
        done = load_runs(runs)
        done_seeds = set(done["seed"]) if len(done) else set()
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            if seed in done_seeds:
                continue
            rows = run_draw(seed, a.assignment)
            with open(runs, "a") as fh:
                for r in rows:
                    fh.write(json.dumps(r) + "\n")
            print(" ".join(f"seed {seed:3d} {r['method']}: err {r['abs_error']:.3f} covered {r['covered']}"
                           for r in rows), f"{rows[0]['seconds']:.0f}s", flush=True)
    df = load_runs(runs)
    others = []
    if _assignment_of(df) == "ihdp":
        for name in filter(None, a.resampled_runs.split(",")):
            path = Path(name)
            if path.resolve() != runs.resolve():
                others.append((path, load_runs(path)))
    print(write_markdown(df, Path(a.out), runs, others))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
