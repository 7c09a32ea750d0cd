"""A two-tower ranker fine-tuned from a sentence encoder, saved without pickle.

Score of a (user/context text ``u``, item text ``a``) pair::

    s(u, a) = exp(log_scale) * < n(P h(u)), n(P h(a)) > + <w, n(P h(a))> + b

``h`` is the encoder's attention-masked mean pooling (the same pooling as
:class:`causalrec.features.TextEmbedder`), ``P`` a square projection
initialised to the identity, ``n`` L2 normalisation, and ``exp(log_scale)``,
``b`` turn the cosine into a logit so the pointwise loss is a calibrated BCE;
``<w, .>`` is an item-side prior (quality that no user text explains), ``w``
initialised to 0.

Zero-shot start, kept recoverable: at initialisation (``P = I``, ``w = 0``,
pretrained encoder layers) the score is ``exp(log_scale) * cos0(u, a) + b``,
a monotone map of the untrained encoder's cosine, so it ranks exactly as the
zero-shot model. Training writes the score as that plus a correction
``exp(log_scale) (cos_P(u, a) - cos0(u, a)) + <w, n(P h(a))>`` and
:mod:`causalrec.ranking.train` penalises the distance of ``(P, w, trained
layers)`` from their starting values (L2-SP), so a weak or noisy training
signal leaves the model near the zero-shot scorer instead of away from it.

Why a bi-encoder (one shared encoder for both sides) rather than a
cross-encoder: ranking a catalogue for every user (NDCG over all candidates,
top-k policies for OPE) needs ``U + I`` encoder passes instead of ``U x I``, the
item tower can be cached for serving, and the encoder starts as the same
sentence encoder the nuisance models use. A cross-encoder would model
interactions better but costs a forward pass per pair, which the CPU budget
of this project cannot afford.

Fine-tuning depth: ``trainable_layers`` top transformer layers are trained
(``-1``: all, ``0``: only ``P``, scale and bias). The frozen bottom is run
once per unique text and its hidden states cached, so an epoch only pays for
the trainable top layers: with MiniLM (6 layers) and one trainable layer that
is about 6x cheaper per step on a CPU, which is what makes CPU fine-tuning
practical. Weights are saved as ``model.safetensors`` with a JSON config and
the tokenizer files; loading builds the encoder from its JSON config and reads
tensors with safetensors, so no file is ever unpickled.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from causalrec.errors import InputError

CONFIG_NAME = "ranker_config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


class TwoTowerRanker(nn.Module):
    """Shared-encoder bi-encoder scorer. Build with :meth:`from_encoder` or :meth:`load`."""

    def __init__(self, encoder: nn.Module, tokenizer: Any, *, max_length: int = 48, trainable_layers: int = 1,
                 init_scale: float = 5.0, meta: dict[str, Any] | None = None):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        d = int(encoder.config.hidden_size)
        self.proj = nn.Linear(d, d)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(d))
            self.proj.bias.zero_()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.bias = nn.Parameter(torch.tensor(0.0))
        self.item_bias = nn.Linear(d, 1, bias=False)
        with torch.no_grad():
            self.item_bias.weight.zero_()
        n_layers = len(self._layers())
        self.trainable_layers = n_layers if trainable_layers < 0 else min(int(trainable_layers), n_layers)
        self.meta = dict(meta or {})
        self._freeze()

    # -- construction ------------------------------------------------------
    @classmethod
    def from_encoder(cls, model: str | os.PathLike | None = None, *, max_length: int = 48,
                     trainable_layers: int = 1, seed: int = 0) -> TwoTowerRanker:
        """Start from a local Hugging Face encoder folder (default: all-MiniLM-L6-v2)."""
        from transformers import AutoModel, AutoTokenizer

        from causalrec.features.embedder import default_model_path
        from causalrec.features.quiet import quiet_transformers

        path = Path(model) if model is not None else default_model_path()
        if not path.exists():
            raise InputError(f"encoder folder '{path}' does not exist", column="model",
                             fix="pass a local Hugging Face model folder (config.json + weights + tokenizer)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        torch.manual_seed(seed)
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            enc = AutoModel.from_pretrained(str(path), local_files_only=True)
        return cls(enc, tok, max_length=max_length, trainable_layers=trainable_layers,
                   meta={"base_model": str(path) if model is not None else "all-MiniLM-L6-v2"})

    def _layers(self) -> nn.ModuleList:
        try:
            return self.encoder.encoder.layer
        except AttributeError as exc:
            raise InputError("the ranker supports BERT-style encoders (model.encoder.layer)", column="model",
                             fix="use a BERT/MiniLM-family sentence encoder") from exc

    def _freeze(self) -> None:
        n_layers = len(self._layers())
        n_frozen = n_layers - self.trainable_layers
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        for layer in list(self._layers())[n_frozen:]:
            for p in layer.parameters():
                p.requires_grad_(True)

    @property
    def n_frozen(self) -> int:
        return len(self._layers()) - self.trainable_layers

    # -- encoding ------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def bottom(self, texts: list[str], device: str = "cpu", batch_size: int = 128,
               cache: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states after the frozen layers (no grad), padded to ``max_length``.

        ``cache`` (a dict shared between rankers built from the same encoder,
        depth and ``max_length``) keeps per-text states so several trainings
        on one catalogue run the frozen part once.
        """
        if cache is not None:
            key = (self.meta.get("base_model"), self.n_frozen, self.max_length)
            store = cache.setdefault(key, {})
            todo = [t for t in dict.fromkeys(texts) if t not in store]
            if todo:
                h, m = self.bottom(todo, device, batch_size)
                for j, t in enumerate(todo):
                    store[t] = (h[j], m[j])
            return (torch.stack([store[t][0] for t in texts]).to(device),
                    torch.stack([store[t][1] for t in texts]).to(device))
        hs, ms = [], []
        was_training = self.encoder.training
        self.encoder.eval()
        with torch.no_grad():
            for s in range(0, len(texts), batch_size):
                tok = self.tokenize(texts[s:s + batch_size])
                tok = {k: v.to(device) for k, v in tok.items()}
                out = self.encoder(**tok, output_hidden_states=True)
                h = out.hidden_states[self.n_frozen]
                pad = self.max_length - h.shape[1]
                mask = tok["attention_mask"]
                if pad > 0:
                    h = torch.nn.functional.pad(h, (0, 0, 0, pad))
                    mask = torch.nn.functional.pad(mask, (0, pad))
                hs.append(h)
                ms.append(mask)
        self.encoder.train(was_training)
        return torch.cat(hs), torch.cat(ms)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Projection + L2 norm of mean-pooled states (the whole tower when ``trainable_layers == 0``)."""
        return nn.functional.normalize(self.proj(pooled), dim=-1)

    def top(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Trainable layers + pooling + projection + L2 norm, from cached bottom states."""
        width = int(mask.sum(1).max().item()) if mask.numel() else 1
        hidden, mask = hidden[:, :width], mask[:, :width]
        if self.trainable_layers:
            from transformers.masking_utils import create_bidirectional_mask

            m4 = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=hidden, attention_mask=mask)
            for layer in list(self._layers())[self.n_frozen:]:
                out = layer(hidden, attention_mask=m4)
                hidden = out[0] if isinstance(out, tuple) else out
        return self.head(_mean_pool(hidden, mask))

    def embed(self, texts: list[str], device: str = "cpu", batch_size: int = 128,
              cache: dict | None = None) -> np.ndarray:
        """Final (normalised) tower vectors of ``texts``, eval mode, no grad."""
        uniq, inv = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
        was = self.training
        self.eval()
        vecs = []
        with torch.no_grad():
            for s in range(0, len(uniq), batch_size):
                h, m = self.bottom(list(uniq[s:s + batch_size]), device, batch_size, cache=cache)
                vecs.append(self.top(h, m).float().cpu().numpy())
        self.train(was)
        out = np.concatenate(vecs) if vecs else np.zeros((0, int(self.encoder.config.hidden_size)), np.float32)
        return out[inv]

    def logits(self, u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Score of aligned (user, item) tower vectors: scaled cosine + item prior + bias."""
        return self.log_scale.exp() * (u * a).sum(-1) + self.item_bias(a).squeeze(-1) + self.bias

    def score(self, user_texts: list[str], item_texts: list[str], device: str = "cpu",
              cache: dict | None = None) -> np.ndarray:
        """Logit per (user text, item text) pair."""
        if len(user_texts) != len(item_texts):
            raise InputError("user and item texts must pair up one to one", column="item_text",
                             fix="pass equal-length lists")
        u = torch.from_numpy(self.embed(list(user_texts), device, cache=cache))
        a = torch.from_numpy(self.embed(list(item_texts), device, cache=cache))
        with torch.no_grad():
            return self.logits(u, a).numpy().astype(np.float64)

    def score_matrix(self, user_texts: list[str], item_texts: list[str], device: str = "cpu") -> np.ndarray:
        """Logits of every user against every item, ``(n_users, n_items)``."""
        u = torch.from_numpy(self.embed(list(user_texts), device))
        a = torch.from_numpy(self.embed(list(item_texts), device))
        with torch.no_grad():
            prior = self.item_bias(a).squeeze(-1)
            return (self.log_scale.exp() * (u @ a.T) + prior[None, :] + self.bias).numpy().astype(np.float64)

    # -- persistence -----------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``model.safetensors``, ``ranker_config.json``, the encoder config and tokenizer (atomically per file)."""
        from safetensors.torch import save_file

        from causalrec.data.atomic import atomic_write_text, atomic_write_with
        from causalrec.features.quiet import quiet_transformers

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write_with(d / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "causalrec-ranker"}))
        with quiet_transformers():
            self.encoder.config.save_pretrained(str(d))
            self.tokenizer.save_pretrained(str(d))
        cfg = {"format_version": FORMAT_VERSION, "max_length": self.max_length,
               "trainable_layers": self.trainable_layers, "meta": self.meta}
        atomic_write_text(d / CONFIG_NAME, json.dumps(cfg, indent=2, default=str) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> TwoTowerRanker:
        """Rebuild from :meth:`save` output: JSON configs + safetensors, nothing unpickled."""
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        from causalrec.features.quiet import quiet_transformers

        d = Path(directory)
        if not (d / CONFIG_NAME).exists() or not (d / WEIGHTS_NAME).exists():
            raise InputError(f"'{d}' is not a causalrec ranker folder (no {CONFIG_NAME} / {WEIGHTS_NAME})",
                             column=str(d), fix="pass the --out folder of `causalrec rank train`")
        cfg = json.loads((d / CONFIG_NAME).read_text(encoding="utf-8"))
        if cfg.get("format_version") != FORMAT_VERSION:
            raise InputError(f"ranker format {cfg.get('format_version')} is not supported", column=str(d),
                             fix="retrain the ranker with this causalrec version")
        with quiet_transformers():
            enc = AutoModel.from_config(AutoConfig.from_pretrained(str(d), local_files_only=True))
            tok = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
        model = cls(enc, tok, max_length=cfg["max_length"], trainable_layers=cfg["trainable_layers"],
                    meta=cfg.get("meta", {}))
        state = load_file(str(d / WEIGHTS_NAME))
        missing, unexpected = model.load_state_dict(state, strict=False)
        # position_ids-style buffers may legitimately be absent, and so may the item prior of a
        # ranker saved before it existed (it stays at its zero start); real weights may not.
        bad = [k for k in missing if not k.endswith("position_ids") and k != "item_bias.weight"] + list(unexpected)
        if bad:
            raise InputError(f"ranker weights in '{d}' do not match its config (e.g. {bad[:3]})", column=str(d),
                             fix="the folder is corrupted or from another model; retrain")
        model.eval()
        return model
