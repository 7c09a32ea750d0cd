"""``analyze`` (row-level logs) and ``analyze_stats`` (sufficient statistics): the A/B analysis.

Steps, in the order a careful analyst takes them:

1. Aggregate to the randomisation unit (``unit``), so that inference treats
   independent units, never correlated impressions, as the sample (a per-row
   metric becomes the ratio ``sum / rows`` per unit, i.e. a cluster-robust
   analysis; a row-level quantile gets a cluster-robust variance).
2. At each look (``timestamp`` and ``looks``; one look without them) reduce the unit
   frame to sufficient statistics per variant (and segment, stratum, look):
   :class:`~causalrec.experiments.stats.ABStats`. Imputation means, capping
   thresholds, CUPAC models and CUPED slopes at a look use only the rows seen by then.
3. :func:`causalrec.experiments.finish.finish` turns the statistics into the result:
   SRM check first, then per metric and treatment arm the unadjusted estimate
   (Welch, Wald proportion, delta-method ratio) and each adjustment (CUPED, CUPAC,
   Lin's interacted regression, post-stratification) as a difference and relative
   lift, corrections (Holm, BH, ...) over the primary p-values, segments, power and
   MDE, and the sequential analysis (confidence sequences, group-sequential
   boundaries, mSPRT) over the looks. ``analyze_stats`` calls the same function on
   statistics read from a file, so both give the same numbers.

The control is ``control`` when given; otherwise the variant called ``control``
(any case) if there is one, else the first variant in sorted order. Every other
variant is compared with the control, never with each other.

Missing pre-period covariate values are imputed with the pooled mean and a
missingness indicator is added as a further covariate (the count is in the
warnings): pre-treatment data, so this keeps every unit and keeps the adjusted
estimator unbiased; dropping units would not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from causalrec.data.readers import column_names, read_table
from causalrec.data.validation import check_numeric
from causalrec.errors import InputError
from causalrec.experiments.estimators import Metric
from causalrec.experiments.finish import SEQUENTIAL_METHODS, Extras, Plan, finish, load_stats
from causalrec.experiments.result import ABResult
from causalrec.experiments.sequential import DEFAULT_CS_TUNING
from causalrec.experiments.stats import ABStats, write_table
from causalrec.experiments.units import N_ROWS, to_units

LOOK = "look"


def parse_ratio(spec: str) -> tuple[str, str]:
    """``"clicks/sessions"`` -> ``("clicks", "sessions")``."""
    parts = [p.strip() for p in str(spec).split("/")]
    if len(parts) != 2 or not all(parts):
        raise InputError(f"ratio metric {spec!r} is not of the form NUM/DEN", column="--ratio",
                         fix="write it as numerator column / denominator column, e.g. --ratio clicks/sessions")
    return parts[0], parts[1]


def _term(spec: str) -> Metric:
    """A covariate: a column (mean) or ``NUM/DEN`` (a pre-period ratio, linearised)."""
    if "/" in str(spec):
        n, d = parse_ratio(spec)
        return Metric(f"{n}/{d}", "ratio", n, d)
    return Metric(str(spec), "mean", str(spec))


def _sequential_methods(sequential: Any, methods: Any) -> list[str]:
    if methods:
        out = [m.strip().lower() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
        return out
    return list(SEQUENTIAL_METHODS) if sequential else []


def _plan(*, variant, metrics, ratios, covariates, cuped, lin, stratify, segment, columns, cupac=None,
          aggregate_rows=False, **opts) -> tuple[Plan, dict[str, str], list[Metric]]:
    """Parse the metric and adjustment options into a :class:`Plan` (shared by both paths)."""
    metrics = list(dict.fromkeys(metrics))
    ratio_pairs = [parse_ratio(r) for r in ratios]
    specs: list[Metric] = []
    for m in metrics:
        specs.append(Metric(m, "ratio", m, N_ROWS) if aggregate_rows else Metric(m, "mean", m))
    specs += [Metric(f"{n}/{d}", "ratio", n, d) for n, d in ratio_pairs]
    terms = [_term(c) for c in dict.fromkeys(covariates)]
    if terms:
        cuped = True
    auto: dict[str, str] = {}
    adjusters: dict[str, dict[str, list[Metric]]] = {}
    covmap: dict[str, list[Metric]] = {}
    if cuped or lin:
        for s in specs:
            if terms:
                covmap[s.name] = terms
            elif s.kind == "ratio" and s.den != N_ROWS and f"pre_{s.num}" in columns and f"pre_{s.den}" in columns:
                auto[s.name] = f"pre_{s.num}/pre_{s.den}"
                covmap[s.name] = [_term(auto[s.name])]
            else:
                auto[s.name] = f"pre_{s.num}"
                covmap[s.name] = [_term(auto[s.name])]
    if cuped:
        adjusters["cuped"] = covmap
    if cupac is not None:
        adjusters["cupac"] = {s.name: [Metric(_cupac_var(i), "mean", _cupac_var(i))] for i, s in enumerate(specs)}
    if lin:
        adjusters["lin"] = covmap
    plan = Plan(variant=variant, specs=specs, adjusters=adjusters, stratify=stratify, segment=segment, **opts)
    return plan, auto, terms


def _cupac_var(i: int) -> str:
    return f"cupac_prediction_{i}"


def _plan_options(*, control, expected_split, alpha, ci_level, srm_alpha, power, planned_lift, planning, lift_ci,
                  corrections, primary, max_segments, sequential, sequential_methods, spending, spending_rho, max_n,
                  cs_tuning, sequential_tau, cap=None) -> dict[str, Any]:
    ci_level = 1.0 - alpha if ci_level is None else ci_level
    return dict(control=control, expected_split=expected_split, alpha=alpha, ci_level=ci_level, srm_alpha=srm_alpha,
                power=power, planned_lift=planned_lift, planning=planning, lift_ci=lift_ci,
                corrections=corrections, primary=primary, max_segments=max_segments,
                sequential=_sequential_methods(sequential, sequential_methods), spending=spending,
                spending_rho=spending_rho, max_n=max_n, cs_tuning=cs_tuning, tau=sequential_tau, cap=cap)


def analyze(
    data: str | os.PathLike | pd.DataFrame,
    *,
    variant: str,
    metrics: Sequence[str] = (),
    ratios: Sequence[str] = (),
    quantiles: Sequence[str] = (),
    unit: str | None = None,
    covariates: Sequence[str] = (),
    cuped: bool = False,
    cupac: Any = None,
    lin: bool = False,
    stratify: str | None = None,
    cap: Any = None,
    lift_ci: str = "delta",
    expected_split: Any = None,
    control: str | None = None,
    segment: str | None = None,
    alpha: float = 0.05,
    ci_level: float | None = None,
    srm_alpha: float = 0.001,
    power: float = 0.8,
    planned_lift: float = 0.01,
    planning: bool = True,
    sequential: bool = False,
    sequential_methods: Sequence[str] | str | None = None,
    sequential_tau: float | None = None,
    timestamp: str | None = None,
    looks: int | Sequence | str | None = None,
    order: str | None = None,
    n_looks: int = 20,
    spending: str = "obf",
    spending_rho: float = 2.0,
    max_n: float | None = None,
    cs_tuning: float = DEFAULT_CS_TUNING,
    aggregate: str = "mean",
    max_segments: int = 50,
    corrections: Sequence[str] = ("holm", "bh"),
    primary: str | None = None,
    seed: int = 0,
    write_stats: str | os.PathLike | None = None,
) -> ABResult:
    """Analyse an A/B experiment from row-level logs; see the module docstring for the steps.

    Parameters
    ----------
    data: CSV/Parquet path or DataFrame, one row per unit (or per impression with ``unit``).
    variant: column holding the arm label.
    metrics: columns analysed as means per unit (0/1 columns as proportions).
    ratios: ``"NUM/DEN"`` ratio metrics (delta method on unit-level sums).
    quantiles: ``"COLUMN:LEVEL"`` quantile metrics (``revenue:0.5``, ``latency:p90``); with
        ``unit``, quantiles of the row values with a variance clustered by unit (or of the
        per-unit totals with ``aggregate="sum"``).
    unit: randomisation-unit column; rows are summed per unit first. Then a ``metrics``
        column is analysed per row (``aggregate="mean"``: the ratio ``sum(col) / rows`` per
        unit, delta method) or per unit (``"sum"``).
    covariates: pre-period covariate columns (or ``"NUM/DEN"`` pre-period ratios) for CUPED
        (implies ``cuped``) and Lin's adjustment.
    cuped: adjust with ``covariates``, or, when none are given, with ``pre_<metric>`` (for a
        ratio ``N/D``: the pre-period ratio ``pre_N/pre_D`` when both columns exist, else ``pre_N``).
    cupac: a :class:`causalrec.experiments.cupac.CUPAC` (or a dict of its arguments).
    lin: add Lin's (2013) interacted regression adjustment on the same covariates.
    stratify: pre-treatment column for post-stratification.
    cap: winsorise metric values at a pooled quantile: ``0.99`` or ``(0.01, 0.99)``.
    lift_ci: ``"delta"`` or ``"fieller"``: the interval of the relative lift (both are reported).
    expected_split: designed split (``"50/50"``, ``{"A": 1, "B": 1}``, ...); default equal.
    control: control arm label (default: see module docstring).
    segment: column whose values get their own (corrected) effects.
    alpha: test level; ``ci_level`` defaults to ``1 - alpha``.
    srm_alpha: SRM threshold (default 0.001).
    power, planned_lift, planning: planning figures; ``planning=False`` skips them.
    sequential, sequential_methods: add sequential results (``"cs"``, ``"gst"``, ``"msprt"``;
        default all three) over the looks.
    timestamp, looks: row time column and the looks (a count of equal time spans, or the
        cut-offs); either implies ``sequential``. ``order`` is an older name for ``timestamp``
        (then ``n_looks`` looks).
    spending, spending_rho, max_n: group-sequential spending function (``obf``, ``pocock``,
        ``power``), the power family's exponent, and the planned total units (default: the
        units at the last look, i.e. the analysis is at the planned end).
    cs_tuning: units at which the confidence sequence is tightest (set to the planned size).
    sequential_tau: mSPRT mixing standard deviation.
    corrections: multiple-testing corrections (``holm``, ``bh``, ``bonferroni``, ...).
    primary: estimator tested and corrected (default: the most adjusted one requested).
    write_stats: also write the sufficient statistics to this CSV/Parquet file.
    """
    from causalrec.experiments.cupac import CUPAC
    from causalrec.experiments.looks import cutoffs, parse_cap, parse_looks, time_key
    from causalrec.experiments.quantile import parse_quantile, quantile_label

    if aggregate not in ("mean", "sum"):
        raise InputError(f"aggregate must be 'mean' or 'sum', got {aggregate!r}", column="aggregate",
                         fix="'mean' analyses a per-row rate, 'sum' the per-unit total")
    if isinstance(cupac, dict):
        cupac = CUPAC(**cupac)
    qspecs = [parse_quantile(q) for q in quantiles]
    capq = parse_cap(cap)
    timestamp = timestamp or order
    if looks is None and order and not timestamp:
        looks = n_looks
    if timestamp is not None and looks is None:
        looks = n_looks
    if timestamp is None and looks is not None:
        raise InputError("--looks needs a timestamp column to place the looks in time", column="--timestamp",
                         fix="pass --timestamp COL (the row's exposure / event time)")
    seq_on = bool(sequential or sequential_methods or timestamp)
    from causalrec.engines import is_spark_dataframe

    spark = is_spark_dataframe(data)
    columns = list(data.columns) if spark else column_names(data)
    opts = _plan_options(control=control, expected_split=expected_split, alpha=alpha, ci_level=ci_level,
                         srm_alpha=srm_alpha, power=power, planned_lift=planned_lift, planning=planning,
                         lift_ci=lift_ci, corrections=corrections, primary=primary, max_segments=max_segments,
                         sequential=seq_on, sequential_methods=sequential_methods, spending=spending,
                         spending_rho=spending_rho, max_n=max_n, cs_tuning=cs_tuning,
                         sequential_tau=sequential_tau, cap=capq)
    plan, auto, terms = _plan(variant=variant, metrics=metrics, ratios=ratios, covariates=covariates, cuped=cuped,
                              lin=lin, stratify=stratify, segment=segment, columns=columns, cupac=cupac,
                              aggregate_rows=unit is not None and aggregate == "mean", **opts)
    if not plan.specs and not qspecs:
        raise InputError("no metric to analyse", column="--metric",
                         fix="name at least one --metric COL, --ratio NUM/DEN or --quantile COL:LEVEL")
    cov_terms = {c.name: c for covmap in plan.adjusters.values() for covs in covmap.values() for c in covs
                 if not c.num.startswith("cupac_prediction_")}
    plain_covs = [c.num for c in cov_terms.values() if c.kind == "mean"]
    ratio_cov_parts = [v for c in cov_terms.values() if c.kind == "ratio" for v in c.variables]
    metric_vars = list(dict.fromkeys([v for s in plan.specs for v in s.variables if v != N_ROWS]))
    qcols = list(dict.fromkeys(c for c, _ in qspecs))
    firsts = [c for c in [segment, stratify, *(cupac.text_columns if cupac else [])] if c]
    wanted = list(dict.fromkeys([variant, *metric_vars, *qcols, *plain_covs, *ratio_cov_parts,
                                 *(cupac.numeric if cupac else []), *firsts, *([unit] if unit else []),
                                 *([timestamp] if timestamp else [])]))
    source = data if isinstance(data, pd.DataFrame) or spark else _read(data, wanted)
    missing = [c for c in wanted if c not in source.columns]
    if missing:
        role = "pre-period covariate for --cuped (or pass --covariate COL)" if any(
            missing[0] in a.split("/") for a in auto.values()) else "column"
        raise InputError(f"{role} '{missing[0]}' is missing; columns present: {list(source.columns)[:15]}",
                         column=missing[0], fix="check the column names passed on the command line")
    if spark:
        return _analyze_spark(data, plan, wanted=wanted, unit=unit, metric_vars=metric_vars, plain_covs=plain_covs,
                              ratio_cov_parts=ratio_cov_parts, firsts=firsts, segment=segment, stratify=stratify,
                              unsupported={"--quantile": qspecs, "--cupac": cupac, "--cap": capq,
                                           "--timestamp": timestamp, "--write-stats": write_stats},
                              config={"metrics": list(dict.fromkeys(metrics)), "ratios": list(ratios),
                                      "quantiles": [], "unit": unit, "aggregate": aggregate,
                                      "covariates": [t.name for t in terms], "cuped": "cuped" in plan.adjusters,
                                      "cuped_auto_covariates": auto, "lin": bool(lin), "cupac": None,
                                      "timestamp": None, "looks": None, "order": order, "n_looks": n_looks,
                                      "sequential": bool(plan.sequential), "seed": seed, "engine": "spark"})
    if len(source) == 0:
        raise InputError("the log has no rows", fix="check the file")
    warnings: list[str] = []
    if unit is None and "user_id" in source.columns and source["user_id"].duplicated().any():
        warnings.append("rows repeat 'user_id' but no --unit was given, so every row is treated as an independent "
                        "unit; if users were randomised, pass --unit user_id for unit-level (cluster-robust) "
                        "inference")
    cats = source[variant].cat.categories if isinstance(source[variant].dtype, pd.CategoricalDtype) else None
    for c in qcols:
        v = check_numeric(source, c)
        if not np.all(np.isfinite(v)):
            raise InputError(f"quantile metric column '{c}' has missing or infinite values", column=c,
                             fix="fill or drop those rows")

    # looks
    if timestamp is not None:
        key, kind = time_key(source[timestamp], timestamp)
        cuts, look_labels = cutoffs(key, kind, parse_looks(looks))
    else:
        key, cuts, look_labels = None, np.array([np.inf]), ["all"]
    n_looks_used = len(cuts)
    if key is not None and cuts[-1] < key.max():
        inside = key <= cuts[-1]
        warnings.append(f"{int((~inside).sum()):,} rows after the last look ({look_labels[-1]}) are left out")
        source, key = source[inside], key[inside]

    # the final look first: it fixes which covariates get a missingness indicator
    sums = list(dict.fromkeys([*metric_vars, *(qcols if unit is not None and aggregate == "sum" else [])]))
    means = list(dict.fromkeys([*plain_covs, *ratio_cov_parts, *(cupac.numeric if cupac else [])]))
    final_frame, w = to_units(source, variant=variant, unit=unit, sums=sums, means=means, firsts=firsts)
    warnings += w
    indicator = {c: bool(final_frame[c].isna().any()) for c in plain_covs}
    for c in plain_covs:
        if final_frame[c].isna().all():
            raise InputError(f"covariate '{c}' has no finite values", column=c, fix="drop it from --covariate or fill it")
    for c in ratio_cov_parts:
        if final_frame[c].isna().any():
            raise InputError(f"pre-period ratio covariate column '{c}' has missing values", column=c,
                             fix="fill them (0 when missing means 'none') or use a plain covariate")
    if any(indicator.values()):
        plan = _with_indicators(plan, indicator)
    names = plan.variables()
    if unit is not None and N_ROWS not in names:
        names.append(N_ROWS)  # rows per unit, carried into the statistics (and a stats file)
    by = list(dict.fromkeys(c for c in (segment, stratify) if c))
    control_name = _resolve_control(final_frame[variant].astype(str), plan.control)
    extras = Extras(quantiles=[quantile_label(c, p) for c, p in qspecs], look_labels=look_labels,
                    declared_variants=[str(c) for c in cats] if cats is not None else None)
    keep_units = set(final_frame[unit]) if unit is not None else None
    parts = []
    for k, cut in enumerate(cuts):
        last = k == n_looks_used - 1
        rows = source if (key is None or last) else source[key <= cut]
        if last:
            frame = final_frame.copy()
        else:
            frame, _ = to_units(rows, variant=variant, unit=unit, sums=sums, means=means, firsts=firsts)
        frame = _prepare(frame, plan, indicator, capq, cupac, seed, warnings if last else None, extras if last else None)
        if key is not None:
            present = set(pd.unique(frame[variant].astype(str)))
            absent = [v for v in sorted(pd.unique(final_frame[variant].astype(str))) if v not in present]
            if absent:
                raise InputError(f"variant {absent[0]!r} has no rows by look {k + 1} ({look_labels[k]})",
                                 column=variant, fix="start the first look later (explicit --looks cut-offs) or "
                                 "use fewer looks")
        for c in by:
            frame[c] = frame[c].astype("string").fillna("<missing>").astype(str)
        parts.append(ABStats.from_units(frame, variant=variant, names=names, by=by,
                                        look=LOOK if key is not None else None, look_value=k + 1))
        if qspecs:
            if keep_units is not None:
                rows = rows[rows[unit].isin(keep_units)]
            _quantiles(rows, frame, qspecs, extras, variant, unit, aggregate, control_name, segment, k, last,
                       n_looks_used)
    stats = ABStats.concat(parts)
    extras.warnings = warnings
    config = {
        "metrics": list(dict.fromkeys(metrics)), "ratios": list(ratios), "quantiles": list(extras.quantiles),
        "unit": unit, "aggregate": aggregate, "covariates": [t.name for t in terms], "cuped": "cuped" in plan.adjusters,
        "cuped_auto_covariates": auto, "lin": bool(lin), "cupac": cupac.describe() if cupac else None,
        "timestamp": timestamp, "looks": look_labels if key is not None else None, "order": order, "n_looks": n_looks,
        "sequential": bool(plan.sequential), "seed": seed,
    }
    result = finish(plan, stats, extras, n_rows=len(source),
                    source=str(data) if not isinstance(data, pd.DataFrame) else "DataFrame", config=config)
    if write_stats is not None:
        write_table(result.stats_table(), write_stats)
    return result


def analyze_stats(
    stats: str | os.PathLike | pd.DataFrame | ABStats,
    *,
    variant: str = "variant",
    metrics: Sequence[str] = (),
    ratios: Sequence[str] = (),
    covariates: Sequence[str] = (),
    cuped: bool = False,
    lin: bool = False,
    stratify: str | None = None,
    segment: str | None = None,
    look: str | None = None,
    lift_ci: str = "delta",
    expected_split: Any = None,
    control: str | None = None,
    alpha: float = 0.05,
    ci_level: float | None = None,
    srm_alpha: float = 0.001,
    power: float = 0.8,
    planned_lift: float = 0.01,
    planning: bool = True,
    sequential: bool = False,
    sequential_methods: Sequence[str] | str | None = None,
    sequential_tau: float | None = None,
    spending: str = "obf",
    spending_rho: float = 2.0,
    max_n: float | None = None,
    cs_tuning: float = DEFAULT_CS_TUNING,
    max_segments: int = 50,
    corrections: Sequence[str] = ("holm", "bh"),
    primary: str | None = None,
) -> ABResult:
    """Analyse an experiment from sufficient statistics (a stats file, table or :class:`ABStats`).

    The table has one row per variant (and segment / stratum / look); see
    :mod:`causalrec.experiments.stats` for its columns. A ``--metric M`` is a mean per
    unit (``M_sum``, ``M_sum_sq``); a ratio ``N/D`` needs ``N_x_D_sum``; a covariate ``C`` of
    ``M`` needs ``C_sum``, ``C_sum_sq`` and ``M_x_C_sum``. Key columns the analysis does not
    use are summed over. A ``look`` column (or ``look=COL``) holds cumulative looks: the
    fixed-horizon analysis uses the last, the sequential one (implied) all of them.
    """
    table = stats
    if not isinstance(stats, (pd.DataFrame, ABStats)):
        table = read_table(stats)
    columns = list(table.columns) if isinstance(table, pd.DataFrame) else [f"{v}_sum" for v in table.names]
    colnames = {c[:-4] for c in columns if str(c).endswith("_sum")}
    opts = _plan_options(control=control, expected_split=expected_split, alpha=alpha, ci_level=ci_level,
                         srm_alpha=srm_alpha, power=power, planned_lift=planned_lift, planning=planning,
                         lift_ci=lift_ci, corrections=corrections, primary=primary, max_segments=max_segments,
                         sequential=sequential, sequential_methods=sequential_methods, spending=spending,
                         spending_rho=spending_rho, max_n=max_n, cs_tuning=cs_tuning, sequential_tau=sequential_tau)
    plan, auto, terms = _plan(variant=variant, metrics=metrics, ratios=ratios, covariates=covariates, cuped=cuped,
                              lin=lin, stratify=stratify, segment=segment, columns=colnames, **opts)
    if not plan.specs:
        raise InputError("no metric to analyse", column="--metric",
                         fix="name at least one --metric COL or --ratio NUM/DEN (quantiles need row-level logs)")
    ab = load_stats(table, plan, look)
    if ab.look is not None and not plan.sequential:
        plan.sequential = list(SEQUENTIAL_METHODS)  # looks imply a sequential analysis, as --timestamp does for logs
    n_rows = None
    final = ab.at_look(ab.looks()[-1])
    if "_n_rows" in final.names:
        n_rows = int(sum(st.sums[final.names.index("_n_rows")] for st in final.groups))
    config = {"metrics": list(dict.fromkeys(metrics)), "ratios": list(ratios), "covariates": [t.name for t in terms],
              "cuped": "cuped" in plan.adjusters, "cuped_auto_covariates": auto, "lin": bool(lin),
              "look": ab.look, "sequential": bool(plan.sequential)}
    src = "ABStats" if isinstance(stats, ABStats) else ("DataFrame" if isinstance(stats, pd.DataFrame) else str(stats))
    return finish(plan, ab, Extras(), n_rows=n_rows, source=f"stats: {src}", config=config)


def _analyze_spark(sdf, plan: Plan, *, wanted, unit, metric_vars, plain_covs, ratio_cov_parts, firsts, segment,
                   stratify, unsupported: dict, config: dict) -> ABResult:
    """The row path on Spark: the same plan and finish, the statistics summed by Spark
    (:mod:`causalrec.engines.spark_ab`)."""
    from causalrec.engines.spark_ab import unit_stats, user_id_repeats

    for option, value in unsupported.items():
        if value:
            raise InputError(f"{option} does not run on Spark", column=option,
                             fix="drop it, or analyse in process (without --engine spark)")
    warnings: list[str] = []
    if unit is None and "user_id" in sdf.columns and user_id_repeats(sdf):
        warnings.append("rows repeat 'user_id' but no --unit was given, so every row is treated as an independent "
                        "unit; if users were randomised, pass --unit user_id for unit-level (cluster-robust) "
                        "inference")
    names = plan.variables()
    if unit is not None and N_ROWS not in names:
        names.append(N_ROWS)
    stats, n_rows, w, nbytes = unit_stats(
        sdf, variant=plan.variant, unit=unit, wanted=wanted, sums=metric_vars,
        means=list(dict.fromkeys([*plain_covs, *ratio_cov_parts])), firsts=firsts, names=names,
        by=list(dict.fromkeys(c for c in (segment, stratify) if c)), plain_covs=plain_covs)
    config["spark"] = {"bytes_collected": nbytes}
    extras = Extras(look_labels=["all"], warnings=warnings + w)
    return finish(plan, stats, extras, n_rows=n_rows, source="<Spark DataFrame>", config=config)


# -- row-path pieces ---------------------------------------------------------------

def _read(path, wanted: list[str]) -> pd.DataFrame:
    try:  # read only what the analysis needs
        return read_table(path, columns=wanted)
    except InputError:  # re-read whole, to name the missing column and list what is there
        return read_table(path)


def _resolve_control(labels: pd.Series, control: str | None) -> str:
    variants = sorted(pd.unique(labels).tolist())
    if control is not None:
        return str(control)
    named = [v for v in variants if v.lower() == "control"]
    return named[0] if named else (variants[0] if variants else "")


def _with_indicators(plan: Plan, indicator: dict[str, bool]) -> Plan:
    """Add ``<c>_missing`` after each covariate ``c`` that has missing values."""
    adjusters = {}
    for name, covmap in plan.adjusters.items():
        new = {}
        for m, covs in covmap.items():
            out = []
            for c in covs:
                out.append(c)
                if c.kind == "mean" and indicator.get(c.num):
                    out.append(Metric(f"{c.num}_missing", "mean", f"{c.num}_missing"))
            new[m] = out
        adjusters[name] = new
    plan.adjusters = adjusters
    return plan


def _prepare(frame: pd.DataFrame, plan: Plan, indicator: dict[str, bool], capq, cupac, seed: int,
             warnings: list[str] | None, extras: Extras | None) -> pd.DataFrame:
    """Imputation, capping and CUPAC predictions on one look's unit frame (its own data only)."""
    from causalrec.experiments.looks import cap_values

    for c, has in indicator.items():
        if not has:
            frame[c] = frame[c].astype(float)
            continue
        v = frame[c].to_numpy(dtype=float).copy()
        bad = ~np.isfinite(v)
        v[bad] = v[~bad].mean() if (~bad).any() else 0.0
        frame[c] = v
        frame[f"{c}_missing"] = bad.astype(float)
        if warnings is not None and bad.any():
            warnings.append(f"covariate '{c}': {int(bad.sum()):,} units with missing values were imputed with the "
                            "pooled mean and a missingness indicator was added (pre-period data, so this keeps every "
                            "unit and the adjusted estimate unbiased)")
    if capq is not None:
        capped = list(dict.fromkeys(s.num for s in plan.specs))
        for c in capped:
            raw = frame[c].to_numpy(dtype=float)
            if np.isin(raw, (0.0, 1.0)).all():
                continue  # a 0/1 metric has no outliers to cap (and a rare event would be capped to all zeros)
            values, thr = cap_values(raw, capq)
            frame[c] = values
            if extras is not None:
                extras.cap_thresholds[c] = {"low": thr[0], "high": thr[1], "quantiles": list(capq)}
    if cupac is not None:
        for i, s in enumerate(plan.specs):
            frame[_cupac_var(i)] = cupac.predict_oof(frame, _target(frame, s), seed=seed)
    return frame


def _target(frame: pd.DataFrame, s: Metric) -> np.ndarray:
    """What a CUPAC model predicts: the metric, or a ratio's pooled linearisation."""
    num = frame[s.num].to_numpy(dtype=float)
    if s.kind == "mean":
        return num
    den = frame[s.den].to_numpy(dtype=float)
    return num - num.sum() / den.sum() * den


def _quantiles(rows: pd.DataFrame, frame: pd.DataFrame, qspecs, extras: Extras, variant: str, unit: str | None,
               aggregate: str, control: str, segment: str | None, k: int, last: bool, n_looks: int) -> None:
    """Quantile comparisons at one look (and, at the last, per segment)."""
    from causalrec.experiments.quantile import compare_quantile, quantile_label

    per_unit = unit is not None and aggregate == "sum"
    src = frame if per_unit else rows  # rows are the units when there is no unit column
    labels = src[variant].astype(str).to_numpy()
    groups = rows[unit].to_numpy() if (unit is not None and not per_unit) else None
    seg = None
    if last and segment:
        seg = (frame[segment] if src is frame else rows[segment]).astype("string").fillna("<missing>").astype(str)
        seg = seg.to_numpy()
    treatments = [v for v in sorted(pd.unique(frame[variant].astype(str))) if v != control]
    for col, p in qspecs:
        label = quantile_label(col, p)
        y = src[col].to_numpy(dtype=float)
        for t in treatments:
            mc, mt = labels == control, labels == t
            ok = mc.sum() >= 2 and mt.sum() >= 2
            comp = info = None
            if ok:
                comp, info = compare_quantile(y[mc], y[mt], p, groups[mc] if groups is not None else None,
                                              groups[mt] if groups is not None else None)
                info["clustered"] = groups is not None
            extras.by_look.setdefault((label, t), [None] * n_looks)[k] = comp
            if last:
                if comp is None:
                    raise InputError(f"quantile metric '{col}': an arm has fewer than 2 rows", column=variant,
                                     fix="each arm needs data")
                extras.fixed.setdefault(label, {})[t] = (comp, info)
                if seg is not None:
                    for val in np.unique(seg):
                        inside = seg == val
                        a, b = mc & inside, mt & inside
                        if a.sum() >= 2 and b.sum() >= 2:
                            extras.by_segment[(label, str(val), t)] = compare_quantile(
                                y[a], y[b], p, groups[a] if groups is not None else None,
                                groups[b] if groups is not None else None)[0]
