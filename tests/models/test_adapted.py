"""AdaptedTextModel (CausalBERT-style) on the tiny encoder, CPU."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from causalrec.errors import InputError
from causalrec.models import AdaptedPredictions, AdaptedTextModel, cross_fit_adapted

WORDS = np.array(["jazz music piano", "running shoes fitness"])


def topic_data(n, rng):
    topic = rng.integers(0, 2, n)
    texts = [f"user likes {WORDS[k]} item {i % 7}" for i, k in enumerate(topic)]
    t = (rng.random(n) < np.where(topic == 1, 0.8, 0.2)).astype(int)
    y = 1.0 * t + 2.0 * topic + rng.normal(scale=0.3, size=n)
    return texts, t, y, topic


FAST = dict(epochs=2, batch_size=16, learning_rate=1e-3, max_length=16, device="cpu")


def test_fit_predict_embed_pickle(tiny_encoder_dir, rng):
    texts, t, y, topic = topic_data(200, rng)
    m = AdaptedTextModel(encoder=tiny_encoder_dir, **FAST)
    assert clone(m).get_params() == m.get_params()
    m.fit(texts, t, y, text_pair=["history"] * len(texts))
    pred = m.predict(texts, text_pair=["history"] * len(texts))
    assert isinstance(pred, AdaptedPredictions)
    assert pred.e_hat.min() >= m.clip_ and pred.e_hat.max() <= 1 - m.clip_
    # the propensity head learned the text confounder
    assert np.corrcoef(pred.e_hat, topic)[0, 1] > 0.5
    assert len(m.loss_curve_) == 2 and m.loss_curve_[1] < m.loss_curve_[0]
    emb = m.embed(texts[:3])
    assert emb.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    again = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(again.predict(texts, text_pair=["history"] * len(texts)).mu1, pred.mu1)


def test_binary_outcome_and_covariates(tiny_encoder_dir, rng):
    texts, t, y, _ = topic_data(120, rng)
    yb = (y > 1.5).astype(float)
    cov = rng.normal(size=(120, 2))
    m = AdaptedTextModel(encoder=tiny_encoder_dir, **FAST).fit(texts, t, yb, covariates=cov)
    p = m.predict(texts, covariates=cov)
    assert m.outcome_loss_ == "bce" and 0 <= p.mu0.min() and p.mu1.max() <= 1
    with pytest.raises(InputError, match="covariates"):
        m.predict(texts)


def test_cross_fit_adapted_out_of_fold(tiny_encoder_dir, rng):
    texts, t, y, _ = topic_data(90, rng)
    groups = np.arange(90) // 3
    pred, folds = cross_fit_adapted(texts, t, y, n_folds=3, groups=groups, return_folds=True,
                                    encoder=tiny_encoder_dir, **{**FAST, "epochs": 1})
    assert np.isfinite(pred.e_hat).all() and np.isfinite(pred.mu0).all()
    for g in np.unique(groups):
        assert len(np.unique(folds[groups == g])) == 1


def test_bad_input(tiny_encoder_dir, rng):
    texts, t, y, _ = topic_data(40, rng)
    m = AdaptedTextModel(encoder=tiny_encoder_dir, **FAST)
    with pytest.raises(InputError, match="binary"):
        m.fit(texts, t * 2, y)
    with pytest.raises(InputError, match="strings"):
        m.fit(texts[:-1] + [None], t, y)
    with pytest.raises(InputError, match="encoder"):
        AdaptedTextModel(encoder="/nonexistent/model").fit(texts, t, y)
