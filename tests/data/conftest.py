"""Fixtures for the data-layer tests: a tiny fake Open Bandit Dataset folder (no network)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from causalrec.data.obd import thompson_position_probs


def pytest_configure(config):
    config.addinivalue_line("markers", "network: downloads from PyPI; skips when PyPI is unreachable")


FAKE_ITEMS = 6
FAKE_POSITIONS = 3
#: Item 0 dominates: Beta(400, 20) draws near 0.95, the others near 0.05-0.5.
FAKE_ALPHA = [400.0, 5.0, 3.0, 2.0, 2.0, 1.0]
FAKE_BETA = [20.0, 10.0, 12.0, 15.0, 20.0, 20.0]


def _write_log(folder, rng, n_rows, n_items, propensity_of, campaign):
    folder.mkdir(parents=True)
    items = rng.integers(0, n_items, n_rows)
    pos = rng.integers(0, FAKE_POSITIONS, n_rows)
    # Clicks more likely for low item ids and top positions, so target policies differ in value.
    p_click = 0.05 + 0.25 * (items == 0) + 0.1 * (pos == 0)
    clicks = (rng.random(n_rows) < p_click).astype(int)
    ts = pd.Timestamp("2019-11-24", tz="UTC") + pd.to_timedelta(rng.permutation(n_rows) * 7, unit="s")
    raw = pd.DataFrame({
        "timestamp": ts.astype(str),
        "item_id": items,
        "position": pos + 1,  # OBD's raw positions are 1-based
        "click": clicks,
        "propensity_score": propensity_of(items, pos),
        "user_feature_0": rng.choice(["a1b2", "c3d4"], n_rows),
        "user_feature_1": rng.choice(["e5", "f6", "g7"], n_rows),
    })
    for a in range(n_items):
        raw[f"user-item_affinity_{a}"] = rng.random(n_rows).round(3)
    raw.to_csv(folder / f"{campaign}.csv")  # with the unnamed index column, as OBD has
    pd.DataFrame({
        "item_id": np.arange(n_items),
        "item_feature_0": rng.normal(size=n_items),
        "item_feature_1": [f"h{a % 2}" for a in range(n_items)],
        "item_feature_2": [f"k{a % 3}" for a in range(n_items)],
        "item_feature_3": ["z"] * n_items,
    }).to_csv(folder / "item_context.csv")


def make_fake_obd(root, n_rows=600, seed=7):
    """Write random/all, bts/all and a prior_bts.yaml in OBD's layout and raw encoding."""
    rng = np.random.default_rng(seed)
    m = FAKE_ITEMS
    _write_log(root / "random" / "all", rng, n_rows, m, lambda a, k: np.full(len(a), 1.0 / m), "all")
    bts = thompson_position_probs(np.array(FAKE_ALPHA), np.array(FAKE_BETA), FAKE_POSITIONS, 20_000, seed=1)
    # Clip so every logged pair has a positive propensity (the real BTS log has none at 0).
    bts_ps = np.clip(bts, 1e-3, None)
    _write_log(root / "bts" / "all", rng, n_rows, m, lambda a, k: bts_ps[a, k], "all")
    (root / "prior_bts.yaml").write_text(yaml.safe_dump({"all": {"alpha": FAKE_ALPHA, "beta": FAKE_BETA}}))
    return root


@pytest.fixture
def fake_obd(tmp_path):
    return make_fake_obd(tmp_path / "obd")
