"""Sufficient statistics: mergeable, and a stats file gives the row-level answer to 1e-10."""

import numpy as np
import pandas as pd
import pytest

from causalrec.errors import InputError
from causalrec.experiments import ABStats, SuffStats, analyze, analyze_stats, simulate_experiment

COLS = ["estimate", "se", "ci_low", "ci_high", "p_value"]


@pytest.fixture(scope="module")
def users():
    return simulate_experiment(3000, lift=[0.0, 0.06], click_lift=[0.0, 0.05], seed=21)


def warehouse_stats(df: pd.DataFrame, keys: list[str], pairs: list[tuple[str, str]], singles: list[str]) -> pd.DataFrame:
    """What a SQL GROUP BY would return, written independently of causalrec's code."""
    work = df.copy()
    agg = {"n": ("variant", "size")}
    for v in singles:
        work[f"{v}_sq"] = work[v].astype(float) ** 2
        agg[f"{v}_sum"] = (v, "sum")
        agg[f"{v}_sum_sq"] = (f"{v}_sq", "sum")
    for a, b in pairs:
        work[f"{a}_x_{b}"] = work[a].astype(float) * work[b].astype(float)
        agg[f"{a}_x_{b}_sum"] = (f"{a}_x_{b}", "sum")
    return work.groupby(keys).agg(**agg).reset_index()


def frames_close(a, b, tol=1e-10):
    fa, fb = a.to_frame(), b.to_frame()
    assert list(fa["estimator"]) == list(fb["estimator"]) and list(fa["target"]) == list(fb["target"])
    diff = np.abs(fa[COLS].to_numpy(float) - fb[COLS].to_numpy(float))
    assert np.nanmax(diff) <= tol, np.nanmax(diff)
    assert (np.isnan(fa[COLS].to_numpy(float)) == np.isnan(fb[COLS].to_numpy(float))).all()


def test_suffstats_merge_is_the_stats_of_the_union():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(500, 3))
    whole = SuffStats.of_values(v, ["a", "b", "c"])
    parts = SuffStats.of_values(v[:123], ["a", "b", "c"]) + SuffStats.of_values(v[123:], ["a", "b", "c"])
    np.testing.assert_allclose(parts.sums, whole.sums, rtol=1e-13)
    np.testing.assert_allclose(parts.products, whole.products, rtol=1e-13)
    np.testing.assert_allclose(whole.cov(), np.cov(v.T), rtol=1e-10)
    with pytest.raises(ValueError):
        whole.merge(SuffStats.of_values(v[:, :2], ["a", "b"]))


def test_abstats_partitions_merge_to_the_whole(users):
    full = analyze(users, variant="variant", metrics=["revenue"], covariates=["pre_revenue"], segment="platform",
                   planning=False)
    half = len(users) // 2
    p1 = analyze(users.iloc[:half], variant="variant", metrics=["revenue"], covariates=["pre_revenue"],
                 segment="platform", planning=False).stats
    p2 = analyze(users.iloc[half:], variant="variant", metrics=["revenue"], covariates=["pre_revenue"],
                 segment="platform", planning=False).stats
    merged = p1.merge(p2)
    again = analyze_stats(merged, variant="variant", metrics=["revenue"], covariates=["pre_revenue"],
                          segment="platform", planning=False)
    frames_close(full, again, tol=1e-9)


def test_stats_file_equals_row_level_input(users):
    kw = dict(variant="variant", metrics=["revenue", "converted"], ratios=["clicks/sessions"],
              covariates=["pre_revenue"], lin=True, planning=False)
    rows = analyze(users, stratify="platform", **kw)
    singles = ["revenue", "converted", "clicks", "sessions", "pre_revenue"]
    pairs = [("revenue", "pre_revenue"), ("converted", "pre_revenue"), ("clicks", "sessions"),
             ("clicks", "pre_revenue"), ("sessions", "pre_revenue")]
    table = warehouse_stats(users, ["variant", "platform"], pairs, singles)
    stats = analyze_stats(table, stratify="platform", **kw)
    frames_close(rows, stats)
    # the table as a file, and the same statistics without the stratum column (summed over it)
    assert stats.srm.p_value == pytest.approx(rows.srm.p_value, abs=1e-12)
    plain_rows = analyze(users, **kw)
    plain_stats = analyze_stats(table.drop(columns=[]), **kw)  # platform present but unused: summed over
    frames_close(plain_rows, plain_stats)


def test_stats_two_covariates_and_pre_period_ratio(users):
    u = users.assign(pre_clicks=(users["pre_sessions"] * 0.1 + users["clicks"] * 0.3).round())
    kw = dict(variant="variant", ratios=["clicks/sessions"], covariates=["pre_revenue", "pre_clicks/pre_sessions"],
              planning=False)
    rows = analyze(u, **kw)
    singles = ["clicks", "sessions", "pre_revenue", "pre_clicks", "pre_sessions"]
    pairs = [(a, b) for i, a in enumerate(singles) for b in singles[i + 1:]]
    stats = analyze_stats(warehouse_stats(u, ["variant"], pairs, singles), **kw)
    frames_close(rows, stats)


def test_write_stats_round_trip_with_looks(users, tmp_path):
    path = tmp_path / "stats.csv"
    kw = dict(variant="variant", metrics=["revenue"], covariates=["pre_revenue"], cs_tuning=3000, planning=False)
    rows = analyze(users, timestamp="day", looks=6, write_stats=path, **kw)
    table = pd.read_csv(path)
    assert set(table["look"]) == set(range(1, 7)) and len(table) == 12
    stats = analyze_stats(path, **kw)
    frames_close(rows, stats)
    pd.testing.assert_frame_equal(rows.sequential.drop(columns=["cutoff"]), stats.sequential.drop(columns=["cutoff"]),
                                  rtol=0, atol=1e-10)


def test_per_row_metric_via_n_rows():
    sess = simulate_experiment(600, seed=4, impressions=True)
    rows = analyze(sess, variant="variant", metrics=["clicks"], unit="user_id", planning=False)
    table = rows.stats_table()
    assert {"n_rows_sum", "clicks_x_n_rows_sum"} <= set(table.columns)
    stats = analyze_stats(table, variant="variant", ratios=["clicks/n_rows"], planning=False)
    a, b = rows.get("delta", "diff"), stats.get("delta", "diff")
    assert (a.estimate, a.se, a.p_value) == pytest.approx((b.estimate, b.se, b.p_value), abs=1e-12)


def _table(users):
    return warehouse_stats(users, ["variant"], [("revenue", "pre_revenue")], ["revenue", "pre_revenue"])


@pytest.mark.parametrize("edit, column", [
    (lambda t: t.assign(n=[-5, t["n"].iloc[1]]), "n"),
    (lambda t: t.assign(revenue_sum_sq=t["revenue_sum"] ** 2 / t["n"] * 0.5), "revenue_sum_sq"),
    (lambda t: t.drop(columns=["revenue_x_pre_revenue_sum"]), "revenue_x_pre_revenue_sum"),
    (lambda t: t.drop(columns=["revenue_sum_sq"]), "revenue_sum_sq"),
    (lambda t: pd.concat([t, t.iloc[:1]]), "variant"),
])
def test_bad_stats_name_the_column(users, edit, column):
    with pytest.raises(InputError) as exc:
        analyze_stats(edit(_table(users)), variant="variant", metrics=["revenue"], covariates=["pre_revenue"])
    assert exc.value.column == column


def test_bad_looks_in_stats(users):
    t = analyze(users, variant="variant", metrics=["revenue"], timestamp="day", looks=3, planning=False).stats_table()
    swapped = t.assign(look=t["look"].map({1: 2, 2: 1, 3: 3}))
    with pytest.raises(InputError, match="out of order") as exc:
        analyze_stats(swapped, variant="variant", metrics=["revenue"])
    assert exc.value.column == "look"
    missing = t[~((t["look"] == 2) & (t["variant"] == "treatment"))]
    with pytest.raises(InputError, match="missing from look") as exc:
        analyze_stats(missing, variant="variant", metrics=["revenue"])
    assert exc.value.column == "variant"


def test_binary_rule_is_the_same_for_rows_and_sums(users):
    st = ABStats.from_units(users, variant="variant", names=["converted", "revenue"])
    arms = st.arms()
    assert arms["control"].is_binary("converted") and not arms["control"].is_binary("revenue")
    r = analyze_stats(_table(users.assign(revenue=users["converted"])), variant="variant", metrics=["revenue"])
    assert r.get("proportion", "diff").estimate == pytest.approx(
        analyze(users, variant="variant", metrics=["converted"]).get("proportion", "diff").estimate, abs=1e-14)
