"""`causalrec ope` reproduces an independent numpy IPS/SNIPS to 1e-6 on OBD logs.

The target is a context-free, position-aware policy table (item_id, position, prob),
as in the Open Bandit protocol: row i's weight is pi_e(a_i, k_i) / p_i. The check runs on
the tiny fake OBD folder (always) and on the real OBD sample (downloaded once into the
user cache; skipped only when PyPI is unreachable).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from causalrec.cli import main
from causalrec.data.obd import bts_policy_table, load_obd, uniform_policy_table
from causalrec.errors import InputError

CANONICAL = ["timestamp", "item_id", "position", "outcome", "propensity"]


def numpy_ips_snips(logs: pd.DataFrame, table: pd.DataFrame) -> tuple[float, float]:
    """Written from the formulas, sharing no code with causalrec."""
    n_items = int(max(table["item_id"].max(), logs["item_id"].max())) + 1
    n_pos = int(max(table["position"].max(), logs["position"].max())) + 1
    pi = np.zeros((n_items, n_pos))
    pi[table["item_id"].to_numpy(), table["position"].to_numpy()] = table["prob"].to_numpy()
    a = logs["item_id"].to_numpy()
    k = logs["position"].to_numpy()
    y = logs["outcome"].to_numpy(dtype=float)
    w = pi[a, k] / logs["propensity"].to_numpy(dtype=float)
    return float(np.mean(w * y)), float(np.sum(w * y) / np.sum(w))


def run_cli(tmp_path, logs: pd.DataFrame, table: pd.DataFrame, name: str) -> dict:
    logs_path = tmp_path / f"{name}_logs.csv"
    target_path = tmp_path / f"{name}_target.csv"
    out_path = tmp_path / f"{name}.json"
    logs[CANONICAL].to_csv(logs_path, index=False)
    table[["item_id", "position", "prob"]].to_csv(target_path, index=False)
    code = main(["ope", str(logs_path), "--target", str(target_path), "--estimators", "ips,snips,dr",
                 "--out", str(out_path)])
    assert code == 0
    return json.loads(out_path.read_text())


def check_reproduces(tmp_path, logs, table, name):
    ips, snips = numpy_ips_snips(logs, table)
    res = run_cli(tmp_path, logs, table, name)
    got = {e["estimator"]: e for e in res["estimates"]}
    assert res["n_rows"] == len(logs)
    np.testing.assert_allclose(got["ips"]["estimate"], ips, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got["snips"]["estimate"], snips, rtol=1e-6, atol=1e-9)
    dr = got["dr"]
    assert np.isfinite([dr["estimate"], dr["se"], dr["ci_low"], dr["ci_high"]]).all()
    assert dr["se"] > 0 and dr["ci_low"] < dr["estimate"] < dr["ci_high"]
    return ips, snips


def test_cli_reproduces_numpy_on_fake_obd(fake_obd, tmp_path):
    random = load_obd("random", data_dir=fake_obd)
    bts = load_obd("bts", data_dir=fake_obd)
    bts_table = bts_policy_table("all", n_sim=20_000, seed=0, data_dir=fake_obd)
    uniform = uniform_policy_table(random.n_items, random.n_positions)
    ips, _ = check_reproduces(tmp_path, random.logs, bts_table, "bts_from_random")
    assert ips > 0  # the fake clicks make the check non-trivial
    check_reproduces(tmp_path, bts.logs, uniform, "random_from_bts")


@pytest.fixture(scope="module")
def real_obd():
    try:
        return load_obd("random", "all"), load_obd("bts", "all")
    except InputError as exc:
        if "could not download" in str(exc):
            pytest.skip(f"Open Bandit Dataset sample not cached and PyPI unreachable: {exc}")
        raise


def test_cli_reproduces_numpy_on_real_obd(real_obd, tmp_path):
    random, bts = real_obd
    assert (random.n_rows, random.n_items, random.n_positions) == (10_000, 80, 3)
    bts_table = bts_policy_table("all", n_sim=100_000, seed=0)
    uniform = uniform_policy_table(bts.n_items, bts.n_positions)
    check_reproduces(tmp_path, random.logs, bts_table, "bts_from_random")
    check_reproduces(tmp_path, bts.logs, uniform, "random_from_bts")
