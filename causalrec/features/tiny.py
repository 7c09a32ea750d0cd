"""A tiny, randomly initialised BERT with a local WordPiece tokenizer, for tests and examples.

The vocabulary holds a few hundred common words plus every ASCII letter, digit and
punctuation mark with its ``##`` continuation, so any ASCII text tokenises without
``[UNK]`` (unknown words become character pieces). The weights are random (seeded):
the vectors mean nothing semantically, but every code path of ``TextEmbedder`` and
the adapted encoder runs in milliseconds on a CPU, with no download.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable
from pathlib import Path

from causalrec.features.quiet import quiet_transformers

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS = """
the a an and or of to in on for with by from at as is are was be this that it its new old
best top great good cheap premium classic modern light dark red blue green black white grey
pink yellow brown small large mini pro max ultra kids men women home garden kitchen sport
running hiking outdoor travel office gaming music movie book novel history science fiction
romance thriller comedy drama jazz rock pop classical guitar piano camera phone laptop tablet
watch shoes boots jacket coat shirt dress bag wallet sofa chair table lamp bed pillow tea coffee
chocolate cookie recipe pasta pizza salad vegan organic fresh healthy fitness yoga bike
tent backpack user likes liked bought viewed watched read listens wants loves history items
""".split()


def build_tiny_encoder(path: str | os.PathLike, *, hidden_size: int = 32, num_layers: int = 2,
                       num_heads: int = 2, intermediate_size: int = 64, max_position: int = 128,
                       words: Iterable[str] = (), seed: int = 0) -> Path:
    """Write a tiny BERT (``hidden_size`` dims, ``num_layers`` layers) and its tokenizer to ``path``.

    Returns the folder, loadable with ``AutoModel``/``AutoTokenizer.from_pretrained``
    (offline) and usable as ``TextEmbedder(model=path)``. Deterministic for a given seed.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab: list[str] = []
    seen: set[str] = set()
    for tok in [*_SPECIAL, *(w.lower() for w in words), *_WORDS, *chars, *("##" + c for c in chars)]:
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(path / "vocab.txt"), do_lower_case=True,
                              model_max_length=max_position)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=num_layers,
                        num_attention_heads=num_heads, intermediate_size=intermediate_size,
                        max_position_embeddings=max_position, type_vocab_size=2,
                        pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    with quiet_transformers():
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))
    return path
