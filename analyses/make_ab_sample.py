"""Write data_samples/ab/: a small seeded synthetic A/B experiment.

    .venv/bin/python analyses/make_ab_sample.py

Files:
- experiment.csv: one row per user (control / treatment, 50/50), revenue with a
  true +4% lift, click rate with a true +5% lift, pre-period covariates and a
  text history (for CUPAC), and ``day``, the user's arrival (days since the start);
- sessions.csv: the same design at session level (one row per session, user_id
  is the randomisation unit, ``day`` the session's time), for `causalrec ab --unit user_id`
  and sequential looks (`--timestamp day --looks 14`);
- srm_experiment.csv: an experiment whose logging lost 15% of the treatment arm
  (a sample-ratio mismatch that `causalrec ab` must flag).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from causalrec.data.atomic import atomic_write_text
from causalrec.experiments.synthetic import simulate_experiment

OUT = Path(__file__).resolve().parents[1] / "data_samples" / "ab"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    users = simulate_experiment(4000, lift=[0.0, 0.04], click_lift=[0.0, 0.05], seed=20261123)
    atomic_write_text(OUT / "experiment.csv", users.to_csv(index=False))
    sessions = simulate_experiment(1500, lift=[0.0, 0.04], click_lift=[0.0, 0.05], seed=7, impressions=True)
    sessions = sessions.drop(columns=["history"])
    atomic_write_text(OUT / "sessions.csv", sessions.to_csv(index=False))
    srm = simulate_experiment(3000, lift=0.0, seed=11)
    rng = np.random.default_rng(1011)  # not the simulation seed: its stream drew the arms
    lost = (srm["variant"] == "treatment").to_numpy() & (rng.random(len(srm)) < 0.15)
    atomic_write_text(OUT / "srm_experiment.csv", srm[~lost].drop(columns=["history"]).to_csv(index=False))
    for f in sorted(OUT.glob("*.csv")):
        print(f"{f.relative_to(OUT.parents[1])}: {f.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
