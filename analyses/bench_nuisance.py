"""Benchmark PropensityModel / OutcomeModel fit and predict time on a 20k x 800 design matrix.

Synthetic data of the size of a text design matrix: 800 standard-normal columns, a
treatment whose log-odds depend on a few columns, an outcome with a known effect. Reports wall
seconds for fit (with early stopping) and predict, epochs run, and the mean absolute
error of the fitted propensity against the true one.

Usage::

    .venv/bin/python analyses/bench_nuisance.py [--n 20000 --p 800 --device cpu]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def run(n: int = 20000, p: int = 800, device: str = "cpu", seed: int = 0, threads: int | None = 1) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)

    from causalrec.models import OutcomeModel, PropensityModel

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).astype(np.float32)
    logit = 0.6 * X[:, 0] - 0.4 * X[:, 1] + 0.3 * X[:, 2] * X[:, 3]
    e = 1 / (1 + np.exp(-logit))
    t = (rng.random(n) < e).astype(int)
    y = 1.0 * t + X[:, 0] + 0.5 * X[:, 4] + rng.normal(size=n)
    out = {"n": n, "p": p, "device": device, "threads": torch.get_num_threads(),
           "load_before": os.getloadavg()}
    for name, model, target in [("PropensityModel", PropensityModel(device=device), t),
                                ("OutcomeModel", OutcomeModel(device=device), y)]:
        t0 = time.perf_counter()
        model.fit(X, target)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict_proba(X)[:, 1] if name == "PropensityModel" else model.predict(X)
        pred_s = time.perf_counter() - t0
        quality = (f"MAE(e_hat, true e) = {np.abs(pred - e).mean():.3f}" if name == "PropensityModel"
                   else f"RMSE vs E[Y|X] = {np.sqrt(((pred - (t + X[:, 0] + 0.5 * X[:, 4])) ** 2).mean()):.3f}")
        out[name] = {"fit_s": fit_s, "predict_s": pred_s, "epochs": model.n_epochs_,
                     "best_epoch": model.best_epoch_, "quality": quality}
    out["load_after"] = os.getloadavg()
    return out


def to_markdown(r: dict) -> str:
    from importlib.util import module_from_spec, spec_from_file_location
    from pathlib import Path

    spec = spec_from_file_location("bench_embeddings", Path(__file__).with_name("bench_embeddings.py"))
    be = module_from_spec(spec)
    spec.loader.exec_module(be)
    lines = [
        "## Nuisance models (torch MLP) fit time",
        "",
        f"Machine: {be.machine()}; torch threads: {r['threads']}; device `{r['device']}`. "
        f"Load average before: {', '.join(f'{x:.1f}' for x in r['load_before'])}; after: "
        f"{', '.join(f'{x:.1f}' for x in r['load_after'])} (shared machine).",
        f"Data: {r['n']:,} rows x {r['p']} standard-normal features; default hyper-parameters "
        "(one hidden layer of 128, batch 2048, Adam 3e-3, early stopping, patience 5).",
        "",
        "| model | fit s | predict s | epochs (best) | quality |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name in ("PropensityModel", "OutcomeModel"):
        m = r[name]
        lines.append(f"| {name} | {m['fit_s']:.1f} | {m['predict_s']:.2f} | {m['epochs']} ({m['best_epoch']}) "
                     f"| {m['quality']} |")
    lines += ["", f"Produced by `.venv/bin/python analyses/bench_nuisance.py --n {r['n']} --p {r['p']} "
              f"--device {r['device']} --threads {r['threads']}`."]
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--p", type=int, default=800)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: the machine is shared); 0 keeps torch's default")
    ap.add_argument("--out", default="reports/benchmarks.md")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    r = run(a.n, a.p, a.device, threads=a.threads or None)
    md = to_markdown(r)
    print(md)
    if not a.no_write:
        from causalrec.report.sections import update_section

        update_section(a.out, "nuisance-models" + ("-gpu" if a.device.startswith("cuda") else ""), md)
    return r


if __name__ == "__main__":
    main()
