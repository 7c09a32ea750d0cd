"""The sample-size table of analyses/text_confounding_scale.py, on hand-made run rows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    sys.path.insert(0, str(ROOT / "analyses"))
    try:
        spec = importlib.util.spec_from_file_location("text_confounding_scale",
                                                      ROOT / "analyses" / "text_confounding_scale.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(ROOT / "analyses"))


def runs(n_rows: int, naive_bias: float, text_bias: float, seeds: int = 12) -> pd.DataFrame:
    rows = []
    for s in range(seeds):
        for method, bias in (("naive", naive_bias), ("text_dml", text_bias), ("sub_naive", 9.0)):
            for target in ("ate", "att"):
                est = 0.1 + bias
                rows.append(dict(seed=s, confounding=1.0, n_rows=n_rows, method=method, target=target,
                                 estimate=est, se=0.01, ci_low=est - 0.02, ci_high=est + 0.02, truth=0.1,
                                 covered=abs(bias) <= 0.02, seconds=1.0))
    return pd.DataFrame(rows)


def test_scale_table_and_headline():
    mod = load_script()
    data = pd.concat([runs(1500, 0.2, 0.1), runs(6000, 0.2, 0.02)], ignore_index=True)
    table = mod.scale_table(data, confounding=1.0, seeds=10)
    assert set(table["method"]) == {"naive", "text_dml"}  # sub_* rows are not part of the size study
    assert (table["runs"] == 10).all()  # only seeds 0..9
    dml = table[(table["method"] == "text_dml") & (table["target"] == "ate")].set_index("n_rows")
    assert dml.loc[1500, "bias_removed"] == pytest.approx(0.5)
    assert dml.loc[6000, "bias_removed"] == pytest.approx(0.9)
    assert dml.loc[6000, "coverage"] == 1.0 and dml.loc[1500, "coverage"] == 0.0
    md = mod.to_markdown(table, ["a.csv"], 1.0, 10)
    assert "ATE, 1,500 rows: `text_dml` removes 50% of the naive bias (>= 80%: NOT met)" in md
    assert "ATE, 6,000 rows: `text_dml` removes 90% of the naive bias (>= 80%: met); coverage 1.00" in md
    assert np.isfinite(table["rmse"]).all()


def test_adapted_section_uses_the_subset_naive_baseline():
    mod = load_script()
    rows = runs(1500, 0.2, 0.1).replace({"naive": "sub_adapted_dml"})  # sub_naive bias 9.0
    md = mod.adapted_section(rows, "x.csv")
    assert "| ate | sub_naive | 12 | +9.0000 |" in md
    assert "| ate | sub_adapted_dml | 12 | +0.2000 |" in md and "98%" in md
