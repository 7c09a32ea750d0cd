"""Write data_samples/ope/: a small synthetic impression log with known target policy values.

    python analyses/make_ope_sample.py [--out data_samples/ope] [--n-rows 6000] [--seed 2024]

Files (re-running with the same arguments rewrites them byte for byte):

- ``logs.csv``: request_id, segment, item_id, position (1-based, as many production logs
  are), click, propensity (the logging policy's probability of the item at that position);
- ``target_greedy_mix.csv`` and ``target_uniform.csv``: context-free, position-aware
  target policies (item_id, position, prob);
- ``truth.json``: the exact value (expected clicks per impression) of both targets and of
  the logging policy, computed from the simulator's click model, plus the parameters.

The log comes from :func:`causalrec.ope.synthetic.make_bandit_logs`: 20 items, 3
positions, 4 user segments; both the click rates and the logging policy depend on the
segment, so the per-cell outcome model is misspecified (DM is biased) while IPS/DR are not.
Try: ``causalrec ope data_samples/ope/logs.csv --target data_samples/ope/target_greedy_mix.csv
--outcome click --position-base 1 --estimators dm,ips,snips,dr --report ope.html``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from causalrec.data.atomic import atomic_write_text
from causalrec.ope.synthetic import make_bandit_logs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data_samples" / "ope"))
    ap.add_argument("--n-rows", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args(argv)
    out = Path(args.out)
    sb = make_bandit_logs(args.n_rows, n_items=20, n_positions=3, n_segments=4, seed=args.seed)
    logs = sb.logs.copy()
    logs["position"] = logs["position"] + 1  # ship 1-based positions: exercises --position-base 1
    logs["propensity"] = logs["propensity"].round(10)
    atomic_write_text(out / "logs.csv", logs.to_csv(index=False, float_format="%.10g"))
    for name, table in sb.targets.items():
        t = table.assign(position=table["position"] + 1)
        atomic_write_text(out / f"target_{name}.csv", t.to_csv(index=False, float_format="%.12g"))
    truth = {
        "description": "exact expected clicks per impression under each policy (simulator's click model)",
        "position_base": 1,
        "policy_value": {k: round(v, 10) for k, v in sb.truth.items()},
        "n_rows": int(len(logs)),
        "observed_click_rate": round(float(logs["click"].mean()), 10),
        "generator": "causalrec.ope.synthetic.make_bandit_logs",
        "params": sb.params,
        "command": f"python analyses/make_ope_sample.py --n-rows {args.n_rows} --seed {args.seed}",
    }
    atomic_write_text(out / "truth.json", json.dumps(truth, indent=2) + "\n")
    print(f"wrote {out}: {len(logs):,} rows, truth {truth['policy_value']}")


if __name__ == "__main__":
    main()
