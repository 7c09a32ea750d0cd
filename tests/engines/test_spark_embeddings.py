"""Text embeddings on Spark: each unique text once, the vectors of TextEmbedder, a Parquet cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalrec.features.embedder import TextEmbedder
from causalrec.features.spark import embed_unique_texts


@pytest.mark.slow  # Spark jobs: several seconds each
def test_unique_texts_embedded_once_and_cached(spark, tiny_encoder_dir, tmp_path):
    texts = [f"item number {i % 7} in blue" for i in range(40)] + [None]
    sdf = spark.createDataFrame(pd.DataFrame({"title": texts, "row": range(41)})).repartition(3)
    cache = tmp_path / "emb_cache.parquet"
    frame, n_new = embed_unique_texts(sdf, "title", model=tiny_encoder_dir, cache_path=cache)
    got = frame.toPandas().sort_values("text").reset_index(drop=True)
    assert n_new == 7 and len(got) == 7
    want = TextEmbedder(tiny_encoder_dir, cache_dir=False).encode(got["text"].tolist())
    np.testing.assert_allclose(np.stack(got["embedding"].to_numpy()), want, rtol=1e-5, atol=1e-6)
    # the second run reads every vector from the Parquet cache
    more = spark.createDataFrame(pd.DataFrame({"title": ["item number 3 in blue", "a new text"]}))
    frame2, n_new2 = embed_unique_texts(more, "title", model=tiny_encoder_dir, cache_path=cache)
    assert n_new2 == 1
    assert sorted(frame2.toPandas()["text"]) == ["a new text", "item number 3 in blue"]
