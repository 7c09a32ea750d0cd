"""On-disk embedding cache: sharded ``.npy`` files with a checksum per shard.

Layout under ``<cache_dir>/<namespace>/`` (one namespace per model identity and
``max_length``, so two models never share vectors)::

    <shard>.emb.npy     float32 (n, d) embeddings
    <shard>.keys.npy    |S32 (n,) sha256 digests of the texts, same order
    <shard>.meta.json   {"n": n, "dim": d, "emb_sha256": ..., "keys_sha256": ...}

Each file is written atomically (temporary file + rename) and the meta file is
written last: a shard without meta is an interrupted write and is ignored. A shard
whose files do not match the checksums in its meta (truncated, bit-flipped,
half-deleted) is reported as corrupt, deleted, and its texts count as misses, so
the embedder recomputes them. Every ``put`` writes a new shard named with a random
id, so concurrent writers never collide; lookups are vectorised through a pandas
index over all shards' keys.

Written by hand because no maintained library offers a content-addressed,
checksummed array store without a server (joblib.Memory caches whole calls,
not per-text vectors).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import uuid
from pathlib import Path

import numpy as np

from causalrec.data.atomic import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

ENV_VAR = "CAUSALREC_CACHE"
#: more shards than this in a namespace and ``put`` merges them into one
MAX_SHARDS = 64


def default_cache_dir() -> Path:
    """``$CAUSALREC_CACHE/embeddings`` if set, else ``~/.cache/causalrec/embeddings``."""
    root = os.environ.get(ENV_VAR)
    base = Path(root) if root else Path.home() / ".cache" / "causalrec"
    return base / "embeddings"


def text_digests(texts) -> np.ndarray:
    """sha256 of each text's UTF-8 bytes as an ``|S32`` array (one Python call per unique text)."""
    return np.array([hashlib.sha256(t.encode("utf-8")).digest() for t in texts], dtype="S32")


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


class EmbeddingCache:
    """Content-addressed store of embedding vectors for one model namespace.

    Parameters
    ----------
    root:
        Cache folder (the namespace folder is created below it).
    namespace:
        Identifies the model and the settings that change vectors, e.g.
        ``"all-MiniLM-L6-v2@<hash>-len128"``.
    """

    def __init__(self, root: str | os.PathLike, namespace: str):
        safe = re.sub(r"[^A-Za-z0-9_.@-]+", "_", namespace)
        self.dir = Path(root) / safe
        self.corrupt_shards: list[str] = []

    # -- reading ---------------------------------------------------------
    def _shards(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(self.dir.glob("*.meta.json"))

    def _drop(self, meta_path: Path, reason: str) -> None:
        stem = meta_path.name[: -len(".meta.json")]
        log.warning("embedding cache shard %s is corrupt (%s); recomputing its entries", stem, reason)
        self.corrupt_shards.append(stem)
        for suffix in (".meta.json", ".emb.npy", ".keys.npy"):
            try:
                (self.dir / f"{stem}{suffix}").unlink()
            except FileNotFoundError:
                pass

    def _load_checked(self, meta_path: Path, which: str) -> np.ndarray | None:
        stem = meta_path.name[: -len(".meta.json")]
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            raw = (self.dir / f"{stem}.{which}.npy").read_bytes()
            if hashlib.sha256(raw).hexdigest() != meta[f"{which}_sha256"]:
                raise ValueError("checksum mismatch")
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
            if arr.shape[0] != meta["n"] or (which == "emb" and arr.shape[1] != meta["dim"]):
                raise ValueError("shape mismatch")
            return arr
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            self._drop(meta_path, str(exc) or type(exc).__name__)
            return None

    def get(self, digests: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Look up ``digests``; return ``(vectors (n, dim) float32, found mask (n,))``."""
        import pandas as pd

        n = len(digests)
        out = np.zeros((n, dim), dtype=np.float32)
        found = np.zeros(n, dtype=bool)
        if n == 0:
            return out, found
        metas, keys = [], []
        for meta_path in self._shards():
            k = self._load_checked(meta_path, "keys")
            if k is not None:
                metas.append(meta_path)
                keys.append(k)
        if not keys:
            return out, found
        shard_of = np.concatenate([np.full(len(k), j, dtype=np.int64) for j, k in enumerate(keys)])
        row_of = np.concatenate([np.arange(len(k), dtype=np.int64) for k in keys])
        all_keys = pd.Index(np.concatenate(keys).astype(object))
        if not all_keys.is_unique:  # two writers cached the same text: any copy will do
            keep = ~all_keys.duplicated()
            all_keys, shard_of, row_of = all_keys[keep], shard_of[keep], row_of[keep]
        pos = all_keys.get_indexer(digests.astype(object))
        hit = pos >= 0
        for j in np.unique(shard_of[pos[hit]]):
            emb = self._load_checked(metas[j], "emb")
            if emb is None or emb.shape[1] != dim:
                continue
            sel = hit & (shard_of[np.where(hit, pos, 0)] == j)
            out[sel] = emb[row_of[pos[sel]]]
            found |= sel
        return out, found

    # -- writing ---------------------------------------------------------
    def put(self, digests: np.ndarray, vectors: np.ndarray) -> Path | None:
        """Store ``vectors`` under ``digests`` as one new shard (atomic files, meta last)."""
        if len(digests) == 0:
            return None
        out = self._write_shard(digests, vectors)
        if len(self._shards()) > MAX_SHARDS:
            self.compact()
        return out

    def _write_shard(self, digests: np.ndarray, vectors: np.ndarray) -> Path:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        digests = np.asarray(digests, dtype="S32")
        self.dir.mkdir(parents=True, exist_ok=True)
        stem = uuid.uuid4().hex
        emb_b, keys_b = _npy_bytes(vectors), _npy_bytes(digests)
        atomic_write_bytes(self.dir / f"{stem}.emb.npy", emb_b)
        atomic_write_bytes(self.dir / f"{stem}.keys.npy", keys_b)
        meta = {"n": int(len(digests)), "dim": int(vectors.shape[1]),
                "emb_sha256": hashlib.sha256(emb_b).hexdigest(),
                "keys_sha256": hashlib.sha256(keys_b).hexdigest()}
        return atomic_write_text(self.dir / f"{stem}.meta.json", json.dumps(meta))

    def compact(self) -> None:
        """Merge every valid shard into one (duplicates dropped), then delete the old shards.

        The merged shard is complete on disk before any old one is removed, so a
        concurrent reader sees every vector at least once (or, if it loses a race with
        a deletion, recomputes a few).
        """
        metas = self._shards()
        keys, embs = [], []
        for meta_path in metas:
            k = self._load_checked(meta_path, "keys")
            e = self._load_checked(meta_path, "emb") if k is not None else None
            if k is not None and e is not None:
                keys.append(k)
                embs.append(e)
        if len(keys) <= 1:
            return
        all_keys = np.concatenate(keys)
        _, first = np.unique(all_keys, return_index=True)
        first.sort()
        stem_meta = self._write_shard(all_keys[first], np.concatenate(embs)[first])
        for meta_path in metas:
            if meta_path == stem_meta:
                continue
            stem = meta_path.name[: -len(".meta.json")]
            for suffix in (".meta.json", ".emb.npy", ".keys.npy"):
                try:
                    (self.dir / f"{stem}{suffix}").unlink()
                except FileNotFoundError:
                    pass

    def n_entries(self) -> int:
        total = 0
        for meta_path in self._shards():
            try:
                total += int(json.loads(meta_path.read_text(encoding="utf-8"))["n"])
            except (OSError, ValueError, KeyError):
                pass
        return total

    def clear(self) -> None:
        for f in self.dir.glob("*") if self.dir.is_dir() else []:
            f.unlink()
