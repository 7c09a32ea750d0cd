"""Features: text embeddings (with a disk cache), tabular encoding, design matrices.

Nothing here imports torch or transformers at import time; the embedder loads
them when it first needs the model, so commands that never embed text start fast.

Public API::

    TextEmbedder(model=None, device="auto", batch_size=64, max_length=128, cache_dir=None)
    design_matrix(user_emb=None, item_emb=None, covariates=None)   # [u, i, u*i, cov]
    TabularEncoder / encode_tabular(df)                            # numeric z-scored, categoricals one-hot
    build_tiny_encoder(path)                                       # tiny random BERT for tests/examples
    resolve_device("auto")
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TextEmbedder": "causalrec.features.embedder",
    "default_model_path": "causalrec.features.embedder",
    "model_identity": "causalrec.features.identity",
    "EmbeddingCache": "causalrec.features.cache",
    "default_cache_dir": "causalrec.features.cache",
    "design_matrix": "causalrec.features.design",
    "TabularEncoder": "causalrec.features.tabular",
    "encode_tabular": "causalrec.features.tabular",
    "build_tiny_encoder": "causalrec.features.tiny",
    "resolve_device": "causalrec.features.device",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'causalrec.features' has no attribute {name!r}")


def __dir__():
    return __all__
