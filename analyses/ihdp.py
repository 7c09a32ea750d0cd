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


def ihdp_table(seed: int):
    """One surface-B draw as a user's table (``x1..x26``, ``T``, ``Y``) and its individual effects."""
    import pandas as pd
    from econml.data.dgps import ihdp_surface_B

    Y, T, X, te = ihdp_surface_B(random_state=seed)
    df = pd.DataFrame(X, columns=[f"x{j + 1}" for j in range(X.shape[1])])
    df["T"] = T.astype(int)
    df["Y"] = Y.astype(float)
    return df, np.asarray(te, dtype=float)


def run_draw(seed: int) -> list[dict]:
    """The public path on one draw: one row per estimator (ATE)."""
    from causalrec.uplift import estimate

    df, te = ihdp_table(seed)
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
                     "warnings": list(res.warnings), "seconds": seconds})
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


def write_markdown(df, path: Path, runs_path: Path) -> str:
    from causalrec.data.atomic import atomic_write_text

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
    text = f"""# IHDP (response surface B) through `causalrec uplift`

Produced by `analyses/ihdp.py` (per-draw rows: `{runs_path.as_posix()}`). {len(seeds)} draws of
`econml.data.dgps.ihdp_surface_B(random_state=seed)`, seeds {seeds[0]}..{seeds[-1]}: 747 children, the
covariate matrix that ships with econml (26 columns `x1..x26`, `x1` constant), the real IHDP
treatment (18.6% treated) and a simulated non-linear outcome with known individual effects.

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
- A coverage above 97% is reported as a miss, not narrowed. Why DML's intervals are wide here is
  not measured by this study (one candidate: its SE also counts outcome-model noise that a
  fixed-design benchmark like IHDP holds fixed).

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
    a = ap.parse_args(argv)
    runs = Path(a.runs)
    runs.parent.mkdir(parents=True, exist_ok=True)
    if not a.report_only:
        done = load_runs(runs)
        done_seeds = set(done["seed"]) if len(done) else set()
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            if seed in done_seeds:
                continue
            rows = run_draw(seed)
            with open(runs, "a") as fh:
                for r in rows:
                    fh.write(json.dumps(r) + "\n")
            print(" ".join(f"seed {seed:3d} {r['method']}: err {r['abs_error']:.3f} covered {r['covered']}"
                           for r in rows), f"{rows[0]['seconds']:.0f}s", flush=True)
    df = load_runs(runs)
    print(write_markdown(df, Path(a.out), runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
