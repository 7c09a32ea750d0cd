"""Text embeddings of a Spark column: each unique text once, on the executors, cached as Parquet.

:func:`embed_unique_texts` takes the distinct non-null texts of a column, drops those already in
the Parquet cache (keyed, as the on-disk cache of :class:`~causalrec.features.TextEmbedder`, by the
sha256 of the text and a namespace of model identity and ``max_length``), and embeds the rest
with a ``mapInPandas`` function that loads the local encoder once per Python worker (Spark
reuses its workers, so once per executor core; a GPU executor uses CUDA through
``device="auto"``). New vectors are appended to the cache. The result is a Spark DataFrame
``(text, embedding)``, one row per unique text, to join back onto the log by text.

The vectors are those of ``TextEmbedder.encode`` (same model, pooling and normalisation):
this module only decides which texts are embedded where.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

_WORKER_EMBEDDERS: dict[tuple, object] = {}  # one loaded encoder per worker process and settings

CACHE_SCHEMA = "namespace string, digest binary, embedding array<float>"


def _worker_embedder(model: str | None, batch_size: int, max_length: int, device: str):
    key = (model, batch_size, max_length, device)
    emb = _WORKER_EMBEDDERS.get(key)
    if emb is None:
        from causalrec.features.embedder import TextEmbedder

        emb = TextEmbedder(model, device=device, batch_size=batch_size, max_length=max_length, cache_dir=False,
                           progress=False)
        _WORKER_EMBEDDERS[key] = emb
    return emb


def embed_unique_texts(sdf, column: str, *, model: str | os.PathLike | None = None,
                       cache_path: str | os.PathLike | None = None, batch_size: int = 64, max_length: int = 128,
                       device: str = "auto"):
    """``(frame, n_embedded)``: one row ``(text, embedding)`` per distinct text of ``column``, and how many
    texts had to be embedded (the rest came from the Parquet cache at ``cache_path``)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from causalrec.errors import InputError
    from causalrec.features.embedder import TextEmbedder

    if column not in sdf.columns:
        raise InputError(f"text column '{column}' is not in the table", column=column,
                         fix="name the column holding the text")
    probe = TextEmbedder(model, batch_size=batch_size, max_length=max_length, cache_dir=False)  # checks the folder
    namespace = f"{probe.model_id}-len{max_length}"
    model_arg = None if model is None else str(Path(model))
    texts = (sdf.select(F.col(column).cast("string").alias("text")).where(F.col("text").isNotNull()).distinct()
             .withColumn("digest", F.unhex(F.sha2(F.col("text"), 256))))
    spark = sdf.sparkSession
    cached = None
    if cache_path is not None and Path(cache_path).exists():
        cached = spark.read.parquet(str(cache_path)).where(F.col("namespace") == namespace)
        todo = texts.join(cached.select("digest"), on="digest", how="left_anti")
    else:
        todo = texts

    def embed(it):
        emb = _worker_embedder(model_arg, batch_size, max_length, device)
        for b in it:
            if len(b) == 0:
                continue
            vecs = emb.encode(b["text"].tolist())
            yield pd.DataFrame({"namespace": namespace, "digest": b["digest"], "embedding": list(vecs)})

    new = todo.select("text", "digest").mapInPandas(embed, CACHE_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    n_new = new.count()
    if cache_path is not None:
        if n_new:
            new.write.mode("append").parquet(str(cache_path))
        new.unpersist()
        vectors = spark.read.parquet(str(cache_path)).where(F.col("namespace") == namespace)
    else:
        vectors = new  # stays persisted: the only copy of the vectors
    vectors = vectors.dropDuplicates(["digest"])  # two runs may have appended the same text
    out = texts.join(vectors.select("digest", "embedding"), on="digest", how="inner").select("text", "embedding")
    return out, int(n_new)


__all__ = ["embed_unique_texts"]
