"""Does fixed-embedding adjustment remove more text-borne confounding with more rows?

The main study (``analyses/text_confounding.py``, ``reports/text_confounding.md``) uses
1,500 rows per run for CPU time, and fixed MiniLM embeddings remove about half of the naive
bias there. This script reads that study's per-run CSV and the CSVs of the same script run
with more rows per log, and tabulates bias, RMSE, coverage and the share of the naive bias
removed against the number of rows, at confounding strength 1 and for seeds 0..9 in every
size (so each size averages over the same number of draws).

Produce the larger runs (about 2 and 10 minutes on 2 shared CPU cores)::

    .venv/bin/python analyses/text_confounding.py --n-rows 6000 --seeds 10 --strengths 1.0 \\
        --methods ids,text,dml,oracle --runs-csv reports/text_confounding_runs_n6000.csv --out /tmp/n6000.md
    .venv/bin/python analyses/text_confounding.py --n-rows 24000 --seeds 10 --strengths 1.0 \\
        --methods ids,text,dml,oracle --runs-csv reports/text_confounding_runs_n24000.csv --out /tmp/n24000.md

and the adapted encoder fine-tuned on whole 1,500-row logs (about 20 minutes)::

    .venv/bin/python analyses/text_confounding.py --methods adapted --seeds 6 --strengths 1.0 \
        --adapted-seeds 6 --adapted-strengths 1.0 --adapted-rows 1500 --adapted-epochs 3 \
        --runs-csv /tmp/adapted_full.csv --out /tmp/adapted_full.md
    # keep its sub_* rows in reports/text_confounding_runs_adapted_full.csv

then ``.venv/bin/python analyses/text_confounding_scale.py`` writes
``reports/text_confounding_scale.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from text_confounding import summarise  # noqa: E402

METHODS = ["naive", "ids_aipw", "text_ipw", "text_aipw", "text_dml", "oracle_aipw", "oracle_dml"]
DEFAULT_CSVS = ["text_confounding_runs.csv", "text_confounding_runs_n6000.csv", "text_confounding_runs_n24000.csv"]


def scale_table(runs: pd.DataFrame, confounding: float, seeds: int) -> pd.DataFrame:
    keep = runs[(runs["confounding"] == confounding) & (runs["seed"] < seeds) & runs["method"].isin(METHODS)]
    parts = []
    for n, g in keep.groupby("n_rows"):
        s = summarise(g)
        parts.append(s.assign(n_rows=n))
    out = pd.concat(parts, ignore_index=True)
    out["order"] = out["method"].map({m: i for i, m in enumerate(METHODS)})
    return out.sort_values(["target", "order", "n_rows"]).drop(columns="order").reset_index(drop=True)


def to_markdown(table: pd.DataFrame, csvs: list[str], confounding: float, seeds: int) -> str:
    lines = ["# Text confounding against sample size", "",
             f"Built by `python analyses/text_confounding_scale.py` from {', '.join(f'`reports/{c}`' for c in csvs)}: "
             f"confounding strength {confounding:g}, seeds 0..{seeds - 1} at every size. "
             "Same simulator, methods and nuisance models as `reports/text_confounding.md`; only the number of "
             "rows per log changes (each seed draws a different log at each size). `bias removed` = "
             "1 - |bias| / |naive bias| at the same size.", ""]
    for target, t in table.groupby("target", sort=False):
        lines += [f"## {target.upper()}", "",
                  "| method | rows per log | runs | bias | RMSE | coverage | mean CI width | bias removed | seconds/run |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in t.itertuples():
            lines.append(f"| {r.method} | {r.n_rows:,} | {r.runs} | {r.bias:+.4f} | {r.rmse:.4f} | {r.coverage:.2f} | "
                         f"{r.ci_width:.4f} | {r.bias_removed:.0%} | {r.seconds:.1f} |")
        lines.append("")
    lines += ["## Best fixed-embedding method per size (computed from the tables above)", "",
              "The issue's target has two parts: at least 80% of the naive bias removed, and coverage near 95%.",
              ""]
    for target in ("ate", "att"):
        best = table[(table["target"] == target) & table["method"].str.startswith("text_")]
        for n, g in best.groupby("n_rows"):
            b = g.loc[g["bias_removed"].idxmax()]
            removed = "met" if b["bias_removed"] >= 0.8 else "NOT met"
            lines.append(f"- {target.upper()}, {n:,} rows: `{b['method']}` removes {b['bias_removed']:.0%} of the "
                         f"naive bias (>= 80%: {removed}); coverage {b['coverage']:.2f} (near 0.95: "
                         f"{'met' if b['coverage'] >= 0.9 else 'NOT met'}).")
    lines += ["{{ADAPTED}}", "## Reading", "", "{{DISCUSSION}}", ""]
    return "\n".join(lines)


ADAPTED_ORDER = ["sub_naive", "sub_text_aipw", "sub_text_dml", "sub_adapted_aipw", "sub_adapted_dml"]


def adapted_section(runs: pd.DataFrame, csv: str) -> str:
    """The adapted encoder fine-tuned on whole logs (``--adapted-rows`` = the log size)."""
    s = summarise(runs)
    s["order"] = s["method"].map({m: i for i, m in enumerate(ADAPTED_ORDER)})
    s = s.sort_values(["target", "order"])
    meta = runs.iloc[0]
    lines = ["## The adapted encoder on whole logs", "",
             f"From `reports/{csv}`: `cross_fit_adapted` (MiniLM fine-tuned with propensity and outcome heads) on "
             f"the whole {int(meta['n_rows']):,}-row log of seeds {sorted(runs['seed'].unique().tolist())} at "
             f"confounding {meta['confounding']:g} (3 epochs, 2 folds: the command in this script's "
             "docstring), next to fixed-embedding AIPW and DML with the same folds. `bias removed` is relative to "
             "`sub_naive` on the same rows.", "",
             "| target | method | runs | bias | RMSE | coverage | mean CI width | bias removed | seconds/run |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in s.itertuples():
        lines.append(f"| {r.target} | {r.method} | {r.runs} | {r.bias:+.4f} | {r.rmse:.4f} | {r.coverage:.2f} | "
                     f"{r.ci_width:.4f} | {r.bias_removed:.0%} | {r.seconds:.1f} |")
    return "\n".join(lines + ["", ""])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--csvs", type=lambda s: s.split(","), default=DEFAULT_CSVS, help="file names under reports/")
    p.add_argument("--confounding", type=float, default=1.0)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "text_confounding_scale.md")
    p.add_argument("--adapted-csv", default="text_confounding_runs_adapted_full.csv",
                   help="sub_* rows of an adapted run on whole logs (under reports/; skipped if absent)")
    args = p.parse_args(argv)
    from causalrec.data.atomic import atomic_write_text

    runs = pd.concat([pd.read_csv(ROOT / "reports" / c) for c in args.csvs], ignore_index=True)
    runs = runs.drop_duplicates(["n_rows", "seed", "confounding", "method", "target"])
    table = scale_table(runs, args.confounding, args.seeds)
    md = to_markdown(table, args.csvs, args.confounding, args.seeds)
    adapted = ROOT / "reports" / args.adapted_csv
    md = md.replace("{{ADAPTED}}", adapted_section(pd.read_csv(adapted), args.adapted_csv) if adapted.exists() else "")
    disc = Path(__file__).resolve().parent / "text_confounding_scale_discussion.md"
    md = md.replace("{{DISCUSSION}}", disc.read_text() if disc.exists() else "(no discussion written yet)")
    atomic_write_text(args.out, md)
    print(table[table["target"] == "ate"].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
