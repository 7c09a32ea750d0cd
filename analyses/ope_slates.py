"""Study: relative RMSE of the slate estimators at list lengths 3, 5 and 10 (issue 10, section 2's slate part).

    python analyses/ope_slates.py [--seeds 20] [--n-requests 3000] [--out reports/ope_slates.md]

Semi-synthetic ranked-list logs from :mod:`causalrec.ope.slate_synthetic` with an exactly
known (or, for 10 slots, Monte Carlo with a stated error) target value: 4 user segments,
``2L`` items (8, 10, 20), a Plackett-Luce logging policy, and a personalised
Plackett-Luce target given as per-request scores. Two click models: ``cascade`` (a click
satisfies the user with probability 0.6, who stops scanning: the reward at slot k depends
on the items above) and ``independent`` (item-position model). Every log is evaluated
through the public API a user calls, ``causalrec.ope.evaluate(..., target_kind=
"plackett-luce")`` (the same code as ``causalrec ope --target-kind plackett-luce``), value per
list, standard errors clustered by request (the default).

Writes ``reports/ope_slates.md`` (its own report; ``reports/ope_catalogue.md`` can link or
include it) and ``reports/ope_slates_runs.csv`` (one row per log x estimator).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from causalrec.data import LogSchema
from causalrec.data.atomic import atomic_write_text
from causalrec.ope import evaluate
from causalrec.ope.slate_synthetic import make_slate_logs, make_world, true_value

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["sips", "snsips", "iips", "sniips", "rips", "snrips", "cascade_dr", "pi", "snpi"]
LENGTHS = (3, 5, 10)
REWARDS = ("cascade", "independent")
ASSUMED = {"cascade": {"sips", "snsips", "rips", "snrips", "cascade_dr"},
           "independent": {"sips", "snsips", "iips", "sniips", "rips", "snrips", "cascade_dr"}}


def run(seeds: int, n_requests: int) -> tuple[pd.DataFrame, dict]:
    rows, truths = [], {}
    for reward in REWARDS:
        for ell in LENGTHS:
            world = make_world(2 * ell, ell, 4, logging="plackett-luce", reward=reward, world_seed=100 + ell)
            t0 = time.perf_counter()
            truth = true_value(world, truth_samples=400_000)
            truths[(reward, ell)] = truth
            print(f"{reward} L={ell}: truth {truth[0]:.5f} (se {truth[1]:.2g}, {truth[2]}, "
                  f"{time.perf_counter() - t0:.0f} s)", flush=True)
            for s in range(seeds):
                sb = make_slate_logs(n_requests, world=world, truth=truth, seed=10_000 + s)
                t0 = time.perf_counter()
                res = evaluate(sb.logs, sb.target_scores, schema=LogSchema(outcome="click"),
                               target_kind="plackett-luce", estimators=NAMES,
                               propensity_marginal="propensity_marginal", value_per="list", seed=s)
                dt = time.perf_counter() - t0
                for e in res.estimates:
                    d = e.to_dict()
                    rows.append({"reward": reward, "list_length": ell, "seed": s, "estimator": e.estimator,
                                 "estimate": e.estimate, "se": e.se, "ci_low": e.ci_low, "ci_high": e.ci_high,
                                 "mc_se": d.get("mc_se"), "truth": truth[0], "truth_se": truth[1],
                                 "seconds": dt, "marginals": res.diagnostics.get("target_marginal_method"),
                                 "ess_ratio": res.diagnostics["ess_ratio"]})
            print(f"  {seeds} logs done", flush=True)
    return pd.DataFrame(rows), truths


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    g = runs.assign(err=runs["estimate"] - runs["truth"],
                    cover=(runs["ci_low"] <= runs["truth"]) & (runs["truth"] <= runs["ci_high"]))
    out = g.groupby(["reward", "list_length", "estimator"], sort=False).agg(
        truth=("truth", "first"), rmse=("err", lambda e: float(np.sqrt(np.mean(e ** 2)))),
        bias=("err", "mean"), sd=("estimate", "std"), coverage=("cover", "mean"), mean_se=("se", "mean"),
        mc_se=("mc_se", "mean"), seconds=("seconds", "mean"), marginals=("marginals", "first")).reset_index()
    out["rel_rmse"] = out["rmse"] / out["truth"]
    out["rel_bias"] = out["bias"] / out["truth"]
    return out


def _table(summ: pd.DataFrame, reward: str, col: str, fmt: str) -> list[str]:
    sub = summ[summ["reward"] == reward]
    head = "| estimator | " + " | ".join(f"L = {ell}" for ell in LENGTHS) + " |"
    lines = [head, "|---|" + "---:|" * len(LENGTHS)]
    for name in NAMES:
        vals = []
        for ell in LENGTHS:
            r = sub[(sub["list_length"] == ell) & (sub["estimator"] == name)]
            v = r[col].iloc[0] if len(r) else np.nan
            cell = fmt.format(v) if np.isfinite(v) else "-"
            best = sub[(sub["list_length"] == ell) & sub["estimator"].isin(ASSUMED[reward])]["rel_rmse"].min()
            if col == "rel_rmse" and len(r) and np.isclose(v, best):
                cell = f"**{cell}**"
            vals.append(cell)
        tag = "" if name in ASSUMED[reward] else " (assumption fails)"
        lines.append(f"| `{name}`{tag} | " + " | ".join(vals) + " |")
    return lines


def report(summ: pd.DataFrame, truths: dict, seeds: int, n_requests: int, elapsed: float) -> str:
    lines = [
        "# Off-policy evaluation of ranked lists: the slate estimators at list lengths 3, 5 and 10",
        "",
        f"Relative RMSE (RMSE / true value) over {seeds} logs of {n_requests:,} lists each, per list length "
        "and click model; value per list (expected clicks per list). Made by `python analyses/ope_slates.py "
        f"--seeds {seeds} --n-requests {n_requests}` ({elapsed / 60:.0f} min on the shared 2-core machine), "
        "through `causalrec.ope.evaluate(..., target_kind=\"plackett-luce\")`, the code path of "
        "`causalrec ope --target-kind plackett-luce`.",
        "",
        "World (`causalrec.ope.slate_synthetic`): 4 user segments, 2L items (8, 10, 20), a Plackett-Luce "
        "logging policy (scores 0.8 x noisy appeal), a personalised Plackett-Luce target (scores 1.2 x appeal "
        "plus noise) given as per-request scores, click probability sigmoid(-1.5 + appeal) x 0.8^k. "
        "`cascade`: after a click the user is satisfied with probability 0.6 and stops scanning, so a slot's "
        "reward depends on the items above it; `independent`: clicks are independent per slot. cascade_dr "
        "uses the default cross-fitted cell-mean model of the reward to go; iips/pi use the target's "
        "marginals computed by causalrec (exact enumeration for L = 3 and 5, Monte Carlo with 1,000 draws for "
        "L = 10, whose mean `mc_se` is listed below). At L = 10 the log's own marginal logging propensities "
        "are also Monte Carlo (200,000 draws, Rao-Blackwellised), as is the truth.",
        "",
        "True values: " + "; ".join(
            f"{r} L={ell}: {t[0]:.4f}" + (f" ({t[2]}, SE {t[1]:.1g})" if t[2] != "exact" else " (exact)")
            for (r, ell), t in truths.items()) + ".",
        "",
    ]
    for reward in REWARDS:
        lines += [f"## Click model: {reward}", "", "Relative RMSE (bold: best among the estimators whose "
                  "assumptions hold):", "", *_table(summ, reward, "rel_rmse", "{:.3f}"), "",
                  "Relative bias (mean error / truth; its Monte Carlo SE is about rel. RMSE / "
                  f"sqrt({seeds})):", "", *_table(summ, reward, "rel_bias", "{:+.3f}"), "",
                  f"Coverage of the 95% intervals over the {seeds} logs (coarse: one log moves it by "
                  f"{100 / seeds:.0f} points; the 1,000-log check is `tests/ope/test_slate_coverage_slow.py`):",
                  "", *_table(summ, reward, "coverage", "{:.2f}"), ""]
    mc = summ[(summ["list_length"] == 10) & summ["estimator"].isin(["iips", "pi"])]
    lines += [
        "## Reading",
        "",
        _reading(summ),
        "",
        "Monte Carlo error of the target marginals at L = 10 (mean `mc_se` per estimate): "
        + ", ".join(f"{r.estimator} ({r.reward}) {r.mc_se:.2g}" for r in mc.itertuples()) + ".",
        f"Mean time per `evaluate` call (all nine estimators, {n_requests * 3:,} to {n_requests * 10:,} rows): "
        + ", ".join(f"L={ell} {summ[summ['list_length'] == ell]['seconds'].mean():.2f} s" for ell in LENGTHS)
        + ". Timings are from the run that scored the logs, on a shared 2-core machine (load average 5-11 "
        "during it), so they are upper bounds.",
        "",
    ]
    return "\n".join(lines)


def _reading(summ: pd.DataFrame) -> str:
    def get(reward, ell, name, col="rel_rmse"):
        r = summ[(summ["reward"] == reward) & (summ["list_length"] == ell) & (summ["estimator"] == name)]
        return float(r[col].iloc[0])

    parts = []
    for reward in REWARDS:
        parts.append(
            f"{reward} clicks: sips' relative RMSE grows from {get(reward, 3, 'sips'):.3f} (L=3) to "
            f"{get(reward, 10, 'sips'):.3f} (L=10) and its intervals under-cover at L=10 "
            f"({get(reward, 10, 'sips', 'coverage'):.2f}: the whole-list weights are heavy-tailed); rips goes from "
            f"{get(reward, 3, 'rips'):.3f} to {get(reward, 10, 'rips'):.3f} and cascade_dr from "
            f"{get(reward, 3, 'cascade_dr'):.3f} to {get(reward, 10, 'cascade_dr'):.3f}, the best at L=10 of the estimators "
            "that stay unbiased under cascade clicks")
    parts.append(
        "iips is biased under cascade clicks (relative bias "
        + ", ".join(f"{get('cascade', ell, 'iips', 'rel_bias'):+.3f} at L={ell}" for ell in LENGTHS)
        + ", against " + ", ".join(f"{get('independent', ell, 'iips', 'rel_bias'):+.3f}" for ell in LENGTHS)
        + " with independent clicks), yet at 3,000 lists its small variance still gives it the lowest RMSE here: "
        "the bias matters when the interactions are stronger or the log larger, and it does not shrink with more "
        "data. pi is biased in both worlds (relative bias "
        + ", ".join(f"{get('independent', ell, 'pi', 'rel_bias'):+.3f}" for ell in LENGTHS)
        + " with independent clicks) because the logging policy ranks without replacement, not slot by slot "
        "independently, which the run's warning states")
    return ". ".join(parts) + "."


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--n-requests", type=int, default=3000)
    ap.add_argument("--out", default=str(ROOT / "reports" / "ope_slates.md"))
    ap.add_argument("--from-runs", help="rebuild the report from a runs CSV written earlier (truths recomputed)")
    ap.add_argument("--elapsed-min", type=float, default=None, help="with --from-runs: the original run time")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out)
    if args.from_runs:
        runs = pd.read_csv(args.from_runs)
        truths = {(r, ell): true_value(make_world(2 * ell, ell, 4, logging="plackett-luce", reward=r,
                                                  world_seed=100 + ell), truth_samples=400_000)
                  for r in REWARDS for ell in LENGTHS}
        for (r, ell), t in truths.items():  # the runs were scored against these same truths
            sel = (runs["reward"] == r) & (runs["list_length"] == ell)
            assert np.allclose(runs.loc[sel, "truth"], t[0], rtol=1e-5), (r, ell)
        seeds, n_requests = int(runs["seed"].nunique()), args.n_requests
        elapsed = 60 * args.elapsed_min if args.elapsed_min else time.perf_counter() - t0
    else:
        runs, truths = run(args.seeds, args.n_requests)
        seeds, n_requests = args.seeds, args.n_requests
        atomic_write_text(out.with_name(out.stem + "_runs.csv"), runs.to_csv(index=False, float_format="%.6g"))
        elapsed = time.perf_counter() - t0
    summ = summarise(runs)
    text = report(summ, truths, seeds, n_requests, elapsed)
    atomic_write_text(out, text)
    print(text)


if __name__ == "__main__":
    main()
