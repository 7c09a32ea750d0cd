"""``causalrec ope LOGS --target POLICY``: value of a target policy from logs.

Parses options, calls :func:`causalrec.ope.evaluate`, renders the result; no
statistics here. Only numpy/pandas-level imports, so the command starts fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from causalrec.cli.app import app
from causalrec.cli.output import emit, parse_list


@app.command("ope", help="Off-policy evaluation: estimate a target policy's value (per impression) "
             "from logs with logging propensities.")
def ope_command(
    logs: Path = typer.Argument(..., help="Log file (CSV or Parquet), one row per impression."),
    target: Path = typer.Option(..., "--target", help="Target policy table (CSV/Parquet) with columns "
                                "item_id, prob, optionally position, and optionally request_id or row "
                                "(without them it applies to every row)."),
    estimators: str = typer.Option("dm,ips,snips,dr", "--estimators",
                                   help="Comma list of dm, ips, snips, dr, sndr, switch_dr, dros."),
    item: str = typer.Option("item_id", "--item", help="Item column."),
    position: str = typer.Option("position", "--position", help="Position column (ignored if absent)."),
    outcome: str = typer.Option("outcome", "--outcome", help="Outcome column (click, revenue...)."),
    propensity: str = typer.Option("propensity", "--propensity", help="Logging propensity column."),
    request: str = typer.Option("request_id", "--request", help="Request column (for request-keyed targets)."),
    position_base: int = typer.Option(0, "--position-base", help="Whether positions count from 0 or 1."),
    clip: float | None = typer.Option(None, "--clip", help="Cap on the importance weights."),
    switch_tau: float = typer.Option(100.0, "--switch-tau", help="Switch-DR weight threshold."),
    dros_lambda: float = typer.Option(100.0, "--dros-lambda", help="DRos shrinkage lambda."),
    n_folds: int = typer.Option(5, "--n-folds", help="Cross-fitting folds of the outcome model (1 = none)."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Percentile-bootstrap replicates (0 = none)."),
    ci_level: float = typer.Option(0.95, "--ci-level", help="Confidence level of the intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed for folds and the bootstrap."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Stream the log in batches of N rows."),
    cluster: str | None = typer.Option(None, "--cluster", help="Cluster-robust SEs and bootstrap by this column "
                                       "(e.g. request_id: a slate's positions are not independent). With --batch-size "
                                       "the file must be sorted by it."),
    out: Path | None = typer.Option(None, "--out", help="Write the JSON result here."),
    report: Path | None = typer.Option(None, "--report", help="Write the HTML (or .md) report here."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not print the table."),
) -> None:
    from causalrec.data.schema import LogSchema
    from causalrec.ope import evaluate
    from causalrec.report.ope import build_ope_report

    schema = LogSchema(item_id=item, position=position, outcome=outcome, propensity=propensity,
                       request_id=request, position_base=position_base)
    result = evaluate(
        logs, target, schema=schema, estimators=parse_list(estimators) or ["dm", "ips", "snips", "dr"],
        clip=clip, bootstrap=bootstrap, ci_level=ci_level, seed=seed, batch_size=batch_size,
        n_folds=n_folds, switch_tau=switch_tau, dros_lambda=dros_lambda, cluster=cluster,
    )
    emit(result, out, report, build_ope_report, quiet=quiet)
