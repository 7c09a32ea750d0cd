"""The text ranker: weighted training, checkpoints, metrics (tiny encoder, CPU)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from causalrec.errors import InputError
from causalrec.ranking import (
    TrainConfig,
    TwoTowerRanker,
    per_request_metrics,
    ranker_policy_table,
    train_ranker,
)

USERS = np.array(["user likes jazz piano", "user likes coffee tea", "user likes running shoes"])
ITEMS = np.array(["jazz piano", "coffee tea", "running shoes", "red lamp"])


def _toy(n=240, seed=0):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, 3, n), rng.integers(0, 4, n)
    return USERS[u], ITEMS[i], (u == i).astype(float), np.repeat(np.arange(n // 4), 4)


def _cfg(**kw):
    base = dict(epochs=2, max_length=16, batch_size=32, seed=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_constant_weights_reproduce_naive_training(tiny_encoder_dir):
    u, i, y, _ = _toy()
    naive, _ = train_ranker(u, i, y, encoder=tiny_encoder_dir, config=_cfg())
    ones, _ = train_ranker(u, i, y, weights=np.ones(len(y)), encoder=tiny_encoder_dir, config=_cfg())
    const, _ = train_ranker(u, i, y, weights=np.full(len(y), 3.7), encoder=tiny_encoder_dir, config=_cfg())
    varied, _ = train_ranker(u, i, y, weights=np.linspace(0.1, 5, len(y)), encoder=tiny_encoder_dir, config=_cfg())
    a, b, c, d = map(_params, (naive, ones, const, varied))
    for k in a:
        assert torch.equal(a[k], b[k]), k
        torch.testing.assert_close(a[k], c[k], rtol=1e-5, atol=1e-6)
    # and the weights do matter when they vary
    assert any(not torch.allclose(a[k], d[k]) for k in a)


def test_training_learns_the_toy_relevance(tiny_encoder_dir):
    u, i, y, g = _toy(n=240)
    model, hist = train_ranker(u, i, y, encoder=tiny_encoder_dir, config=_cfg(epochs=3, head_lr=1e-2))
    assert hist.losses[-1] < hist.losses[0]
    S = model.score_matrix(list(USERS), list(ITEMS))
    assert np.all(S.argmax(axis=1) == np.arange(3)), S
    pair, ph = train_ranker(u, i, y, groups=g, encoder=tiny_encoder_dir,
                            config=_cfg(objective="pairwise", epochs=3, head_lr=1e-2, trainable_layers=-1))
    assert ph.n_pairs > 0 and ph.losses[-1] < ph.losses[0]


def test_cached_bottom_plus_top_equals_full_forward(tiny_encoder_dir):
    model = TwoTowerRanker.from_encoder(tiny_encoder_dir, max_length=16, trainable_layers=1)
    texts = ["red shoes for men and women", "coffee", "the jazz piano history book"]
    tok = model.tokenize(texts)
    with torch.no_grad():
        full = model.encoder(**tok).last_hidden_state
        m = tok["attention_mask"].unsqueeze(-1).float()
        ref = torch.nn.functional.normalize(model.proj((full * m).sum(1) / m.sum(1)), dim=-1)
        h, mask = model.bottom(texts)
        torch.testing.assert_close(model.top(h, mask), ref, rtol=1e-5, atol=1e-6)
    cache = {}
    np.testing.assert_allclose(model.embed(texts, cache=cache), model.embed(texts), rtol=1e-6, atol=1e-7)


def test_checkpoint_round_trip_without_pickle(tiny_encoder_dir, tmp_path):
    u, i, y, _ = _toy()
    model, _ = train_ranker(u, i, y, encoder=tiny_encoder_dir, config=_cfg())
    out = model.save(tmp_path / "ranker")
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "ranker_config.json", "config.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pkl", ".pth")) for f in files)
    loaded = TwoTowerRanker.load(out)
    np.testing.assert_array_equal(loaded.score(list(u[:20]), list(i[:20])), model.score(list(u[:20]), list(i[:20])))
    cfg = json.loads((out / "ranker_config.json").read_text())
    assert cfg["meta"]["objective"] == "pointwise"
    with pytest.raises(InputError, match="not a causalrec ranker"):
        TwoTowerRanker.load(tmp_path)


def test_bad_training_inputs(tiny_encoder_dir):
    u, i, y, _ = _toy(n=8)
    with pytest.raises(InputError, match="weights"):
        train_ranker(u, i, y, weights=-np.ones(8), encoder=tiny_encoder_dir, config=_cfg())
    with pytest.raises(InputError, match="request lists"):
        train_ranker(u, i, y, encoder=tiny_encoder_dir, config=_cfg(objective="pairwise"))
    with pytest.raises(InputError, match="objective"):
        _cfg(objective="listnet")


def test_ndcg_and_recall_by_hand():
    rel = np.array([3.0, 2.0, 0.0, 1.0])
    scores = np.array([0.1, 0.9, 0.5, 0.2])  # ranking: 1 (2.0), 2 (0.0), 3 (1.0), 0 (3.0)
    g = np.zeros(4)
    fr = per_request_metrics(scores, rel, g, ks=(2, 4))
    dcg2 = 2.0 / np.log2(2) + 0.0
    idcg2 = 3.0 / np.log2(2) + 2.0 / np.log2(3)
    assert fr["ndcg@2"].iloc[0] == pytest.approx(dcg2 / idcg2)
    dcg4 = dcg2 + 1.0 / np.log2(4) + 3.0 / np.log2(5)
    idcg4 = idcg2 + 1.0 / np.log2(4)
    assert fr["ndcg@4"].iloc[0] == pytest.approx(dcg4 / idcg4)
    assert fr["recall@2"].iloc[0] == pytest.approx(2.0 / 6.0)
    perfect = per_request_metrics(rel, rel, g, ks=(2,))
    assert perfect["ndcg@2"].iloc[0] == pytest.approx(1.0)


def test_constant_scores_get_random_tie_breaking():
    rng = np.random.default_rng(0)
    n_req, n = 400, 10
    rel = rng.random(n_req * n)
    g = np.repeat(np.arange(n_req), n)
    # rows sorted by relevance within each request: data order would look perfect
    rel = np.sort(rel.reshape(n_req, n), axis=1)[:, ::-1].ravel()
    const = per_request_metrics(np.zeros_like(rel), rel, g, ks=(3,))
    best = per_request_metrics(rel, rel, g, ks=(3,))
    assert const["ndcg@3"].mean() < best["ndcg@3"].mean() - 0.1


def test_ranker_policy_table_is_a_positionwise_distribution():
    S = np.array([[0.1, 0.9, 0.5], [0.8, 0.1, 0.2]])
    tab = ranker_policy_table(S, np.array(["a", "b", "c"]), n_positions=2)
    assert tab.groupby(["row", "position"])["prob"].sum().eq(1.0).all()
    picks = tab[tab.prob == 1].sort_values(["row", "position"])
    assert list(picks.item_id) == ["b", "c", "a", "c"]
    with pytest.raises(InputError):
        ranker_policy_table(S, np.array(["a", "b", "c"]), n_positions=4)
    assert isinstance(tab, pd.DataFrame)
