"""Write data_samples/catalogue/: a large-catalogue log with item titles and a known target value.

    python analyses/make_catalogue_sample.py [--out data_samples/catalogue] [--n-rows 5000] [--n-items 2000] [--seed 0]

Files (re-running with the same arguments rewrites them byte for byte):

- ``logs.csv``: request_id, item_id, click, propensity (one impression per request);
- ``items.csv``: item_id, title (written from the item's topic vocabulary), topic;
- ``target.csv`` / ``logging.csv``: the target's and the logging policy's context-free
  distributions over the catalogue (item_id, prob);
- ``truth.json``: the target's exact value and the simulator's parameters.

From :func:`causalrec.ope.catalogue_synthetic.make_catalogue_logs` (20 topics, reward mostly
through the topic). Try the commands in the README section "Large catalogues".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from causalrec.data.atomic import atomic_write_text
from causalrec.ope.catalogue_synthetic import make_catalogue_logs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data_samples/catalogue"))
    ap.add_argument("--n-rows", type=int, default=5000)
    ap.add_argument("--n-items", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    sim = make_catalogue_logs(a.n_rows, a.n_items, seed=a.seed, world_seed=100 + a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out / "logs.csv", sim.logs.to_csv(index=False))
    atomic_write_text(a.out / "items.csv", sim.catalogue.to_csv(index=False))
    atomic_write_text(a.out / "target.csv", sim.target.to_csv(index=False, float_format="%.10g"))
    atomic_write_text(a.out / "logging.csv", sim.logging.to_csv(index=False, float_format="%.10g"))
    truth = {"policy_value": sim.truth, "params": sim.params}
    atomic_write_text(a.out / "truth.json", json.dumps(truth, indent=2) + "\n")
    print(f"wrote {a.out}: {len(sim.logs):,} rows, {len(sim.catalogue):,} items, truth {sim.truth:.5f}")


if __name__ == "__main__":
    main()
