"""``causalrec ab``: evaluate an A/B experiment from its logs or from sufficient statistics.

Parses options, calls :func:`causalrec.experiments.analyze` (row-level logs) or
:func:`causalrec.experiments.analyze_stats` (``--stats FILE``: one row per variant,
and segment / stratum / look, of sums), prints the SRM check first, writes JSON
(``--out``), the report (``--report``) and the sufficient statistics
(``--write-stats``). No statistics here. Only numpy/scipy load on this path (no
torch, no statsmodels) unless an option needs them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from causalrec.cli.app import app
from causalrec.cli.checks import unit_interval
from causalrec.cli.output import emit, parse_list


@app.command("ab")
def ab_command(
    logs: Path = typer.Argument(None, help="CSV or Parquet: one row per unit, or per impression with --unit "
                                "(omit with --stats)."),
    variant: str = typer.Option(..., "--variant", help="Column holding the variant (arm) label."),
    metric: list[str] = typer.Option([], "--metric", help="Metric column (repeatable; 0/1 columns are analysed as proportions)."),
    ratio: list[str] = typer.Option([], "--ratio", help="Ratio metric NUM/DEN, e.g. clicks/sessions (repeatable; delta method)."),
    quantile: list[str] = typer.Option([], "--quantile", help="Quantile metric COL:LEVEL, e.g. revenue:median, "
                                       "latency:p90, revenue:0.99 (repeatable; Woodruff variance, clustered by --unit)."),
    stats: Path = typer.Option(None, "--stats", help="Sufficient statistics instead of logs: one row per variant (and "
                               "segment / stratum / look) with n, M_sum, M_sum_sq, C_sum, C_sum_sq, M_x_C_sum, N_x_D_sum."),
    write_stats: Path = typer.Option(None, "--write-stats", help="Also write the sufficient statistics of LOGS here "
                                     "(CSV, or Parquet by suffix), in the --stats format."),
    unit: str = typer.Option(None, "--unit", help="Randomisation-unit column: rows are summed per unit and every "
                             "standard error is at the unit (cluster-robust)."),
    aggregate: str = typer.Option("mean", "--aggregate", help="With --unit: 'mean' analyses each --metric per row "
                                  "(sum/rows per unit, delta method), 'sum' as a per-unit total."),
    covariate: list[str] = typer.Option([], "--covariate", help="Pre-period covariate for CUPED (repeatable; implies "
                                        "--cuped); NUM/DEN for a pre-period ratio."),
    cuped: bool = typer.Option(False, "--cuped", help="CUPED adjustment (without --covariate: pre_<metric> columns; "
                               "for a ratio N/D the pre-period ratio pre_N/pre_D)."),
    lin: bool = typer.Option(False, "--lin", help="Lin's interacted regression adjustment on the covariates."),
    stratify: str = typer.Option(None, "--stratify", help="Pre-treatment column for post-stratification."),
    cap: str = typer.Option(None, "--cap", help="Winsorise metrics at a pooled quantile: 0.99 (upper) or 0.01:0.99."),
    cupac_features: str = typer.Option(None, "--cupac-features", help="Comma-separated pre-period feature columns for CUPAC."),
    cupac_text: str = typer.Option(None, "--cupac-text", help="Column with the user's pre-period history text for CUPAC (MiniLM embeddings)."),
    lift_ci: str = typer.Option("delta", "--lift-ci", help="Relative-lift interval: 'delta' or 'fieller' (both are reported)."),
    expected_split: str = typer.Option(None, "--expected-split", help="Designed split, e.g. 50/50 or control=90/new=10 "
                                       "(unnamed weights follow the sorted variant names). Default: equal."),
    control: str = typer.Option(None, "--control", help="Control variant (default: 'control' if present, else the first sorted)."),
    segment: str = typer.Option(None, "--segment", help="Column whose values get their own effects (corrected)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Test level; intervals are at 1 - alpha.",
                               callback=unit_interval),
    corrections: str = typer.Option("holm,bh", "--corrections", help="Multiple-testing corrections: any of holm, bh, "
                                    "bonferroni, sidak, holm-sidak, hommel, simes-hochberg, by."),
    primary: str = typer.Option(None, "--primary", help="Estimator that is tested and corrected (default: the most "
                                "adjusted requested: cupac > lin > cuped > poststrat > unadjusted)."),
    srm_alpha: float = typer.Option(0.001, "--srm-alpha", help="p-value below which the split is a sample-ratio mismatch.",
                                   callback=unit_interval),
    power: float = typer.Option(0.8, "--power", help="Power for the minimum detectable effect.", callback=unit_interval),
    planned_lift: float = typer.Option(0.01, "--planned-lift", help="Relative lift to plan the sample size for."),
    sequential: bool = typer.Option(False, "--sequential", help="Add sequential results over the looks: confidence "
                                    "sequence, group-sequential test and mSPRT."),
    sequential_methods: str = typer.Option(None, "--sequential-methods", help="Comma-separated subset of cs,gst,msprt."),
    timestamp: str = typer.Option(None, "--timestamp", help="Row time column (exposure / event time) placing the looks "
                                  "(implies --sequential)."),
    looks: str = typer.Option(None, "--looks", help="With --timestamp: a number of equal time spans (default 20) or "
                              "comma-separated cut-offs, e.g. 2024-05-07,2024-05-14."),
    look_column: str = typer.Option(None, "--look-column", help="With --stats: column numbering the cumulative looks "
                                    "(default: 'look' if present)."),
    spending: str = typer.Option("obf", "--spending", help="Group-sequential alpha spending: obf (O'Brien-Fleming "
                                 "type), pocock, power."),
    spending_rho: float = typer.Option(2.0, "--spending-rho", help="Exponent of the power spending function alpha t^rho."),
    max_n: float = typer.Option(None, "--max-n", help="Planned total units of a comparison (group-sequential "
                                "information = units / max-n; default: the units at the last look)."),
    cs_tuning: float = typer.Option(5000.0, "--cs-tuning", help="Units at which the confidence sequence is tightest "
                                    "(set it to the planned sample size)."),
    order: str = typer.Option(None, "--order", help="Older name for --timestamp (a column ordering units in time)."),
    tau: float = typer.Option(None, "--tau", help="mSPRT mixing standard deviation (default: 0.1 x the metric's sd at the first look)."),
    seed: int = typer.Option(0, "--seed", help="Seed (CUPAC folds)."),
    out: Path = typer.Option(None, "--out", help="Write the JSON result here."),
    report: Path = typer.Option(None, "--report", help="Write the report here (.html, or .md for Markdown)."),
    engine: str = typer.Option("auto", "--engine", help="'auto' (in process) or 'spark': LOGS is then a "
                               "Parquet/Delta path or a table name, summed on Spark."),
    spark_master: str = typer.Option(None, "--spark-master", help="With --engine spark: the master, e.g. local[*]."),
) -> None:
    """Evaluate an A/B test: SRM, lifts with CIs, CUPED/CUPAC/Lin, quantiles, corrections, segments, power, sequential."""
    from causalrec.errors import InputError

    common = dict(
        variant=variant, metrics=metric, ratios=ratio, covariates=covariate, cuped=cuped, lin=lin, stratify=stratify,
        lift_ci=lift_ci, expected_split=expected_split, control=control, segment=segment, alpha=alpha,
        srm_alpha=srm_alpha, power=power, planned_lift=planned_lift, sequential=sequential,
        sequential_methods=sequential_methods, sequential_tau=tau, spending=spending, spending_rho=spending_rho,
        max_n=max_n, cs_tuning=cs_tuning, corrections=parse_list(corrections), primary=primary,
    )
    if stats is not None:
        if logs is not None:
            raise InputError("give either LOGS or --stats, not both", column="--stats",
                             fix="--stats FILE replaces the logs argument")
        rowonly = {"--quantile": quantile, "--unit": unit, "--cap": cap, "--cupac-features": cupac_features,
                   "--cupac-text": cupac_text, "--write-stats": write_stats, "--timestamp": timestamp or order,
                   "--looks": looks}
        used = [k for k, v in rowonly.items() if v]
        if used:
            raise InputError(f"{used[0]} needs row-level logs; a stats file holds only sums", column=used[0],
                             fix="drop it, or pass the logs instead of --stats (looks in a stats file: a 'look' "
                             "column with --look-column)")
        from causalrec.experiments import analyze_stats

        result = analyze_stats(stats, look=look_column, **common)
    else:
        if logs is None:
            raise InputError("no input: pass the logs (LOGS) or a stats file (--stats FILE)", column="LOGS",
                             fix="e.g. causalrec ab logs.csv --variant variant --metric revenue")
        if look_column:
            raise InputError("--look-column applies to --stats files", column="--look-column",
                             fix="with logs, place the looks with --timestamp COL [--looks N]")
        from causalrec.experiments import analyze

        cupac = None
        if cupac_features or cupac_text:
            from causalrec.experiments import CUPAC

            cupac = CUPAC(features=parse_list(cupac_features), text=cupac_text)
        if engine == "spark":
            from causalrec.engines.spark import read_source, spark_session

            logs = read_source(spark_session(spark_master), logs)
        elif engine not in ("auto", "local"):
            raise InputError(f"unknown engine {engine!r}", column="--engine", fix="use auto, local or spark")
        result = analyze(logs, quantiles=quantile, unit=unit, aggregate=aggregate, cupac=cupac, cap=cap,
                         timestamp=timestamp, looks=looks, order=order, seed=seed, write_stats=write_stats, **common)
        if write_stats is not None:
            typer.echo(f"wrote {write_stats} (re-analyse with: causalrec ab --stats {write_stats} --variant {variant} "
                       "...; a per-row metric M with --unit is the ratio M/n_rows there)", err=True)

    def build(res):
        from causalrec.report.ab import build_ab_report

        return build_ab_report(res)

    emit(result, out, report, build)
