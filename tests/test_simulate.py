"""The simulator's truth is consistent with its logs."""

import json

import numpy as np
import pandas as pd
import pytest

from causalrec.cli import main
from causalrec.errors import InputError
from causalrec.simulate import SimulatedLogs, simulate_logs


@pytest.fixture(scope="module")
def sim() -> SimulatedLogs:
    return simulate_logs(20000, seed=3, confounding=1.5)


def test_reproducible_with_seed():
    a = simulate_logs(1500, seed=7)
    b = simulate_logs(1500, seed=7)
    c = simulate_logs(1500, seed=8)
    pd.testing.assert_frame_equal(a.logs, b.logs)
    assert a.truth["ate"] == b.truth["ate"]
    assert not a.logs["treatment"].equals(c.logs["treatment"])


def test_catalog_seed_shares_texts_across_seeds():
    a = simulate_logs(2000, seed=1, catalog_seed=0, new_user_share=0.0, new_item_share=0.0)
    b = simulate_logs(2000, seed=2, catalog_seed=0, new_user_share=0.0, new_item_share=0.0)
    pool = set(a.items["title"]) | set(b.items["title"])
    # one catalogue: the same item id always carries the same title
    merged = a.items.merge(b.items, on="item_id", suffixes=("_a", "_b"))
    assert len(merged) > 50 and (merged["title_a"] == merged["title_b"]).all()
    assert len(pool) <= 600


def test_shape_and_columns(sim):
    logs = sim.logs
    assert len(logs) == 20000
    for col in ("user_id", "item_id", "request_id", "position", "treatment", "outcome", "propensity",
                "is_random", "y0", "y1", "p_y0", "p_y1", "true_relevance", "item_text", "user_text",
                "item_price", "user_history_len", "click"):
        assert col in logs.columns, col
    assert set(np.unique(logs["treatment"])) <= {0, 1}
    assert logs["position"].between(0, 4).all()
    assert ((logs["propensity"] > 0) & (logs["propensity"] < 1)).all()
    # each request: one user and a permutation of the slots
    g = logs.groupby("request_id")
    assert (g["user_id"].nunique() == 1).all()
    assert (g["position"].nunique() == g.size()).all()
    assert set(sim.items.columns) >= {"item_id", "title", "description", "topic"}
    assert set(logs["item_id"]) == set(sim.items["item_id"])
    assert set(logs["user_id"]) == set(sim.users["user_id"])
    assert "user_text" not in sim.observed().columns or "y1" not in sim.observed().columns


def test_truth_consistent(sim):
    logs, truth = sim.logs, sim.truth
    assert truth["ate_sample"] == pytest.approx((logs["y1"] - logs["y0"]).mean(), abs=1e-12)
    assert truth["ate"] == pytest.approx((logs["p_y1"] - logs["p_y0"]).mean(), abs=1e-12)
    t = logs["treatment"] == 1
    assert truth["att"] == pytest.approx((logs["p_y1"] - logs["p_y0"])[t].mean(), abs=1e-12)
    # observed outcome is the potential outcome of the received arm
    assert (logs["outcome"] == np.where(t, logs["y1"], logs["y0"])).all()
    # monotone effect of exposure; clicks only when exposed
    assert (logs["y1"] >= logs["y0"]).all() and (logs["click"] <= logs["treatment"]).all()
    # realised and expected ATE agree within sampling noise (sd of y1 - y0 <= 0.5)
    assert abs(truth["ate_sample"] - truth["ate"]) < 4 * 0.5 / np.sqrt(len(logs))
    # Bernoulli draws agree with their probabilities
    assert logs["y0"].mean() == pytest.approx(logs["p_y0"].mean(), abs=4 * 0.5 / np.sqrt(len(logs)))
    # per-item truth averages back to the ATE
    iu = truth["item_uplift"]
    assert np.average(iu["uplift"], weights=iu["n"]) == pytest.approx(truth["ate"], abs=1e-12)
    exam = np.asarray(truth["examination"])
    assert np.all(np.diff(exam) < 0)
    assert np.allclose(logs["true_examination"], exam[logs["position"]])


def test_oracle_aipw_recovers_ate_within_ci(sim):
    """AIPW with the true propensity and the true outcome means covers the true ATE."""
    logs = sim.logs
    t = logs["treatment"].to_numpy()
    y = logs["outcome"].to_numpy(float)
    e = logs["propensity"].to_numpy()
    mu0, mu1 = logs["p_y0"].to_numpy(), logs["p_y1"].to_numpy()
    psi = mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)
    est, se = psi.mean(), psi.std(ddof=1) / np.sqrt(len(psi))
    assert abs(est - sim.truth["ate"]) < 1.96 * se
    assert se < 0.01


def test_confounding_knob_biases_naive():
    unconf = simulate_logs(20000, seed=4, confounding=0.0)
    conf = simulate_logs(20000, seed=4, confounding=1.5)
    se = 0.5 * np.sqrt(4 / 20000)  # generous bound on the difference in means' SE
    assert abs(unconf.truth["naive_difference"] - unconf.truth["ate"]) < 4 * se
    assert conf.truth["naive_difference"] - conf.truth["ate"] > 0.1
    # more confounding, wider propensity range
    assert conf.logs["propensity"].std() > 5 * unconf.logs["propensity"].std()


def test_overlap_bounds_propensity():
    s = simulate_logs(5000, seed=5, confounding=3.0, overlap=0.1)
    p = s.logs["propensity"]
    assert p.min() >= 0.1 - 1e-12 and p.max() <= 0.9 + 1e-12


def test_randomised_slice_has_declared_exposure():
    s = simulate_logs(40000, seed=6, random_share=0.25, random_exposure=0.3)
    r = s.logs[s.logs["is_random"] == 1]
    assert len(r) / len(s.logs) == pytest.approx(0.25, abs=0.02)
    assert np.allclose(r["propensity"], 0.3)
    assert r["treatment"].mean() == pytest.approx(0.3, abs=4 * np.sqrt(0.21 / len(r)))
    # positions are shuffled there: exposure and slot independent of affinity
    assert abs(np.corrcoef(r["position"], r["true_affinity"])[0, 1]) < 0.05
    logged = s.logs[s.logs["is_random"] == 0]
    assert np.corrcoef(logged["position"], logged["true_affinity"])[0, 1] < -0.2


def test_ids_repeat_little(sim):
    counts = sim.logs.groupby("user_id")["request_id"].nunique()
    assert counts.median() <= 3
    assert sim.logs["item_is_new"].mean() == pytest.approx(0.05, abs=0.01)


def test_bad_knob_is_input_error():
    with pytest.raises(InputError, match="overlap"):
        simulate_logs(100, overlap=0.7)
    with pytest.raises(InputError, match="n_topics"):
        simulate_logs(100, n_topics=50)


def test_cli_writes_files(tmp_path):
    out = tmp_path / "sim"
    assert main(["simulate", "--n-rows", "600", "--seed", "2", "--out", str(out), "--formats", "parquet,csv"]) == 0
    for f in ("logs.parquet", "logs.csv", "items.csv", "users.csv", "relevance.csv", "truth.json"):
        assert (out / f).exists(), f
    truth = json.loads((out / "truth.json").read_text())
    logs = pd.read_parquet(out / "logs.parquet")
    assert len(logs) == 600 and truth["n_rows"] == 600
    assert truth["ate"] == pytest.approx((logs["p_y1"] - logs["p_y0"]).mean())
    assert isinstance(truth["item_uplift"], list) and truth["knobs"]["seed"] == 2
    assert main(["simulate", "--n-rows", "10", "--out", str(out), "--overlap", "0.9"]) == 2


def test_logging_item_boost_off_by_default_and_misleads_clicks_when_on():
    base = simulate_logs(4000, seed=5, random_share=0.2)
    off = simulate_logs(4000, seed=5, random_share=0.2, logging_item_boost=0.0)
    pd.testing.assert_frame_equal(base.logs, off.logs)
    on = simulate_logs(4000, seed=5, random_share=0.2, logging_item_boost=2.0)
    # relevance, affinity and the randomised slice are untouched: only the logging policy changes
    np.testing.assert_allclose(on.logs["true_relevance"], base.logs["true_relevance"])
    rnd = on.logs["is_random"] == 1
    np.testing.assert_allclose(on.logs.loc[rnd, "propensity"], base.logs.loc[rnd, "propensity"])
    logged = on.logs[~rnd]
    assert not np.allclose(logged["propensity"], base.logs.loc[~rnd, "propensity"])
    # the boost is unrelated to relevance but moves exposure: the noise word predicts exposure, not relevance
    word = logged["item_text"].str.split().str[0]
    by_word = logged.groupby(word).agg(t=("treatment", "mean"), r=("true_relevance", "mean"))
    assert by_word["t"].std() > 2 * base.logs[~rnd].groupby(word)["treatment"].mean().std()
    with pytest.raises(InputError, match="logging_item_boost"):
        simulate_logs(100, logging_item_boost=-1.0)


def test_text_oracle_recomputes_the_true_text_affinity_from_the_text_alone():
    """The text oracle (issue 14): the function of the two texts that carries the confounding,
    recomputed from the logged strings with the known vocabulary, equals the truth column;
    with no hidden confounding it is the whole confounder."""
    from causalrec.simulate import text_oracle_features

    for hidden in (0.0, 0.5):
        logs = simulate_logs(3000, seed=11, hidden_confounding=hidden).logs
        o = text_oracle_features(logs["user_text"], logs["item_text"])
        np.testing.assert_allclose(o["affinity"], logs["true_text_affinity"].to_numpy(), atol=1e-6)
        if hidden == 0.0:
            np.testing.assert_allclose(o["affinity"], logs["true_affinity"].to_numpy(), atol=1e-6)
        else:  # part of the confounder lives outside the text: the oracle does not reach it
            assert np.max(np.abs(o["affinity"] - logs["true_affinity"].to_numpy())) > 0.05
