"""TextEmbedder: pooling definition, de-duplication, length sorting, disk cache, errors."""

import numpy as np
import pandas as pd
import pytest

from causalrec.errors import InputError
from causalrec.features import TextEmbedder, model_identity

TEXTS = ["red running shoes", "a wool coat for cold winter days in the city", "red running shoes",
         "jazz", "the best classic novel of the history of science fiction and romance", "jazz",
         "tea", "organic coffee beans from a small farm"]


def count_forward_rows(emb: TextEmbedder):
    """Register a hook on the encoder counting the rows of every forward pass."""
    _, model = emb.load()
    seen = []
    handle = model.register_forward_hook(lambda mod, args, kwargs, out: seen.append(
        kwargs["input_ids"].shape[0] if "input_ids" in kwargs else args[0].shape[0]), with_kwargs=True)
    return seen, handle


def test_matches_manual_mean_pool(tiny_encoder_dir):
    import torch
    from transformers import AutoModel, AutoTokenizer

    emb = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=False, batch_size=3)
    got = emb.encode(TEXTS)
    tok = AutoTokenizer.from_pretrained(str(tiny_encoder_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(tiny_encoder_dir), local_files_only=True).eval()
    with torch.no_grad():
        for text, vec in zip(TEXTS, got, strict=True):
            enc = tok([text], return_tensors="pt", truncation=True, max_length=128)
            h = model(**enc).last_hidden_state[0].numpy()  # single text: no padding at all
            m = h.mean(axis=0)
            np.testing.assert_allclose(vec, m / np.linalg.norm(m), atol=2e-6)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), emb.dim) == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_unique_strings_embedded_once(tiny_encoder_dir):
    emb = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=False, batch_size=4)
    seen, handle = count_forward_rows(emb)
    rows = TEXTS * 50
    out = emb.encode(rows)
    handle.remove()
    assert sum(seen) == len(set(TEXTS)) == emb.last_stats.n_computed
    assert emb.last_stats.n_texts == len(rows)
    np.testing.assert_array_equal(out[: len(TEXTS)], out[len(TEXTS): 2 * len(TEXTS)])


def test_length_sorting_same_vectors_less_padding(tiny_encoder_dir):
    texts = [("word " * k).strip() for k in (1, 30, 2, 25, 3, 20, 4, 15, 5, 10)]
    a = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=False, batch_size=2, sort_by_length=True)
    b = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=False, batch_size=2, sort_by_length=False)
    va, vb = a.encode(texts), b.encode(texts)
    np.testing.assert_allclose(va, vb, atol=2e-6)
    assert a.last_stats.n_padded_tokens < b.last_stats.n_padded_tokens
    assert a.last_stats.n_tokens == b.last_stats.n_tokens


def test_cache_hit_miss_and_no_model_load(tiny_encoder_dir, tmp_path):
    first = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    v1 = first.encode(TEXTS)
    assert first.last_stats.n_cache_hits == 0 and first.last_stats.n_computed == len(set(TEXTS))
    second = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    v2 = second.encode(TEXTS)
    assert second._model is None, "a full cache hit must not even load the model"
    assert second.last_stats.n_computed == 0 and second.last_stats.cache_hit_rate == 1.0
    np.testing.assert_array_equal(v1, v2)
    # partial hit: only the new text is computed
    seen, handle = count_forward_rows(second)
    v3 = second.encode(TEXTS + ["brand new text"])
    handle.remove()
    assert sum(seen) == 1 and second.last_stats.n_cache_hits == len(set(TEXTS))
    np.testing.assert_array_equal(v3[: len(TEXTS)], v1)


def test_cache_keyed_by_max_length_and_model(tiny_encoder_dir, tmp_path):
    a = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path, max_length=128)
    a.encode(TEXTS)
    b = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path, max_length=4)
    b.encode(TEXTS)
    assert b.last_stats.n_cache_hits == 0
    assert a.cache.dir != b.cache.dir


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_keys"])
def test_corrupt_cache_entry_recomputed(tiny_encoder_dir, tmp_path, damage):
    first = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    v1 = first.encode(TEXTS)
    (emb_file,) = first.cache.dir.glob("*.emb.npy")
    if damage == "truncate":
        emb_file.write_bytes(emb_file.read_bytes()[:-40])
    elif damage == "flip":
        raw = bytearray(emb_file.read_bytes())
        raw[-3] ^= 0xFF
        emb_file.write_bytes(bytes(raw))
    else:
        next(first.cache.dir.glob("*.keys.npy")).unlink()
    again = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    v2 = again.encode(TEXTS)
    assert again.last_stats.n_cache_hits == 0 and again.last_stats.n_computed == len(set(TEXTS))
    assert len(again.cache.corrupt_shards) == 1
    np.testing.assert_allclose(v1, v2, atol=1e-6)
    # the recomputed entries were written back: a third run is all hits
    third = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    third.encode(TEXTS)
    assert third.last_stats.cache_hit_rate == 1.0


def test_shard_without_meta_is_ignored(tiny_encoder_dir, tmp_path):
    first = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    first.encode(TEXTS)
    next(first.cache.dir.glob("*.meta.json")).unlink()  # an interrupted write
    again = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    again.encode(TEXTS)
    assert again.last_stats.n_cache_hits == 0 and again.cache.corrupt_shards == []


def test_encode_column_maps_back_and_names_column(tiny_encoder_dir):
    emb = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=False)
    s = pd.Series(["b", "a", "b", "c"], name="item_text")
    out = emb.encode_column(s)
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_allclose(out[1], emb.encode(["a"])[0], atol=1e-6)
    with pytest.raises(InputError, match="item_text"):
        emb.encode_column(pd.Series(["a", None], name="item_text"))


def test_empty_and_bad_input(tiny_encoder_dir, tmp_path):
    emb = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    assert emb.encode([]).shape == (0, 32)
    with pytest.raises(InputError):
        emb.encode(["a", 3])
    with pytest.raises(InputError, match="model"):
        TextEmbedder(tmp_path / "nope")


def test_model_identity_changes_with_weights(tiny_encoder_dir, tmp_path):
    from causalrec.features import build_tiny_encoder

    other = build_tiny_encoder(tmp_path / "other", seed=1)
    same = build_tiny_encoder(tmp_path / "same", seed=0)
    assert model_identity(other).split("@")[1] != model_identity(tiny_encoder_dir).split("@")[1]
    assert model_identity(same).split("@")[1] == model_identity(tiny_encoder_dir).split("@")[1]


def test_progress_bar_forced(tiny_encoder_dir, capsys):
    emb = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=False, progress=True)
    emb.encode(TEXTS)
    assert "embedding" in capsys.readouterr().err


def test_real_minilm_three_sentences():
    emb = TextEmbedder(device="cpu", cache_dir=False)
    v = emb.encode(["A man is playing a guitar.", "Someone plays an acoustic guitar.",
                    "The stock market fell sharply today."])
    assert v.shape == (3, 384) and emb.dim == 384
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    assert emb.model_id.startswith("all-MiniLM-L6-v2@")


def test_cache_compaction_keeps_every_vector(tiny_encoder_dir, tmp_path, monkeypatch):
    import causalrec.features.cache as cache_mod

    monkeypatch.setattr(cache_mod, "MAX_SHARDS", 3)
    emb = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    batches = [[f"text number {i}", f"other {i}", "shared"] for i in range(6)]
    vecs = [emb.encode(b) for b in batches]
    assert len(list(emb.cache.dir.glob("*.meta.json"))) <= 3
    assert emb.cache.n_entries() == 13  # 12 distinct + "shared" once
    fresh = TextEmbedder(tiny_encoder_dir, device="cpu", cache_dir=tmp_path)
    again = [fresh.encode(b) for b in batches]
    assert fresh._model is None
    for a, b in zip(vecs, again, strict=True):
        np.testing.assert_array_equal(a, b)
