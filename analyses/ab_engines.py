"""causalrec's A/B numbers beside gbstats 0.8.0 and spotify-confidence 4.1.0, in one run.

Neither engine installs beside causalrec (gbstats 0.8.0 pins numpy < 2 and pandas < 2;
spotify-confidence 4.1.0 pins pandas < 3), so this script builds one virtualenv per
engine (cached under ``.bench-venvs/`` or ``$CAUSALREC_BENCH_VENVS``; Python 3.11,
wheels from the package index), and:

1. simulates one experiment (20,000 users over 14 days, revenue with a pre-period
   covariate, a 0/1 conversion, clicks per session) and one A/B/C/D test, and analyses
   them with causalrec's public API (``analyze``, 20 looks at day cut-offs);
2. hands the per-variant (and per-look) sufficient statistics causalrec computed to the
   engines (``analyses/ab_engines_peer.py`` runs in their virtualenvs: frequentist
   t-test, CUPED, ratio, confidence sequence, SRM and quantile in gbstats; z- and
   t-tests, CUPED (ZTestLinreg), group-sequential boundaries and eight
   multiple-testing corrections in spotify-confidence);
3. compares every shared number to 1e-6 (relative above 1). Where the engines compute
   a different formula, the row says which, and the "engine formula on causalrec's
   numbers" column recomputes the engine's formula from causalrec's own estimates:
   that recomputation must match the engine to 1e-6, which shows the difference is
   the formula and nothing else. Also checked in the same run: the stats-file path
   (``analyze_stats`` on the statistics) equals the row-level path to 1e-10.

Run: ``.venv/bin/python analyses/ab_engines.py`` (the first run builds the two
virtualenvs, about a minute with a warm pip cache). Writes ``reports/ab_engines.md``
and ``reports/ab_engines.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri, stdtr, stdtrit

from causalrec.experiments import analyze, analyze_stats, simulate_experiment
from causalrec.experiments.groupseq import boundaries, crossing_probabilities, spending

REPO = Path(__file__).resolve().parents[1]
ENGINES = {"gbstats": "gbstats==0.8.0", "spotify": "spotify-confidence==4.1.0"}
TOL = 1e-6
ALPHA = 0.05
CS_TUNING = 5000.0
LOOKS = 20
CORRECTIONS = {"bonferroni": "bonferroni", "holm": "holm", "hommel": "hommel", "simes-hochberg": "simes-hochberg",
               "sidak": "sidak", "holm-sidak": "holm-sidak", "bh": "fdr_bh", "by": "fdr_by"}


# -- side virtualenvs ----------------------------------------------------------------

def venv_root() -> Path:
    return Path(os.environ.get("CAUSALREC_BENCH_VENVS", REPO / ".bench-venvs"))


def _python311() -> str:
    for cand in ("python3.11", "/usr/bin/python3.11"):
        path = shutil.which(cand)
        if path:
            return path
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    raise RuntimeError("no Python 3.11 interpreter found for the engines' virtualenvs")


def ensure_venv(name: str) -> Path:
    """The engine's virtualenv python (built once, reused while its spec is unchanged)."""
    spec = ENGINES[name]
    root = venv_root() / name
    py = root / "bin" / "python"
    stamp = root / ".causalrec-spec"
    if py.exists() and stamp.exists() and stamp.read_text().strip() == spec:
        return py
    if root.exists():
        shutil.rmtree(root)
    print(f"building {root} ({spec}) ...", file=sys.stderr, flush=True)
    subprocess.run([_python311(), "-m", "venv", str(root)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec], check=True,
                   stderr=subprocess.DEVNULL if not sys.stderr.isatty() else None)
    stamp.write_text(spec + "\n")
    return py


def run_engine(name: str, inp: dict) -> dict:
    py = ensure_venv(name)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(inp))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        subprocess.run([str(py), str(REPO / "analyses" / "ab_engines_peer.py"), name, str(src), str(dst)],
                       check=True, env=env)
        return json.loads(dst.read_text())


# -- causalrec's side ---------------------------------------------------------------

def _sums(table: pd.DataFrame, variant: str) -> dict:
    row = table[table["variant"] == variant].iloc[0]
    return {k: float(v) for k, v in row.items() if k not in ("variant", "look")}


def causalrec_side(seed: int = 2024) -> dict:
    users = simulate_experiment(20_000, lift=[0.0, 0.08], click_lift=[0.0, 0.04], seed=seed)
    common = dict(variant="variant", timestamp="day", looks=LOOKS, cs_tuning=CS_TUNING, planning=False,
                  spending="power", spending_rho=2.0, max_n=len(users))
    full = analyze(users, metrics=["revenue", "converted"], ratios=["clicks/sessions"], covariates=["pre_revenue"],
                   quantiles=["revenue:0.9"], sequential_methods="cs", **{k: v for k, v in common.items()
                                                                           if k not in ("spending", "spending_rho")})
    plain = analyze(users, metrics=["revenue"], sequential_methods="cs,gst", **common)
    strong_users = simulate_experiment(20_000, lift=[0.0, 0.2], seed=seed + 2)
    strong = analyze(strong_users, metrics=["revenue"], sequential_methods="gst", **common)
    table = full.stats_table()
    looks = sorted(table["look"].unique())
    final = table[table["look"] == looks[-1]]
    four = simulate_experiment(8_000, variants=("control", "b", "c", "d"), lift=[0.0, 0.05, 0.12, 0.0], seed=seed + 1)
    multi = analyze(four, variant="variant", metrics=["converted"], corrections=list(CORRECTIONS), planning=False)
    mstats = multi.stats_table()
    # the stats-file path on the same statistics (must equal the row-level path)
    via_stats = analyze_stats(table, variant="variant", metrics=["revenue", "converted"], ratios=["clicks/sessions"],
                              covariates=["pre_revenue"], cs_tuning=CS_TUNING, sequential_methods="cs", planning=False)
    return {"users": users, "full": full, "plain": plain, "strong": strong, "table": table, "final": final,
            "looks": looks,
            "multi": multi, "mstats": mstats, "via_stats": via_stats}


def _looks(table: pd.DataFrame) -> list[dict]:
    return [{v: _sums(table[table["look"] == lk], v) for v in ("control", "treatment")}
            for lk in sorted(table["look"].unique())]


def engine_input(side: dict) -> dict:
    full, table, final = side["full"], side["table"], side["final"]
    q = full.get("quantile", "diff", metric="revenue:p90")
    return {
        "alpha": ALPHA, "cs_tuning": CS_TUNING,
        "gst": {name: {"final_n": int(len(side["users"])), "looks": _looks(side[name].stats_table())}
                for name in ("plain", "strong")},
        "ab": {v: _sums(final, v) for v in ("control", "treatment")},
        "looks": _looks(table),
        "srm": {"users": [int(full.srm.observed[v]) for v in ("control", "treatment")], "weights": [0.5, 0.5]},
        "quantile": {"nu": 0.9, **{side_: {"n": q.extra[f"n_rows_{side_}"], "q": q.extra[f"value_{side_}"],
                                           "lo": q.extra[f"q_ci_low_{side_}"], "hi": q.extra[f"q_ci_high_{side_}"]}
                                   for side_ in ("control", "treatment")}},
        "multi": {"variants": side["mstats"]["variant"].tolist(), "sums": side["mstats"]["converted_sum"].tolist(),
                  "n": side["mstats"]["n"].astype(int).tolist(), "spotify_methods": list(CORRECTIONS.values())},
    }


# -- comparison ----------------------------------------------------------------------

def _row(engine, quantity, ours, theirs, note="", explained=None, explained_ok=None) -> dict:
    """One compared number. ``explained``: the engine's formula recomputed from causalrec's numbers (must match
    the engine); ``explained_ok``: the outcome of another check that accounts for the difference."""
    ours, theirs = float(ours), float(theirs)
    diff = abs(ours - theirs)
    tol = TOL * max(1.0, abs(theirs))
    row = {"engine": engine, "quantity": quantity, "causalrec": ours, "engine_value": theirs, "abs_diff": diff,
           "agree": bool(diff <= tol), "note": note}
    if explained is not None:
        row["engine_formula_on_causalrec"] = float(explained)
        row["explained"] = bool(abs(float(explained) - theirs) <= tol)
    elif explained_ok is not None:
        row["explained"] = bool(explained_ok)
    return row


def _t_ci_p(est, se, df):
    crit = float(stdtrit(df, 1 - ALPHA / 2))
    return est - crit * se, est + crit * se, float(2 * stdtr(df, -abs(est / se)))


def _z_ci_p(est, se):
    z = float(ndtri(1 - ALPHA / 2))
    return est - z * se, est + z * se, float(2 * ndtr(-abs(est / se)))


def compare(side: dict, gb: dict, sp: dict) -> pd.DataFrame:
    full, plain = side["full"], side["plain"]
    rows: list[dict] = []

    def welch_df(e):
        v_c, v_t = e.extra["se_control"] ** 2, e.extra["se_treatment"] ** 2
        n_c, n_t = e.extra["n_control"], e.extra["n_treatment"]
        return (v_c + v_t) ** 2 / (v_t**2 / (n_t - 1) + v_c**2 / (n_c - 1))

    def abs_block(engine, label, e, res, same_ref: bool, note_ref: str):
        rows.append(_row(engine, f"{label}: estimate", e.estimate, res["expected"]))
        rows.append(_row(engine, f"{label}: standard error", e.se, res["stddev"]))
        for i, key in enumerate(("ci_low", "ci_high")):
            if same_ref:
                rows.append(_row(engine, f"{label}: {key}", getattr(e, key), res["ci"][i]))
            else:
                lo, hi, _ = _t_ci_p(e.estimate, e.se, welch_df(e))
                rows.append(_row(engine, f"{label}: {key}", getattr(e, key), res["ci"][i], note_ref, (lo, hi)[i]))
        if same_ref:
            rows.append(_row(engine, f"{label}: p-value", e.p_value, res["p_value"]))
        else:
            rows.append(_row(engine, f"{label}: p-value", e.p_value, res["p_value"], note_ref,
                             _t_ci_p(e.estimate, e.se, welch_df(e))[2]))

    t_note = ("reference distribution: gbstats uses Student t with Welch-Satterthwaite df for every metric; "
              "causalrec uses the normal for proportions, ratios and relative lifts")
    # gbstats: fixed-horizon tests
    abs_block("gbstats", "revenue mean, absolute (Welch)", full.get("welch", "diff", metric="revenue"),
              gb["mean_abs"], True, "")
    lift = full.get("welch", "lift", metric="revenue")
    rows.append(_row("gbstats", "revenue mean, relative: estimate", lift.estimate, gb["mean_rel"]["expected"]))
    rows.append(_row("gbstats", "revenue mean, relative: standard error", lift.se, gb["mean_rel"]["stddev"]))
    lo, hi, p = _t_ci_p(lift.estimate, lift.se, welch_df(lift))
    rows.append(_row("gbstats", "revenue mean, relative: ci_low", lift.ci_low, gb["mean_rel"]["ci"][0], t_note, lo))
    rows.append(_row("gbstats", "revenue mean, relative: ci_high", lift.ci_high, gb["mean_rel"]["ci"][1], t_note, hi))
    rows.append(_row("gbstats", "revenue mean, relative: p-value", lift.p_value, gb["mean_rel"]["p_value"], t_note, p))
    abs_block("gbstats", "conversion (0/1), absolute", full.get("proportion", "diff", metric="converted"),
              gb["prop_abs"], False, t_note)
    abs_block("gbstats", "clicks/sessions ratio, absolute (delta method)",
              full.get("delta", "diff", metric="clicks/sessions"), gb["ratio_abs"], False, t_note)
    abs_block("gbstats", "revenue CUPED on pre_revenue, absolute", full.get("cuped", "diff", metric="revenue"),
              gb["cuped_abs"], True, "")
    cl = full.get("cuped", "lift", metric="revenue")
    cd = full.get("cuped", "diff", metric="revenue")
    w = full.get("welch", "diff", metric="revenue")
    ra_note = ("relative CUPED: gbstats divides the adjusted difference by the unadjusted control mean, "
               "(m_t' - m_c') / ybar_c, with variance V_t'/ybar_c^2 + V_c' ybar_t^2/ybar_c^4 (unadjusted means); "
               "causalrec reports m_t'/m_c' - 1 with the delta method on the adjusted means")
    ybar_c, ybar_t = w.extra["value_control"], w.extra["value_treatment"]
    rows.append(_row("gbstats", "revenue CUPED, relative: estimate", cl.estimate, gb["cuped_rel"]["expected"],
                     ra_note, cd.estimate / ybar_c))
    v_c, v_t = cd.extra["se_control"] ** 2, cd.extra["se_treatment"] ** 2
    rows.append(_row("gbstats", "revenue CUPED, relative: standard error", cl.se, gb["cuped_rel"]["stddev"], ra_note,
                     np.sqrt(v_t / ybar_c**2 + v_c * ybar_t**2 / ybar_c**4)))
    rows.append(_row("gbstats", "SRM chi-square p-value", full.srm.p_value, gb["srm_p"]))
    q = full.get("quantile", "diff", metric="revenue:p90")
    rows.append(_row("gbstats", "revenue p90 (same order-statistic bounds): estimate", q.estimate,
                     gb["quantile_abs"]["expected"]))
    n_c, n_t = q.extra["n_rows_control"], q.extra["n_rows_treatment"]
    qn = ("quantile variance from the same Woodruff bounds: gbstats scales ((u - l) / 2z)^2 by (n - 1) / n; "
          "causalrec does not")
    rows.append(_row("gbstats", "revenue p90: standard error", q.se, gb["quantile_abs"]["stddev"], qn,
                     np.sqrt(q.extra["se_control"] ** 2 * (n_c - 1) / n_c + q.extra["se_treatment"] ** 2 * (n_t - 1) / n_t)))
    # gbstats: confidence sequences at every look
    for tag, res, est in (("cs_abs", plain, "diff"), ("cs_rel", plain, "lift"), ("cs_cuped_abs", full, "diff")):
        path = res.sequential[res.sequential["metric"] == "revenue"].reset_index(drop=True)
        lo_col, hi_col = ("cs_low", "cs_high") if est == "diff" else ("lift_cs_low", "lift_cs_high")
        name = {"cs_abs": "revenue mean", "cs_rel": "revenue mean, relative", "cs_cuped_abs": "revenue CUPED"}[tag]
        for col, key in ((lo_col, 0), (hi_col, 1)):
            d = np.array([abs(path[col][k] - gb[tag][k]["ci"][key]) for k in range(len(path))])
            k = int(d.argmax())
            rows.append(_row("gbstats", f"confidence sequence, {name}: {'low' if key == 0 else 'high'} "
                             f"(worst of {len(path)} looks, look {k + 1})", path[col][k], gb[tag][k]["ci"][key]))
        if est == "diff":
            pc = np.array([abs(path["p_cs_at_look"][k] - gb[tag][k]["p_value"]) for k in range(len(path))])
            k = int(pc.argmax())
            rows.append(_row("gbstats", f"confidence sequence, {name}: p-value (worst look, look {k + 1})",
                             path["p_cs_at_look"][k], gb[tag][k]["p_value"]))

    # spotify-confidence
    z_note = "reference distribution: spotify's ZTest uses the normal, causalrec's Welch test Student t (Welch df)"
    rows.append(_row("spotify", "revenue mean, z-test: difference", w.estimate, sp["z_mean"]["difference"]))
    rows.append(_row("spotify", "revenue mean, z-test: standard error", w.se, sp["z_mean"]["std_err"]))
    zlo, zhi, zp = _z_ci_p(w.estimate, w.se)
    rows.append(_row("spotify", "revenue mean, z-test: ci_low", w.ci_low, sp["z_mean"]["ci"][0], z_note, zlo))
    rows.append(_row("spotify", "revenue mean, z-test: ci_high", w.ci_high, sp["z_mean"]["ci"][1], z_note, zhi))
    rows.append(_row("spotify", "revenue mean, z-test: p-value", w.p_value, sp["z_mean"]["p_value"], z_note, zp))
    for key, lab in (("difference", "difference"), ("std_err", "standard error")):
        rows.append(_row("spotify", f"revenue mean, t-test (Welch): {lab}", w.estimate if key == "difference" else w.se,
                         sp["t_mean"][key]))
    rows.append(_row("spotify", "revenue mean, t-test (Welch): ci_low", w.ci_low, sp["t_mean"]["ci"][0]))
    rows.append(_row("spotify", "revenue mean, t-test (Welch): ci_high", w.ci_high, sp["t_mean"]["ci"][1]))
    rows.append(_row("spotify", "revenue mean, t-test (Welch): p-value", w.p_value, sp["t_mean"]["p_value"]))
    pr = full.get("proportion", "diff", metric="converted")
    rows.append(_row("spotify", "conversion (0/1), z-test: difference", pr.estimate, sp["z_prop"]["difference"]))
    rows.append(_row("spotify", "conversion (0/1), z-test: standard error", pr.se, sp["z_prop"]["std_err"]))
    rows.append(_row("spotify", "conversion (0/1), z-test: ci_low", pr.ci_low, sp["z_prop"]["ci"][0]))
    rows.append(_row("spotify", "conversion (0/1), z-test: ci_high", pr.ci_high, sp["z_prop"]["ci"][1]))
    rows.append(_row("spotify", "conversion (0/1), z-test: p-value", pr.p_value, sp["z_prop"]["p_value"]))
    rows.append(_row("spotify", "revenue CUPED (ZTestLinreg): difference", cd.estimate, sp["linreg"]["difference"]))
    lin_note = ("CUPED variance: spotify's ZTestLinreg adds b^2 Var_n(x) - 2 b Cov_n(x, y) with n (not n - 1) "
                "denominators to the n - 1 variance of y; causalrec uses Var(y - b x) with n - 1 throughout")
    rows.append(_row("spotify", "revenue CUPED (ZTestLinreg): standard error", cd.se, sp["linreg"]["std_err"], lin_note,
                     _linreg_se(side["final"], cd)))
    # group-sequential boundaries (power spending alpha t^2, 20 looks)
    gs = sp["sequential"]["plain"]
    info = np.asarray(gs["information"])
    ours_one = boundaries(info, ALPHA / 2, "power", 2.0, sides=1).z
    theirs = np.asarray(gs["boundary_z"])
    k = int(np.abs(ours_one - theirs).argmax())
    target = np.diff(np.r_[0.0, spending(info, ALPHA / 2, "power", 2.0)])
    spent_theirs = crossing_probabilities(info, theirs, sides=1)
    spent_ours = crossing_probabilities(info, ours_one, sides=1)
    dev_theirs, dev_ours = np.abs(spent_theirs - target).max(), np.abs(spent_ours - target).max()
    gs_note = ("group-sequential boundaries: spotify solves each one on a trapezoid grid (step 0.05 sd, at most 1,000 "
               "intervals) and stops its search within 1e-7 of the target crossing probability; causalrec integrates "
               "exactly (composite Gauss-Legendre) and solves to 1e-13. Checked by the exact crossing probability of "
               f"each set of boundaries against the spending target: spotify's is off by up to {dev_theirs:.2g} per "
               f"look, causalrec's by {dev_ours:.2g}, so spotify's boundaries carry its solver's tolerance, not a "
               "different design")
    rows.append(_row("spotify", f"group-sequential boundary z, one tail at alpha/2, power spending rho = 2 (worst of "
                     f"{len(info)} looks, look {k + 1})", ours_one[k], theirs[k], gs_note,
                     explained_ok=dev_theirs <= 10 * 1e-7 and dev_ours <= 1e-12))
    rows.append(_row("spotify", "group-sequential: |alpha spent by the boundaries - target|, worst look (exact)",
                     float(dev_ours), float(dev_theirs), gs_note))
    for name in ("plain", "strong"):
        g = sp["sequential"][name]
        path = side[name].sequential
        path = path[path["metric"] == "revenue"].reset_index(drop=True)
        two_sided = path["gst_boundary"].to_numpy()
        ours_sig = np.abs(path["z"].to_numpy()) >= two_sided
        one = boundaries(np.asarray(g["information"]), ALPHA / 2, "power", 2.0, sides=1).z
        label = "a +8% lift" if name == "plain" else "a +20% lift"
        rows.append(_row("spotify", f"group-sequential decisions at the 20 looks ({label}; {int(ours_sig.sum())} "
                         "looks significant in causalrec): number that differ", int((ours_sig != np.asarray(
                             g["is_significant"])).sum()), 0,
                         "definition: causalrec's exact two-sided boundaries also count paths that cross the lower "
                         "boundary before the upper one; spotify computes one tail at alpha/2 (lower boundary at -8): "
                         f"the two definitions differ by up to {np.abs(two_sided - one).max():.2g} in z here"))
        rows.append(_row("spotify", f"group-sequential ({label}): information fractions, max difference",
                         float(np.abs(path["information"].to_numpy() - np.asarray(g["information"])).max()), 0.0))
        rows.append(_row("spotify", f"group-sequential ({label}): standard errors at the looks, max difference",
                         float(np.abs(path["se"].to_numpy() - np.asarray(g["std_err"])).max()), 0.0))
    # multiple-testing corrections
    mu = side["multi"]
    prim = mu.primary()
    for ours_name, sp_name in CORRECTIONS.items():
        res = sp["multi"][sp_name]
        for lvl, p_raw, p_adj in zip(res["level_2"], res["p_value"], res["adjusted_p"], strict=True):
            e = prim[prim["variant"] == lvl].iloc[0]
            if ours_name == "bonferroni":
                rows.append(_row("spotify", f"A/B/C/D conversion, {lvl} vs control: p-value", e["p_value"], p_raw))
            rows.append(_row("spotify", f"A/B/C/D, {lvl}: {ours_name} adjusted p", e[f"p_{ours_name}"], p_adj))
    # the stats-file path equals the row path
    a, b = full.to_frame(), side["via_stats"].to_frame()
    keep = ~a["metric"].astype(str).str.contains(":")
    cols = ["estimate", "se", "ci_low", "ci_high", "p_value"]
    diff = float(np.nanmax(np.abs(a.loc[keep, cols].to_numpy(float) - b[cols].to_numpy(float))))
    rows.append({"engine": "causalrec", "quantity": "stats file vs row-level logs: max |difference| over "
                 f"{int(keep.sum())} estimates x 5 numbers", "causalrec": diff, "engine_value": 0.0, "abs_diff": diff,
                 "agree": diff <= 1e-10, "note": "tolerance 1e-10"})
    return pd.DataFrame(rows)


def _linreg_se(final: pd.DataFrame, cd) -> float:
    """spotify's ZTestLinreg standard error, computed from causalrec's sums and slope (see the note)."""
    tot = final[["n", "revenue_sum", "pre_revenue_sum", "pre_revenue_sum_sq", "revenue_x_pre_revenue_sum"]].sum()
    n, sy, sx = tot["n"], tot["revenue_sum"], tot["pre_revenue_sum"]
    b = (tot["revenue_x_pre_revenue_sum"] - sx * sy / n) / (tot["pre_revenue_sum_sq"] - sx * sx / n)
    var = 0.0
    for _, r in final.iterrows():
        m = r["n"]
        vy = (r["revenue_sum_sq"] - r["revenue_sum"] ** 2 / m) / (m - 1)
        vx = r["pre_revenue_sum_sq"] / m - (r["pre_revenue_sum"] / m) ** 2
        cxy = r["revenue_x_pre_revenue_sum"] / m - (r["pre_revenue_sum"] / m) * (r["revenue_sum"] / m)
        var += (vy + b * b * vx - 2 * b * cxy) / m
    return float(np.sqrt(var))


def run() -> tuple[pd.DataFrame, dict]:
    side = causalrec_side()
    inp = engine_input(side)
    gb = run_engine("gbstats", inp)
    sp = run_engine("spotify", inp)
    rows = compare(side, gb, sp)
    meta = {"gbstats": gb["engine_version"], "spotify-confidence": sp["engine_version"],
            "venvs": str(venv_root()), "n_users": int(len(side["users"])), "looks": len(side["looks"])}
    return rows, meta


def status(row: pd.Series) -> str:
    if row["agree"]:
        return "agree"
    if row.get("explained") is True:
        return "differs: explained (see note)"
    return "DIFFERS"


def write_report(rows: pd.DataFrame, meta: dict) -> None:
    from causalrec.data.atomic import atomic_write_text
    from causalrec.report import Report

    rows = rows.copy()
    rows["status"] = rows.apply(status, axis=1)
    counts = rows["status"].value_counts().to_dict()
    cols = ["engine", "quantity", "causalrec", "engine_value", "abs_diff", "status"]
    if "engine_formula_on_causalrec" in rows:
        cols.append("engine_formula_on_causalrec")
    notes = rows.loc[rows["note"] != "", "note"].drop_duplicates().tolist()
    rep = Report("causalrec vs gbstats and spotify-confidence",
                 subtitle=f"Produced by `analyses/ab_engines.py` in one run: gbstats {meta['gbstats']} and "
                 f"spotify-confidence {meta['spotify-confidence']}, each in its own virtualenv, fed the per-variant and "
                 f"per-look sufficient statistics that causalrec computed from a simulated experiment "
                 f"({meta['n_users']:,} users, {meta['looks']} looks) and an A/B/C/D test. Tolerance 1e-6 "
                 "(relative above 1).")
    rep.text("Summary: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + ". Rows marked *differs: explained* are not the same formula in the two engines; the last column recomputes the engine's "
             "formula from causalrec's own estimates and matches the engine to 1e-6, so the difference is the formula "
             "listed below, not an error in either.")
    for engine in rows["engine"].unique():
        rep.table(rows.loc[rows["engine"] == engine, cols], title=engine, digits=10)
    rep.heading("Where the formulas differ")
    rep.bullets(notes)
    rep.heading("Formulas both engines share with causalrec")
    rep.bullets([
        "Welch: diff = ybar_t - ybar_c, se^2 = s_t^2/n_t + s_c^2/n_c (n - 1 variances), Welch-Satterthwaite df "
        "(gbstats TwoSidedTTest, spotify StudentsTTest); 0/1 metrics: p(1 - p)/n variances (spotify ZTest; gbstats "
        "ProportionStatistic).",
        "Ratio N/D: delta method, Var(R) = (s_N^2 - 2 R s_ND + R^2 s_D^2) / (n Dbar^2) (gbstats RatioStatistic).",
        "CUPED: theta = pooled Cov(y, x) / Var(x) over both arms, m_k = ybar_k - theta (xbar_k - xbar) (gbstats "
        "RegressionAdjustedStatistic; spotify ZTestLinreg's slope and point estimate).",
        "Relative lift: (m_t - m_c)/m_c with delta variance V_t/m_c^2 + m_t^2 V_c/m_c^4 (gbstats).",
        "Confidence sequence: Waudby-Smith et al. (2023) eq. 9, rho^2 = (-2 log a + log(-2 log a + 1)) / tuning "
        "(gbstats SequentialTwoSidedTTest); causalrec also reports the running intersection over looks.",
        "SRM: Pearson chi-square against the designed split (gbstats check_srm).",
        "Group-sequential: Lan-DeMets spending with the power family a t^rho at information n / N_planned "
        "(spotify, rho = 2); multiple-testing corrections: statsmodels multipletests (both).",
    ])
    atomic_write_text(REPO / "reports" / "ab_engines.md", rep.to_markdown())
    atomic_write_text(REPO / "reports" / "ab_engines.json",
                      json.dumps({"meta": meta, "rows": rows.to_dict(orient="records")}, indent=1, default=str) + "\n")


def main() -> None:
    rows, meta = run()
    write_report(rows, meta)
    bad = rows[~rows["agree"] & ~rows.get("explained", pd.Series(False, index=rows.index)).fillna(False).astype(bool)]
    print((REPO / "reports" / "ab_engines.md").read_text())
    if not bad.empty:
        print(f"{len(bad)} unexplained differences", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
