"""Slow: the embedding benchmark's overhead target (run by `make bench`)."""

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_embedder_overhead_below_ten_percent(tmp_path):
    path = Path(__file__).resolve().parents[2] / "analyses" / "bench_embeddings.py"
    spec = importlib.util.spec_from_file_location("bench_embeddings", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.main(["--n", "500", "--repeats", "2", "--out", str(tmp_path / "b.md")])
    assert r["overhead"] < 0.10
    assert r["cache_hit_rate"] == 1.0 and not r["cache_model_loaded"]
    assert r["padded_tokens"]["sorted"] < r["padded_tokens"]["unsorted"]
