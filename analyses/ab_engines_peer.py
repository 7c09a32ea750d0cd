"""Runs inside a side virtualenv: gbstats 0.8.0 or spotify-confidence 4.1.0 on the sums in a JSON file.

    <venv>/bin/python analyses/ab_engines_peer.py gbstats|spotify INPUT.json OUTPUT.json

Neither engine installs beside causalrec (gbstats 0.8.0 pins numpy < 2 and pandas < 2,
spotify-confidence 4.1.0 pins pandas < 3), so ``analyses/ab_engines.py`` builds one
virtualenv per engine and calls this script there. It imports only the engine (and
numpy / pandas), reads the per-variant sufficient statistics that causalrec computed
from the same experiment, calls the engines' public classes and writes what they
return. No causalrec code runs here.
"""

from __future__ import annotations

import json
import sys
import warnings


def _gb_result(test) -> dict:
    r = test.compute_result()
    return {"expected": float(r.expected), "ci": [float(r.ci[0]), float(r.ci[1])], "p_value": float(r.p_value),
            "stddev": float(r.uplift.stddev), "error": getattr(r, "error_message", None)}


def run_gbstats(inp: dict) -> dict:
    from gbstats.frequentist.tests import (
        FrequentistConfig,
        SequentialConfig,
        SequentialTwoSidedTTest,
        TwoSidedTTest,
    )
    from gbstats.models.statistics import (
        ProportionStatistic,
        QuantileStatistic,
        RatioStatistic,
        RegressionAdjustedStatistic,
        SampleMeanStatistic,
    )
    from gbstats.utils import check_srm

    alpha = inp["alpha"]

    def mean(s, v):
        return SampleMeanStatistic(n=int(s["n"]), sum=s[f"{v}_sum"], sum_squares=s[f"{v}_sum_sq"])

    def prop(s, v):
        return ProportionStatistic(n=int(s["n"]), sum=s[f"{v}_sum"])

    def ratio(s, num, den):
        return RatioStatistic(n=int(s["n"]), m_statistic=mean(s, num), d_statistic=mean(s, den),
                              m_d_sum_of_products=s[f"{num}_x_{den}_sum"])

    def cuped(s, y, x):
        return RegressionAdjustedStatistic(n=int(s["n"]), post_statistic=mean(s, y), pre_statistic=mean(s, x),
                                           post_pre_sum_of_products=s[f"{y}_x_{x}_sum"], theta=0)

    out: dict = {}
    c, t = inp["ab"]["control"], inp["ab"]["treatment"]
    for diff in ("absolute", "relative"):
        cfg = FrequentistConfig(alpha=alpha, difference_type=diff)
        tag = "abs" if diff == "absolute" else "rel"
        out[f"mean_{tag}"] = _gb_result(TwoSidedTTest(mean(c, "revenue"), mean(t, "revenue"), cfg))
        out[f"prop_{tag}"] = _gb_result(TwoSidedTTest(prop(c, "converted"), prop(t, "converted"), cfg))
        out[f"ratio_{tag}"] = _gb_result(TwoSidedTTest(ratio(c, "clicks", "sessions"), ratio(t, "clicks", "sessions"),
                                                       cfg))
        out[f"cuped_{tag}"] = _gb_result(TwoSidedTTest(cuped(c, "revenue", "pre_revenue"),
                                                       cuped(t, "revenue", "pre_revenue"), cfg))
    for tag, diff in (("abs", "absolute"), ("rel", "relative")):
        cfg = SequentialConfig(alpha=alpha, difference_type=diff, sequential_tuning_parameter=inp["cs_tuning"])
        out[f"cs_{tag}"] = [_gb_result(SequentialTwoSidedTTest(mean(lk["control"], "revenue"),
                                                               mean(lk["treatment"], "revenue"), cfg))
                            for lk in inp["looks"]]
        out[f"cs_cuped_{tag}"] = [_gb_result(SequentialTwoSidedTTest(cuped(lk["control"], "revenue", "pre_revenue"),
                                                                     cuped(lk["treatment"], "revenue", "pre_revenue"),
                                                                     cfg))
                                  for lk in inp["looks"]]
    out["srm_p"] = float(check_srm(inp["srm"]["users"], inp["srm"]["weights"]))
    q = inp["quantile"]
    qs = [QuantileStatistic(n=int(a["n"]), n_star=int(a["n"]), nu=q["nu"], quantile_hat=a["q"], quantile_lower=a["lo"],
                            quantile_upper=a["hi"]) for a in (q["control"], q["treatment"])]
    out["quantile_abs"] = _gb_result(TwoSidedTTest(qs[0], qs[1], FrequentistConfig(alpha=alpha,
                                                                                    difference_type="absolute")))
    return out


def run_spotify(inp: dict) -> dict:
    import numpy as np
    import pandas as pd
    import spotify_confidence as sc

    alpha = inp["alpha"]
    c, t = inp["ab"]["control"], inp["ab"]["treatment"]

    def frame(v: str, rows: dict) -> pd.DataFrame:
        return pd.DataFrame({"variant": list(rows), "s": [r[f"{v}_sum"] for r in rows.values()],
                             "ss": [r[f"{v}_sum_sq"] for r in rows.values()], "n": [r["n"] for r in rows.values()]})

    def diff(test, **kw) -> dict:
        d = test.difference("control", "treatment", verbose=True, **kw)
        row = d.iloc[0]
        return {"difference": float(row["difference"]), "std_err": float(row["std_err"]),
                "ci": [float(row["ci_lower"]), float(row["ci_upper"])], "p_value": float(row["p-value"])}

    out: dict = {}
    rows = {"control": c, "treatment": t}
    out["z_mean"] = diff(sc.ZTest(frame("revenue", rows), "s", "ss", "n", "variant", interval_size=1 - alpha))
    out["t_mean"] = diff(sc.StudentsTTest(frame("revenue", rows), "s", "ss", "n", "variant", interval_size=1 - alpha))
    out["z_prop"] = diff(sc.ZTest(frame("converted", rows), "s", "ss", "n", "variant", interval_size=1 - alpha))
    lin = frame("revenue", rows).assign(x=[c["pre_revenue_sum"], t["pre_revenue_sum"]],
                                       xx=[c["pre_revenue_sum_sq"], t["pre_revenue_sum_sq"]],
                                       xy=[c["revenue_x_pre_revenue_sum"], t["revenue_x_pre_revenue_sum"]])
    out["linreg"] = diff(sc.ZTestLinreg(lin, "s", "ss", "n", feature_column="x", feature_sum_squares_column="xx",
                                        feature_cross_sum_column="xy", categorical_group_columns="variant",
                                        interval_size=1 - alpha))

    # group-sequential: cumulative looks, power spending alpha t^2 (spotify's only spending function)
    from scipy.stats import norm

    out["sequential"] = {}
    for name, spec in inp["gst"].items():
        look_rows = []
        for k, lk in enumerate(spec["looks"], start=1):
            for v in ("control", "treatment"):
                r = lk[v]
                look_rows.append({"variant": v, "look": k, "s": r["revenue_sum"], "ss": r["revenue_sum_sq"],
                                  "n": r["n"], "final": spec["final_n"]})
        seq = sc.ZTest(pd.DataFrame(look_rows), "s", "ss", "n", "variant", ordinal_group_column="look",
                       interval_size=1 - alpha)
        d = seq.difference("control", "treatment", groupby="look", final_expected_sample_size_column="final",
                           verbose=True).reset_index()
        out["sequential"][name] = {
            "look": d["look"].astype(int).tolist(), "difference": d["difference"].astype(float).tolist(),
            "std_err": d["std_err"].astype(float).tolist(),
            "adjusted_alpha": d["adjusted_alpha"].astype(float).tolist(),
            "boundary_z": [float(norm.ppf(1 - a / 2)) for a in d["adjusted_alpha"].astype(float)],
            "is_significant": d["is_significant"].astype(bool).tolist(),
            "adjusted_ci": [[float(a), float(b)] for a, b in zip(d["adjusted ci_lower"], d["adjusted ci_upper"], strict=True)],
            "information": (np.array([lk["control"]["n"] + lk["treatment"]["n"] for lk in spec["looks"]])
                            / spec["final_n"]).tolist(),
        }

    # multiple-testing corrections over the comparisons of an A/B/C/D test (0/1 metric, z-tests)
    m = inp["multi"]
    mf = pd.DataFrame({"variant": m["variants"], "s": m["sums"], "ss": m["sums"], "n": m["n"]})
    out["multi"] = {}
    for method in m["spotify_methods"]:
        test = sc.ZTest(mf, "s", "s", "n", "variant", interval_size=1 - alpha, correction_method=method)
        d = test.multiple_difference(level="control", level_as_reference=True, verbose=True)
        d = d.reset_index()
        out["multi"][method] = {"level_2": d["level_2"].astype(str).tolist(),
                                "p_value": d["p-value"].astype(float).tolist(),
                                "adjusted_p": d["adjusted p-value"].astype(float).tolist()}
    return out


def main() -> None:
    engine, src, dst = sys.argv[1:4]
    with open(src) as fh:
        inp = json.load(fh)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run_gbstats(inp) if engine == "gbstats" else run_spotify(inp)
    from importlib.metadata import version

    out["engine_version"] = version("gbstats" if engine == "gbstats" else "spotify-confidence")
    with open(dst, "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
