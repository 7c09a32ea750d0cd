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
                                "(without them it applies to every row); for ranked lists see --target-kind."),
    estimators: str | None = typer.Option(None, "--estimators",
                                          help="Comma list of dm, ips, snips, dr, sndr, switch_dr, dros (default "
                                          "dm,ips,snips,dr); with --items also mips, snmips, offcem (default "
                                          "then ips,snips,mips,snmips,offcem); "
                                          "for ranked lists sips, snsips, iips, sniips, rips, "
                                          "snrips, cascade_dr, pi, snpi (default with --target-kind or "
                                          "--propensity-marginal: rips,snrips,cascade_dr, plus iips,sniips when "
                                          "the marginal is given)."),
    item: str = typer.Option("item_id", "--item", help="Item column."),
    position: str = typer.Option("position", "--position", help="Position column (ignored if absent)."),
    outcome: str = typer.Option("outcome", "--outcome", help="Outcome column (click, revenue...)."),
    propensity: str = typer.Option("propensity", "--propensity", help="Logging propensity column."),
    request: str = typer.Option("request_id", "--request", help="Request column (for request-keyed targets)."),
    position_base: int = typer.Option(0, "--position-base", help="Whether positions count from 0 or 1."),
    clip: str | None = typer.Option(None, "--clip", help="Cap on the importance weights, or 'slope' to choose it "
                                    "by SLOPE over a grid (reported)."),
    switch_tau: str = typer.Option("100", "--switch-tau", help="Switch-DR weight threshold, or 'slope'."),
    dros_lambda: str = typer.Option("100", "--dros-lambda", help="DRos shrinkage lambda, or 'slope'."),
    # -- large catalogues (mips, snmips, offcem) --------------------------------------
    logging_policy: Path | None = typer.Option(
        None, "--logging-policy", help="Large catalogues: the logging policy's full distribution, a table in the "
        "target's format (item_id, prob, optionally position and request_id or row). Without it mips/snmips/offcem "
        "estimate their cluster weights by regression."),
    items: Path | None = typer.Option(None, "--items", help="Item catalogue (CSV/Parquet) with the item id and "
                                      "its text; mips/snmips/offcem weight clusters of the text embeddings."),
    item_key: str = typer.Option("item_id", "--item-key", help="Item id column of the catalogue."),
    item_text: str = typer.Option("title", "--item-text", help="Text column of the catalogue (title...)."),
    embedding_clusters: int | None = typer.Option(
        None, "--embedding-clusters", help="Number of item clusters K; default: chosen by SLOPE over a grid "
        "(reported in the JSON and the report)."),
    n_folds: int = typer.Option(5, "--n-folds", help="Cross-fitting folds of the outcome model (1 = none)."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Percentile-bootstrap replicates (0 = none)."),
    ci_level: float = typer.Option(0.95, "--ci-level", help="Confidence level of the intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed for folds and the bootstrap."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Stream the log in batches of N rows."),
    cluster: str = typer.Option("auto", "--cluster", help="Cluster-robust SEs and bootstrap by this column. "
                                "'auto' (default): the request column when the log has one (a list's positions are "
                                "not independent); 'none': treat rows as independent. With --batch-size the file "
                                "must be sorted by it."),
    # -- ranked lists (slates) -------------------------------------------------------
    propensity_marginal: str | None = typer.Option(
        None, "--propensity-marginal", help="Ranked lists: column with the logging policy's marginal probability "
        "of the item at its slot (iips, pi); --propensity is then the probability given the items above."),
    target_kind: str | None = typer.Option(
        None, "--target-kind", help="Ranked lists: the target is a score table (item_id, score, optionally request_id) "
        "ranked by 'plackett-luce' or 'topk'. Without it a slate target is a table request_id, position, "
        "item_id, prob and optionally prob_marginal."),
    temperature: float = typer.Option(1.0, "--temperature", help="Plackett-Luce temperature (exp(score / T))."),
    mc_samples: int = typer.Option(1000, "--mc-samples", help="Monte Carlo draws for Plackett-Luce marginals "
                                   "(used when exact enumeration is too large; the error is reported)."),
    value_per: str = typer.Option("impression", "--value-per", help="Ranked lists: value per 'impression' "
                                  "(slot) or per 'list' (request)."),
    allow_unequal_lists: bool = typer.Option(False, "--allow-unequal-lists", help="Let sips/pi run on lists of "
                                             "different lengths (they weight every slot of a list)."),
    out: Path | None = typer.Option(None, "--out", help="Write the JSON result here."),
    report: Path | None = typer.Option(None, "--report", help="Write the HTML (or .md) report here."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not print the table."),
    engine: str = typer.Option("auto", "--engine", help="'auto' (in process) or 'spark': LOGS is then a "
                               "Parquet/Delta path or a table name, and the rows are reduced on Spark."),
    spark_master: str | None = typer.Option(None, "--spark-master", help="With --engine spark: the master, e.g. "
                                            "local[*] (default: the active session or spark-submit's)."),
) -> None:
    from causalrec.data.schema import LogSchema
    from causalrec.ope import evaluate
    from causalrec.report.ope import build_ope_report

    schema = LogSchema(item_id=item, position=position, outcome=outcome, propensity=propensity,
                       request_id=request, position_base=position_base)
    result = evaluate(
        logs, target, schema=schema, estimators=parse_list(estimators) or _default_estimators(
            target_kind, propensity_marginal, catalogue=items is not None),
        clip=clip, bootstrap=bootstrap, ci_level=ci_level, seed=seed, batch_size=batch_size,
        n_folds=n_folds, switch_tau=switch_tau, dros_lambda=dros_lambda, cluster=cluster,
        propensity_marginal=propensity_marginal, target_kind=target_kind, temperature=temperature,
        mc_samples=mc_samples, value_per=value_per, allow_unequal_lists=allow_unequal_lists,
        logging_policy=logging_policy, items=items, item_key=item_key, item_text=item_text,
        embedding_clusters=embedding_clusters,
        engine=engine, spark_master=spark_master,
    )
    emit(result, out, report, build_ope_report, quiet=quiet)


def _default_estimators(target_kind: str | None, propensity_marginal: str | None, catalogue: bool = False) -> list[str]:
    if catalogue and target_kind is None:
        from causalrec.ope.evaluation import CATALOGUE_ESTIMATORS

        return list(CATALOGUE_ESTIMATORS)
    if target_kind is None and propensity_marginal is None:
        return ["dm", "ips", "snips", "dr"]
    return ["rips", "snrips", "cascade_dr"] + (["iips", "sniips"] if propensity_marginal else [])
