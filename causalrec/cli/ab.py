"""``causalrec ab``: evaluate an A/B experiment from its logs.

Parses options, calls :func:`causalrec.experiments.analyze`, prints the SRM
check first, writes JSON (``--out``) and the report (``--report``). No
statistics here. Only numpy/scipy/statsmodels load on this path (no torch),
unless CUPAC on text is requested.
"""

from __future__ import annotations

from pathlib import Path

import typer

from causalrec.cli.app import app
from causalrec.cli.output import emit, parse_list


@app.command("ab")
def ab_command(
    logs: Path = typer.Argument(..., help="CSV or Parquet: one row per unit, or per impression with --unit."),
    variant: str = typer.Option(..., "--variant", help="Column holding the variant (arm) label."),
    metric: list[str] = typer.Option([], "--metric", help="Metric column (repeatable; 0/1 columns are analysed as proportions)."),
    ratio: list[str] = typer.Option([], "--ratio", help="Ratio metric NUM/DEN, e.g. clicks/sessions (repeatable; delta method)."),
    unit: str = typer.Option(None, "--unit", help="Randomisation-unit column: rows are summed per unit before analysis."),
    aggregate: str = typer.Option("mean", "--aggregate", help="With --unit: 'mean' analyses each --metric per row "
                                  "(sum/rows per unit, delta method), 'sum' as a per-unit total."),
    covariate: list[str] = typer.Option([], "--covariate", help="Pre-period covariate for CUPED (repeatable; implies --cuped)."),
    cuped: bool = typer.Option(False, "--cuped", help="CUPED adjustment (without --covariate: uses pre_<metric> columns)."),
    cupac_features: str = typer.Option(None, "--cupac-features", help="Comma-separated pre-period feature columns for CUPAC."),
    cupac_text: str = typer.Option(None, "--cupac-text", help="Column with the user's pre-period history text for CUPAC (MiniLM embeddings)."),
    expected_split: str = typer.Option(None, "--expected-split", help="Designed split, e.g. 50/50 or control=90/new=10 "
                                       "(unnamed weights follow the sorted variant names). Default: equal."),
    control: str = typer.Option(None, "--control", help="Control variant (default: 'control' if present, else the first sorted)."),
    segment: str = typer.Option(None, "--segment", help="Column whose values get their own effects (Holm/BH corrected)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Test level; intervals are at 1 - alpha."),
    srm_alpha: float = typer.Option(0.001, "--srm-alpha", help="p-value below which the split is a sample-ratio mismatch."),
    power: float = typer.Option(0.8, "--power", help="Power for the minimum detectable effect."),
    planned_lift: float = typer.Option(0.01, "--planned-lift", help="Relative lift to plan the sample size for."),
    sequential: bool = typer.Option(False, "--sequential", help="Add always-valid (mSPRT) p-values and confidence sequences."),
    order: str = typer.Option(None, "--order", help="With --sequential: column ordering units in time (e.g. first exposure)."),
    tau: float = typer.Option(None, "--tau", help="mSPRT mixing standard deviation (default: 0.1 x the metric's sd)."),
    seed: int = typer.Option(0, "--seed", help="Seed (CUPAC folds)."),
    out: Path = typer.Option(None, "--out", help="Write the JSON result here."),
    report: Path = typer.Option(None, "--report", help="Write the report here (.html, or .md for Markdown)."),
) -> None:
    """Evaluate an A/B test: SRM, lifts with CIs, CUPED/CUPAC, corrections, segments, power."""
    from causalrec.experiments import analyze

    cupac = None
    if cupac_features or cupac_text:
        from causalrec.experiments import CUPAC

        cupac = CUPAC(features=parse_list(cupac_features), text=cupac_text)
    result = analyze(
        logs, variant=variant, metrics=metric, ratios=ratio, unit=unit, covariates=covariate, cuped=cuped,
        cupac=cupac, expected_split=expected_split, control=control, segment=segment, alpha=alpha,
        srm_alpha=srm_alpha, power=power, planned_lift=planned_lift, sequential=sequential, order=order,
        sequential_tau=tau, aggregate=aggregate, seed=seed,
    )

    def build(res):
        from causalrec.report.ab import build_ab_report

        return build_ab_report(res)

    emit(result, out, report, build)
