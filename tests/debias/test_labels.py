"""Corrected labels are unbiased for the true relevance; weights are accounted for."""

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema
from causalrec.debias import debias, dr_labels, exposure_weights, ips_labels, pairwise_weights
from causalrec.errors import InputError


@pytest.fixture(scope="module")
def sim():
    from causalrec.simulate import simulate_logs

    s = simulate_logs(20_000, seed=3, n_positions=5, random_share=0.0, n_users=300, n_items=100)
    return s.logs, np.asarray(s.truth["examination"], dtype=float)


def _z(values, target):
    err = values - target
    return abs(err.mean()) / (err.std(ddof=1) / np.sqrt(err.size))


def test_ips_labels_unbiased_per_position_on_impressions(sim):
    logs, exam = sim
    shown = logs[logs.treatment == 1]
    y = ips_labels(shown.click.to_numpy(), exam[shown.position.to_numpy()] / exam[0])
    r = shown.true_relevance.to_numpy()
    pos = shown.position.to_numpy()
    for k in range(5):
        m = pos == k
        assert _z(y[m], r[m]) < 4, k
    # the naive click is biased down at every position below the first
    naive = shown.click.to_numpy()
    assert _z(naive[pos >= 1], r[pos >= 1]) > 10


def test_candidate_ips_and_dr_labels_unbiased_for_relevance(sim):
    """E[T c / (pi rho)] = r over every candidate; DR keeps it with a wrong (constant) outcome model."""
    from sklearn.dummy import DummyRegressor

    logs, exam = sim
    schema = LogSchema(outcome="click")
    r = logs.true_relevance.to_numpy()
    for method, kw in (("ips", {}), ("dr", {"outcome_model": DummyRegressor(strategy="constant", constant=0.9)})):
        res = debias(logs, schema=schema, method=method, exposure="treatment", examination=exam,
                     position_clip=None, bootstrap=0, n_folds=2, **kw)
        y = res.frame["corrected_label"].to_numpy()
        assert _z(y, r) < 4, (method, y.mean(), r.mean())
    naive = debias(logs, schema=schema, method="naive", exposure="treatment", examination="none").frame
    assert _z(naive["corrected_label"].to_numpy(), r) > 10
    # the input rows are unchanged, only columns are added
    pd.testing.assert_frame_equal(res.frame[logs.columns], logs.reset_index(drop=True))
    assert {"weight", "corrected_label", "debias_method", "debias_clip", "debias_model"} <= set(res.frame.columns)


def test_dr_label_formula_and_clipping():
    c = np.array([1.0, 0.0, 1.0])
    rho = np.array([1.0, 0.5, 0.02])
    r_hat = np.array([0.3, 0.3, 0.3])
    np.testing.assert_allclose(dr_labels(c, rho, r_hat), c / rho)  # no clipping: DR == IPS on shown rows
    y = dr_labels(c, rho, r_hat, position_clip=0.1)
    np.testing.assert_allclose(y, r_hat + (c - rho * r_hat) / np.maximum(rho, 0.1))
    np.testing.assert_allclose(ips_labels(c, rho, position_clip=0.1), c / np.maximum(rho, 0.1))


def test_exposure_weights_clip_cap_snips_and_ess():
    p = np.array([0.5, 0.25, 0.01, 0.001])
    w = exposure_weights(p, "ips", clip=0.01)
    np.testing.assert_allclose(w.weights, [2, 4, 100, 100])
    assert w.n_clipped == 1 and w.clip == 0.01
    w = exposure_weights(p, "ips", clip=0.01, cap=50)
    assert w.n_capped == 2 and w.weights.max() == 50
    s = exposure_weights(p, "snips", clip=0.01)
    np.testing.assert_allclose(s.weights.mean(), 1.0)
    assert s.ess == pytest.approx(np.sum(s.weights) ** 2 / np.sum(s.weights ** 2))
    d = s.diagnostics()
    assert d["share_clipped"] == 0.25 and 0 < d["ess_ratio"] <= 1
    with pytest.raises(InputError):
        exposure_weights(np.array([0.0, 0.5]))
    with pytest.raises(InputError):
        exposure_weights(p, "bogus")


def test_pairwise_weights_enumerate_ordered_pairs_within_groups():
    y = np.array([2.0, 0.0, 1.0, 1.0, 0.0])
    w = np.array([1.0, 3.0, 1.0, 1.0, 1.0])
    g = np.array(["a", "a", "a", "b", "b"])
    i, j, pw = pairwise_weights(y, w, g)
    got = sorted(zip(i.tolist(), j.tolist(), pw.tolist(), strict=True))
    assert got == sorted([(0, 1, 2.0 * 2.0), (0, 2, 1.0 * 1.0), (2, 1, 1.0 * 2.0), (3, 4, 1.0)])


def test_debias_impression_mode_summary_and_em(sim):
    logs, _ = sim
    shown = logs[logs.treatment == 1].reset_index(drop=True)
    res = debias(shown, schema=LogSchema(outcome="click"), method="snips", clip=0.05, bootstrap=3)
    assert res.position_bias is not None and res.position_bias.method == "regression_em"
    assert res.frame["weight"].mean() == pytest.approx(1.0)
    assert res.label_shift["n"].sum() == len(shown)
    d = res.to_dict()
    assert d["command"] == "debias" and "ess" in d["diagnostics"] and d["label_shift"]
    assert "ESS" in res.summary()


def test_em_relevance_groups_from_a_plain_column(sim):
    """A grouping column that is neither a role nor a covariate is taken from the input log."""
    logs, _ = sim
    shown = logs[logs.treatment == 1].reset_index(drop=True)
    by_role = debias(shown, schema=LogSchema(outcome="click"), method="snips", clip=0.05)
    plain = debias(shown.assign(query_item=shown["item_id"]), schema=LogSchema(outcome="click"),
                   method="snips", clip=0.05, relevance_groups="query_item")
    np.testing.assert_allclose(plain.position_bias.examination, by_role.position_bias.examination)
    with pytest.raises(InputError, match="not_a_column"):
        debias(shown, schema=LogSchema(outcome="click"), method="snips", relevance_groups="not_a_column")
