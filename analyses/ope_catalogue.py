"""Large-catalogue OPE study: relative RMSE of ips, snips, dr, mips, snmips, offcem vs SNIPS.

    python analyses/ope_catalogue.py [--seeds 10] [--sizes 2000,1000] [--n-rows 5000] [--out reports/ope_catalogue_runs.csv]

For each catalogue size and seed ``s``: a new world (``world_seed = 100 + s``: items, titles,
rewards and both policies) and log from :func:`causalrec.ope.catalogue_synthetic.make_catalogue_logs`
(20 topics, reward mostly through the topic), evaluated through the public API
``causalrec.ope.evaluate`` with ``items=``, ``logging_policy=`` and the packaged MiniLM
``TextEmbedder`` (cached), ``K`` chosen by SLOPE. A reference "oracle" run gives MIPS the true
topics (an embedder that returns one-hot topic vectors, ``K = 20``). Writes one CSV row per
(size, seed, estimator) with the estimate, SE, interval, truth and chosen ``K``; the summary
(RMSE relative to SNIPS, coverage, mean chosen K) is printed and goes into
reports/ope_catalogue.md.
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
from causalrec.ope.catalogue_synthetic import make_catalogue_logs

ESTIMATORS = ["ips", "snips", "dr", "mips", "snmips", "offcem"]


class TopicOracle:
    """An 'embedder' returning one-hot vectors of each title's true topic (the oracle reference)."""

    def __init__(self, catalogue: pd.DataFrame):
        self.topic = dict(zip(catalogue["title"], catalogue["topic"], strict=True))

    def encode(self, texts):
        codes = pd.factorize(pd.Series([self.topic[t] for t in texts]))[0]
        return np.eye(int(codes.max()) + 1)[codes]


def run(seeds: int, sizes: list[int], n_rows: int) -> pd.DataFrame:
    rows = []
    schema = LogSchema(outcome="click")
    for n_items in sizes:
        for s in range(seeds):
            sim = make_catalogue_logs(n_rows, n_items, seed=s, world_seed=100 + s)
            t0 = time.perf_counter()
            res = evaluate(sim.logs, sim.target, schema=schema, estimators=ESTIMATORS, items=sim.catalogue,
                           item_key="item_id", item_text="title", logging_policy=sim.logging, seed=s)
            secs = time.perf_counter() - t0
            orc = evaluate(sim.logs, sim.target, schema=schema, estimators=["mips", "snmips"], items=sim.catalogue,
                           logging_policy=sim.logging, embedder=TopicOracle(sim.catalogue),
                           embedding_clusters=sim.params["n_topics"], seed=s)
            for r, prefix in ((res, ""), (orc, "oracle_")):
                for e in r.estimates:
                    rows.append(dict(n_items=n_items, seed=s, estimator=prefix + e.estimator, estimate=e.estimate,
                                     se=e.se, ci_low=e.ci_low, ci_high=e.ci_high, truth=sim.truth,
                                     clusters=e.extra.get("clusters"), ess=r.diagnostics["ess"], seconds=secs))
            print(f"n_items={n_items} seed={s}: truth {sim.truth:.4f} " + " ".join(
                f"{e.estimator}={e.estimate:.4f}" for e in res.estimates) + f" ({secs:.1f} s)", flush=True)
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(err=df.estimate - df.truth, covered=(df.ci_low <= df.truth) & (df.truth <= df.ci_high))
    g = df.groupby(["n_items", "estimator"])
    out = pd.DataFrame({"rmse": g.err.apply(lambda e: float(np.sqrt(np.mean(e ** 2)))), "bias": g.err.mean(),
                        "coverage": g.covered.mean(), "mean_K": g.clusters.mean(), "n": g.size()}).reset_index()
    ref = out[out.estimator == "snips"].set_index("n_items").rmse
    out["rmse_vs_snips"] = out.rmse / out.n_items.map(ref)
    allr = df.groupby("estimator").err.apply(lambda e: float(np.sqrt(np.mean(e ** 2))))
    tot = pd.DataFrame({"n_items": "all", "estimator": allr.index, "rmse": allr.values,
                        "rmse_vs_snips": allr.values / allr["snips"]})
    return pd.concat([out, tot], ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--sizes", default="2000,1000")
    ap.add_argument("--n-rows", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=Path("reports/ope_catalogue_runs.csv"))
    a = ap.parse_args()
    df = run(a.seeds, [int(x) for x in a.sizes.split(",")], a.n_rows)
    atomic_write_text(a.out, df.to_csv(index=False))
    print(summarise(df).to_string(index=False))


if __name__ == "__main__":
    main()
