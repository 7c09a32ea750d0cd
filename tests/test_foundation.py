"""Tests of the shared foundation: schema, validation, readers, results, report core."""

import json

import numpy as np
import pandas as pd
import pytest

from causalrec.data import LogSchema, atomic_write_text, iter_batches, read_table, validate_log
from causalrec.data.validation import validate_target_policy
from causalrec.errors import InputError
from causalrec.inference import bootstrap_ci, influence_se, normal_ci
from causalrec.report import Report
from causalrec.report.sections import update_section
from causalrec.results import CausalResult, Estimate


def _log():
    return pd.DataFrame({"item": [1, 2, 3], "click": [0, 1, 0], "ps": [0.5, 0.25, 1.0], "pos": [1, 2, 3]})


SCHEMA = LogSchema(item_id="item", outcome="click", propensity="ps", position="pos", position_base=1)


def test_canonical_renames_and_shifts_positions_without_mutating():
    df = _log()
    before = df.copy()
    canon = validate_log(df, SCHEMA, require=("item_id", "outcome", "propensity", "position"))
    pd.testing.assert_frame_equal(df, before)
    assert list(canon.columns) == ["item_id", "outcome", "propensity", "position"]
    assert canon["position"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "mutate, column",
    [
        (lambda d: d.drop(columns=["ps"]), "ps"),
        (lambda d: d.assign(ps=[0.5, 0.0, 1.0]), "ps"),
        (lambda d: d.assign(ps=[0.5, np.nan, 1.0]), "ps"),
        (lambda d: d.assign(ps=[0.5, 1.5, 1.0]), "ps"),
        (lambda d: d.assign(click=["a", "b", "c"]), "click"),
        (lambda d: d.assign(click=[0.0, np.inf, 1.0]), "click"),
    ],
)
def test_validation_names_the_column(mutate, column):
    with pytest.raises(InputError) as err:
        validate_log(mutate(_log()), SCHEMA, require=("item_id", "outcome", "propensity"))
    assert f"'{column}'" in str(err.value)
    assert "fix:" in str(err.value)


def test_empty_log_and_binary_checks():
    with pytest.raises(InputError, match="no rows"):
        validate_log(_log().iloc[:0], SCHEMA)
    df = _log().assign(t=[0, 1, 2])
    with pytest.raises(InputError, match="binary"):
        validate_log(df, SCHEMA.with_(treatment="t"), require=("item_id", "outcome", "treatment"), binary=("treatment",))


def test_positions_out_of_declared_range():
    schema = SCHEMA.with_(n_positions=2)
    with pytest.raises(InputError, match="outside the declared range"):
        validate_log(_log(), schema, require=("item_id", "outcome", "position"))


def test_target_policy_checks():
    pol = pd.DataFrame({"item_id": [1, 2, 1, 2], "position": [0, 0, 1, 1], "prob": [0.5, 0.5, 0.2, 0.8]})
    validate_target_policy(pol, row_key=None, positional=True, log_items=np.array([1, 2]))
    with pytest.raises(InputError, match="sum to 1"):
        validate_target_policy(pol.assign(prob=[0.5, 0.4, 0.2, 0.8]), row_key=None, positional=True)
    with pytest.raises(InputError, match="duplicated"):
        validate_target_policy(pd.concat([pol, pol.iloc[:1]]), row_key=None, positional=True)
    with pytest.raises(InputError, match="missing from the target policy"):
        validate_target_policy(pol, row_key=None, positional=True, log_items=np.array([1, 2, 7]))


def test_readers_roundtrip_and_batches(tmp_path):
    df = pd.DataFrame({"a": np.arange(25), "b": np.arange(25) * 0.5})
    df.to_parquet(tmp_path / "x.parquet")
    df.to_csv(tmp_path / "x.csv", index=False)
    for name in ("x.parquet", "x.csv"):
        pd.testing.assert_frame_equal(read_table(tmp_path / name), df, check_dtype=False)
        batches = list(iter_batches(tmp_path / name, batch_size=10))
        assert [len(b) for b in batches] == [10, 10, 5]
    with pytest.raises(InputError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="cannot read"):
        read_table(tmp_path / "bad.parquet")


def test_inference_helpers(rng):
    x = rng.normal(size=400)
    assert influence_se(x) == pytest.approx(x.std(ddof=1) / 20)
    lo, hi = normal_ci(1.0, 0.5, 0.95)
    assert (lo, hi) == pytest.approx((1 - 0.98, 1 + 0.98), abs=1e-3)
    lo, hi, se, reps = bootstrap_ci(lambda c: c @ x / c.sum(1), len(x), 200, seed=1)
    assert lo < x.mean() < hi and len(reps) == 200
    assert se == pytest.approx(x.std() / 20, rel=0.25)


def test_result_json_shape_and_report_escaping(tmp_path):
    r = CausalResult("ope", 10, [Estimate.normal("ips", "policy_value", 0.1, 0.02)],
                     {"ess": 5.0, "nan": float("nan")}, ["careful"], {"clip": None})
    d = json.loads(r.to_json())
    assert set(d) >= {"causalrec_version", "command", "n_rows", "estimates", "diagnostics", "warnings", "config"}
    assert d["estimates"][0]["ci_low"] < 0.1 < d["estimates"][0]["ci_high"]
    assert d["diagnostics"]["nan"] is None
    rep = Report("<b>title</b>")
    rep.table(pd.DataFrame({"item": ["<script>alert(1)</script>"], "x": [1.0]}))
    html = rep.to_html()
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    out = rep.write(tmp_path / "r.html")
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_atomic_write_and_sections(tmp_path):
    p = tmp_path / "b.md"
    update_section(p, "one", "first")
    update_section(p, "two", "second")
    update_section(p, "one", "FIRST")
    text = p.read_text()
    assert "FIRST" in text and "first" not in text and text.index("FIRST") < text.index("second")
    atomic_write_text(tmp_path / "a.txt", "hi")
    assert (tmp_path / "a.txt").read_text() == "hi"
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_position_base_is_honoured_in_range_checks():
    ok = SCHEMA.with_(n_positions=3)  # raw positions 1..3, base 1
    canon = validate_log(_log(), ok, require=("item_id", "outcome", "position"))
    assert canon["position"].tolist() == [0, 1, 2]
    with pytest.raises(InputError, match="below the declared base"):
        validate_log(_log().assign(pos=[0, 1, 2]), ok, require=("item_id", "outcome", "position"))


def test_atomic_write_gives_normal_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "perm.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_mapped_position_column_with_a_stray_position_column():
    df = _log().assign(position=["a", "b", "c"])  # unrelated column that happens to be called "position"
    canon = validate_log(df, SCHEMA, require=("item_id", "outcome", "position"))
    assert canon["position"].tolist() == [0, 1, 2]
