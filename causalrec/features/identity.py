"""A cheap, content-based identity for a local Hugging Face model folder.

The embedding cache is keyed by this identity, so it must change whenever the
embeddings could change (other weights, other tokenizer, other config) and stay
the same when the folder merely moves (a new virtualenv). Hashing a 90 MB weights
file on every start would cost ~0.2 s; we hash the config and tokenizer files in
full and, for weight files, their size plus the first and last MiB, which differ
for any retrained or re-quantised checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_FULL_HASH = ("config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json",
              "special_tokens_map.json", "merges.txt", "vocab.json", "spiece.model",
              "sentencepiece.bpe.model")
_WEIGHTS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
_EDGE = 1 << 20


def _hash_edges(path: Path, h) -> None:
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(_EDGE))
        if size > 2 * _EDGE:
            fh.seek(size - _EDGE)
            h.update(fh.read(_EDGE))


def model_identity(path: str | os.PathLike, name: str | None = None) -> str:
    """Return ``"<name>@<16 hex digits>"`` for the model folder ``path`` (name: the folder's)."""
    path = Path(path)
    h = hashlib.sha256()
    for fname in _FULL_HASH:
        f = path / fname
        if f.is_file():
            h.update(fname.encode())
            h.update(f.read_bytes())
    for f in sorted(path.iterdir()):
        if f.is_file() and f.name.endswith(_WEIGHTS_SUFFIXES):
            _hash_edges(f, h)
    return f"{name or path.name}@{h.hexdigest()[:16]}"
