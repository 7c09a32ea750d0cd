"""Open Bandit Dataset loader and policy tables, on a fake OBD folder (no network)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from causalrec.data import obd
from causalrec.data.obd import (
    bts_policy_table,
    load_obd,
    policy_table_lookup,
    thompson_position_probs,
    uniform_policy_table,
)
from causalrec.errors import InputError

from .conftest import FAKE_ITEMS, FAKE_POSITIONS


def test_loader_canonical_columns_and_positions(fake_obd):
    raw = pd.read_csv(fake_obd / "random" / "all" / "all.csv", index_col=0)
    before = raw.copy()
    d = load_obd("random", "all", data_dir=fake_obd)
    logs = d.logs
    assert list(logs.columns[:5]) == ["timestamp", "item_id", "position", "outcome", "propensity"]
    assert len(logs) == len(raw)
    # Raw positions 1..3 become 0..2.
    assert set(raw["position"]) == {1, 2, 3}
    assert set(logs["position"]) == {0, 1, 2}
    assert d.n_positions == FAKE_POSITIONS and d.schema.n_positions == FAKE_POSITIONS
    assert d.schema.position_base == 0
    assert d.n_items == FAKE_ITEMS
    # Sorted by time, and each row keeps its own values (matched through the timestamp).
    assert logs["timestamp"].is_monotonic_increasing
    assert str(logs["timestamp"].dt.tz) == "UTC"
    by_ts = raw.assign(ts=pd.to_datetime(raw["timestamp"], utc=True)).set_index("ts").loc[logs["timestamp"]]
    np.testing.assert_array_equal(logs["position"].to_numpy(), by_ts["position"].to_numpy() - 1)
    np.testing.assert_array_equal(logs["item_id"].to_numpy(), by_ts["item_id"].to_numpy())
    np.testing.assert_array_equal(logs["outcome"].to_numpy(), by_ts["click"].to_numpy())
    np.testing.assert_allclose(logs["propensity"].to_numpy(), by_ts["propensity_score"].to_numpy())
    # User features are covariates; nothing else leaks in.
    assert d.schema.covariates == tuple(c for c in raw.columns if c.startswith("user"))
    assert set(logs.columns) == {"timestamp", "item_id", "position", "outcome", "propensity", *d.schema.covariates}
    assert d.n_clicks == int(raw["click"].sum())
    pd.testing.assert_frame_equal(raw, before)  # the file's frame is untouched


def test_loader_item_features(fake_obd):
    d = load_obd("bts", "all", data_dir=fake_obd)
    f = d.item_features
    assert list(f.columns) == ["item_id", "item_feature_0", "item_feature_1", "item_feature_2", "item_feature_3"]
    np.testing.assert_array_equal(f["item_id"].to_numpy(), np.arange(FAKE_ITEMS))
    assert d.behavior_policy == "bts" and "local copy" in d.source


def test_loader_errors_name_the_problem(fake_obd, tmp_path):
    with pytest.raises(InputError, match="men.csv"):
        load_obd("random", "men", data_dir=fake_obd)  # campaign not in the fake folder
    with pytest.raises(InputError, match="behavior_policy"):
        load_obd("greedy", data_dir=fake_obd)
    with pytest.raises(InputError, match="campaign"):
        load_obd("random", "kids", data_dir=fake_obd)
    with pytest.raises(InputError, match="not a folder"):
        load_obd("random", data_dir=tmp_path / "nowhere")
    shutil.rmtree(fake_obd / "bts")
    with pytest.raises(InputError, match="data_dir"):
        load_obd("bts", data_dir=fake_obd)


def test_loader_rejects_bad_raw_values(fake_obd):
    path = fake_obd / "random" / "all" / "all.csv"
    raw = pd.read_csv(path, index_col=0)
    raw.loc[3, "position"] = 0  # 0 is not an OBD position (they count from 1)
    raw.to_csv(path)
    with pytest.raises(InputError, match="position"):
        load_obd("random", data_dir=fake_obd)
    raw.loc[3, "position"] = 1
    raw.loc[5, "propensity_score"] = 0.0
    raw.to_csv(path)
    with pytest.raises(InputError, match="propensity_score"):
        load_obd("random", data_dir=fake_obd)
    raw.loc[5, "propensity_score"] = 0.5
    raw.loc[6, "item_id"] = FAKE_ITEMS  # not in item_context.csv
    raw.to_csv(path)
    with pytest.raises(InputError, match="item"):
        load_obd("random", data_dir=fake_obd)


def test_download_failure_is_an_input_error_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(obd.sys, "executable", shutil.which("false") or "/bin/false")
    with pytest.raises(InputError, match="data_dir") as info:
        obd.fetch_obd(tmp_path / "cache")
    assert "could not download" in str(info.value)
    monkeypatch.setattr(obd.sys, "executable", str(tmp_path / "no-such-python"))
    with pytest.raises(InputError, match="data_dir"):
        load_obd("random", cache_dir=tmp_path / "cache")
    assert obd.cached_obd_dir(tmp_path / "cache") is None  # nothing half-written is taken for a cache


def test_bts_dominant_item_takes_position_zero(fake_obd):
    table = bts_policy_table("all", n_sim=20_000, seed=3, data_dir=fake_obd)
    assert list(table.columns) == ["item_id", "position", "prob"]
    assert len(table) == FAKE_ITEMS * FAKE_POSITIONS
    assert not table.duplicated(["item_id", "position"]).any()
    np.testing.assert_allclose(table.groupby("position")["prob"].sum().to_numpy(), 1.0, atol=1e-12)
    p = table.set_index(["item_id", "position"])["prob"]
    assert p[(0, 0)] > 0.999  # Beta(400, 20) beats every other prior
    assert p[(0, 1)] < 1e-3 and p[(0, 2)] < 1e-3
    # Same seed, same table; another seed, a different Monte Carlo draw.
    pd.testing.assert_frame_equal(table, bts_policy_table("all", n_sim=20_000, seed=3, data_dir=fake_obd))
    assert not table["prob"].equals(bts_policy_table("all", n_sim=20_000, seed=4, data_dir=fake_obd)["prob"])


def test_thompson_probs_match_a_closed_form():
    # theta0 ~ Beta(2, 1), theta1 ~ Beta(1, 1): P(theta0 > theta1) = E[theta0] = 2/3.
    n_sim = 60_000
    p = thompson_position_probs(np.array([2.0, 1.0]), np.array([1.0, 1.0]), 2, n_sim=n_sim, seed=0)
    se = np.sqrt(2 / 3 * 1 / 3 / n_sim)
    assert abs(p[0, 0] - 2 / 3) < 4 * se
    np.testing.assert_allclose(p.sum(axis=0), 1.0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)  # with 2 items and 2 positions each item is shown once
    # Identical priors: every item equally likely at every position (n_sim not a multiple of the chunk).
    q = thompson_position_probs(np.full(5, 3.0), np.full(5, 3.0), 3, n_sim=25_001, seed=1)
    assert q.shape == (5, 3)
    assert np.abs(q - 0.2).max() < 4 * np.sqrt(0.2 * 0.8 / 25_001)


def test_thompson_rejects_bad_arguments():
    with pytest.raises(InputError, match="n_positions"):
        thompson_position_probs(np.ones(2), np.ones(2), 3)
    with pytest.raises(InputError, match="n_sim"):
        thompson_position_probs(np.ones(2), np.ones(2), 1, n_sim=0)


def test_bts_prior_errors(fake_obd):
    (fake_obd / "prior_bts.yaml").write_text("all: {alpha: [1, 2], beta: [1]}\n")
    with pytest.raises(InputError, match="prior_bts.yaml"):
        bts_policy_table("all", data_dir=fake_obd)


def test_uniform_policy_table():
    t = uniform_policy_table(4, 2)
    assert len(t) == 8
    np.testing.assert_allclose(t["prob"], 0.25)
    np.testing.assert_allclose(t.groupby("position")["prob"].sum(), 1.0)
    with pytest.raises(InputError):
        uniform_policy_table(2, 3)


def test_policy_table_lookup():
    t = pd.DataFrame({"item_id": [0, 1, 0, 1], "position": [0, 0, 1, 1], "prob": [0.7, 0.3, 0.2, 0.8]})
    np.testing.assert_allclose(policy_table_lookup(t, np.array([1, 0, 1]), np.array([1, 0, 0])), [0.8, 0.7, 0.3])


@pytest.mark.network
def test_fetch_real_sample_from_pypi(tmp_path):
    try:
        root = obd.fetch_obd(tmp_path / "cache")
    except InputError as exc:
        if "could not download" in str(exc):
            pytest.skip(f"PyPI unreachable: {exc}")
        raise
    assert obd.cached_obd_dir(tmp_path / "cache") == root
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    expected = sorted(
        [f"{b}/{c}/{c}.csv" for b in ("random", "bts") for c in ("all", "men", "women")]
        + [f"{b}/{c}/item_context.csv" for b in ("random", "bts") for c in ("all", "men", "women")]
        + ["prior_bts.yaml", ".complete"]
    )
    assert files == expected
    d = load_obd("bts", "all", cache_dir=tmp_path / "cache")
    assert (d.n_rows, d.n_items, d.n_positions) == (10_000, 80, 3)
    alpha, beta = obd.load_bts_prior("all", cache_dir=tmp_path / "cache")
    assert alpha.shape == beta.shape == (80,)
