"""Write data_samples/ope/slates/: a small ranked-list log with a known target value.

    python analyses/make_ope_slates_sample.py [--out data_samples/ope/slates] [--n-requests 2000] [--seed 2024]

Files (re-running with the same arguments rewrites them byte for byte):

- ``logs.csv``: request_id, segment, position (1-based, as many production logs are), item_id,
  click, propensity (the logging policy's probability of the item given the items above it)
  and propensity_marginal (its probability of the item at that slot);
- ``target_scores.csv``: request_id, item_id, score: the target ranker's scores for each
  request's 10 candidates (a Plackett-Luce policy at temperature 1);
- ``truth.json``: the exact expected clicks per list and per impression of that target
  (every ordered list enumerated), plus the parameters.

The log comes from :func:`causalrec.ope.slate_synthetic.make_slate_logs`: 10 items, lists
of 5, 4 user segments, a Plackett-Luce logging policy and cascade clicks (a click can
satisfy the user, who then stops scanning), so rips / cascade_dr / sips are unbiased and
iips / pi are not. Try the command in the README section "Ranked lists".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from causalrec.data.atomic import atomic_write_text
from causalrec.ope.slate_synthetic import make_slate_logs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data_samples" / "ope" / "slates"))
    ap.add_argument("--n-requests", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sb = make_slate_logs(args.n_requests, n_items=10, list_length=5, n_segments=4, seed=args.seed,
                         logging="plackett-luce", reward="cascade")
    logs = sb.logs.copy()
    logs["position"] = logs["position"] + 1
    atomic_write_text(out / "logs.csv", logs.to_csv(index=False, float_format="%.10g"))
    atomic_write_text(out / "target_scores.csv", sb.target_scores.to_csv(index=False, float_format="%.10g"))
    truth = {
        "description": "exact expected clicks of the Plackett-Luce target (temperature 1) under the simulator's "
                       "cascade click model; every ordered list enumerated",
        "position_base": 1,
        "value_per_list": round(sb.truth["value_per_list"], 10),
        "value_per_impression": round(sb.truth["value_per_impression"], 10),
        "method": sb.truth["method"],
        "n_requests": args.n_requests, "list_length": 5,
        "observed_clicks_per_list": round(float(logs["click"].sum() / args.n_requests), 10),
        "generator": "causalrec.ope.slate_synthetic.make_slate_logs",
        "params": sb.params,
        "command": f"python analyses/make_ope_slates_sample.py --n-requests {args.n_requests} --seed {args.seed}",
    }
    atomic_write_text(out / "truth.json", json.dumps(truth, indent=2) + "\n")
    print(f"wrote {out}: {len(logs):,} rows, truth per list {truth['value_per_list']:.4f}")


if __name__ == "__main__":
    main()
