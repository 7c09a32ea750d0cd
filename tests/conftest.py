"""Shared test fixtures. Area-specific fixtures live next to their tests."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Keep the embedding cache of a test run out of the user's ~/.cache (hermetic, and no stale vectors).
if "CAUSALREC_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["CAUSALREC_CACHE"] = tempfile.mkdtemp(prefix="causalrec-test-cache-")
    atexit.register(shutil.rmtree, os.environ["CAUSALREC_CACHE"], ignore_errors=True)

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    """Folder of a tiny random BERT + WordPiece tokenizer (hidden 32, 2 layers; built in ~1 s, offline).

    Use it wherever the real MiniLM is not needed: ``TextEmbedder(model=tiny_encoder_dir)``,
    ``AdaptedTextModel(encoder=tiny_encoder_dir)``.
    """
    from causalrec.features.tiny import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"))
