"""User histories: splitting, pooling, one embedding per unique item."""

import numpy as np
import pandas as pd
import pytest

from causalrec.errors import InputError
from causalrec.features.history import attention_pool, encode_history, mean_pool, split_history


class CountingEmbedder:
    """Deterministic fake embedder that records what it was asked to embed."""

    def __init__(self, dim=4):
        self.dim = dim
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        rng = np.random.default_rng(0)
        table = {}
        for t in sorted(set(texts)):
            table[t] = rng.normal(size=self.dim)
        return np.array([table[t] for t in texts], dtype=np.float32)


def test_split_separator_and_lists_agree():
    a = split_history(["x | y", "y", " x |  | z "], " | ")
    b = split_history([["x", "y"], ["y"], ["x", "", "z"]])
    for h in (a, b):
        assert h.n_rows == 3
        got = [sorted(h.texts[h.item[h.row == r]].tolist()) for r in range(3)]
        assert got == [["x", "y"], ["y"], ["x", "z"]]
        assert h.lengths.tolist() == [2, 1, 2]
    assert sorted(a.texts.tolist()) == ["x", "y", "z"]


def test_padded_keeps_most_recent():
    h = split_history([["a", "b", "c"], [], ["d"]])
    p = h.padded(2)
    assert p.shape == (3, 2)
    assert [h.texts[i] for i in p[0]] == ["b", "c"]
    assert p[1].tolist() == [-1, -1]
    assert h.texts[p[2, 0]] == "d" and p[2, 1] == -1


def test_mean_pool_matches_loop():
    h = split_history([["a", "b"], ["b"], [], ["c", "a", "a"]])
    vecs = np.random.default_rng(1).normal(size=(len(h.texts), 3))
    u = mean_pool(h, vecs)
    idx = {t: k for k, t in enumerate(h.texts)}
    expected = [np.mean([vecs[idx[t]] for t in hist], axis=0) if hist else np.zeros(3)
                for hist in (["a", "b"], ["b"], [], ["c", "a", "a"])]
    np.testing.assert_allclose(u, np.array(expected), rtol=1e-5, atol=1e-6)


def test_attention_pool_limits():
    h = split_history([["a", "b"], ["a", "b"]])
    vecs = np.eye(2)[[list(h.texts).index("a"), list(h.texts).index("b")]]
    q = np.array([vecs[0], vecs[1]])
    sharp = attention_pool(h, vecs, q, tau=1e-3)
    np.testing.assert_allclose(sharp, q, atol=1e-6)  # picks the history item equal to the query
    flat = attention_pool(h, vecs, q, tau=1e6)
    np.testing.assert_allclose(flat, mean_pool(h, vecs), atol=1e-5)
    with pytest.raises(InputError):
        attention_pool(h, vecs, q, tau=0)


def test_each_unique_item_embedded_once_and_catalogue_lookup():
    emb = CountingEmbedder()
    col = pd.Series(["i1 | i2", "i2 | i3", "i1"], name="hist")
    lookup = pd.Series({"i1": "red shoes", "i2": "blue hat"})
    h, vecs = encode_history(col, emb, sep=" | ", item_lookup=lookup)
    assert len(emb.calls) == 1 and sorted(emb.calls[0]) == ["blue hat", "i3", "red shoes"]
    assert vecs.shape == (3, 4)


def test_empty_history_everywhere_names_column():
    with pytest.raises(InputError) as exc:
        split_history([[], [""], None], column="liked")
    assert exc.value.column == "liked" and "empty for every row" in str(exc.value)
    with pytest.raises(InputError):
        split_history(["a | b", ["c"]], column="liked")  # mixed without a separator


def test_mixture_weights_read_the_proportions_of_a_convex_combination():
    from causalrec.features.history import TopicClusters

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 40))
    w_true = np.zeros((6, 5))
    w_true[0, 0] = 1.0
    w_true[1, [1, 2]] = [0.3, 0.7]
    w_true[2, [0, 3, 4]] = [0.2, 0.5, 0.3]
    w_true[3:] = rng.dirichlet(np.ones(5), size=3)
    tc = TopicClusters(centers=centers, temperature=0.2, inertia=0.0)
    w = tc.memberships(w_true @ centers, "mixture")
    np.testing.assert_allclose(w, w_true, atol=1e-3)
    assert (w >= 0).all() and np.allclose(w.sum(1), 1.0, atol=1e-5)
    # a vector far outside the hull still gets proportions on the simplex
    far = tc.mixture_weights(3.0 * centers[:1] + 5.0)
    assert (far >= 0).all() and np.isclose(far.sum(), 1.0, atol=1e-5)
    with pytest.raises(InputError):
        tc.memberships(centers, "hard")
