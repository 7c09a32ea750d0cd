"""``causalrec debias LOGS --outcome COL ...``: a training set with corrected weights and labels.

Parses options, calls :func:`causalrec.debias.debias`, writes the corrected
Parquet atomically and renders the result; no statistics here.
"""

from __future__ import annotations

from pathlib import Path

import typer

from causalrec.cli.app import app
from causalrec.cli.checks import named_columns, unit_interval
from causalrec.cli.output import emit, parse_list


@app.command("debias", help="Correct click logs for exposure and position bias: writes the input rows plus "
             "`weight`, `corrected_label` and provenance columns (Parquet).")
def debias_command(
    logs: Path = typer.Argument(..., help="Log file (CSV or Parquet), one row per impression (or candidate)."),
    outcome: str = typer.Option(..., "--outcome", help="Click / outcome column."),
    method: str = typer.Option(..., "--method", help="ips, snips, dr (or naive: weights 1, labels unchanged)."),
    out: Path = typer.Option(..., "--out", help="Corrected training set (.parquet), written atomically."),
    propensity: str | None = typer.Option(None, "--propensity", help="Logged propensity column."),
    estimate_propensity: bool = typer.Option(False, "--estimate-propensity",
                                             help="Estimate propensities (item share, or a classifier on "
                                             "--covariates) instead of reading them."),
    position: str | None = typer.Option(None, "--position", help="Position column (enables position-bias "
                                        "correction)."),
    n_positions: int | None = typer.Option(None, "--n-positions", help="Number of slots; positions outside "
                                           "the range are an error."),
    position_base: int = typer.Option(0, "--position-base", help="Whether positions count from 0 or 1."),
    item: str = typer.Option("item_id", "--item", help="Item column."),
    exposure: str | None = typer.Option(None, "--exposure", help="0/1 'shown' column: rows are candidates "
                                        "(shown or not) and the propensity is P(shown)."),
    examination: str = typer.Option("em", "--examination", help="em (regression-EM on these logs), harvest "
                                    "(intervention harvesting: the same (context, item) pair at several slots), "
                                    "randomized (the logs are a randomised slice) or none."),
    relevance_groups: str = typer.Option("item_id", "--relevance-groups", help="EM relevance groups column "
                                         "(per-group relevance; assumes it does not depend on the slot)."),
    relevance_features: str | None = typer.Option(None, "--relevance-features", help="'text': EM's relevance "
                                                  "model on MiniLM embeddings of --user-text and --item-text "
                                                  "(survives personalised rankings if the texts explain them)."),
    context: str | None = typer.Option(None, "--context", help="Context (user / query) column for harvesting "
                                       "and the identification check (default user_id)."),
    user_text: str = typer.Option("user_text", "--user-text", help="User text column (--relevance-features)."),
    item_text: str = typer.Option("item_text", "--item-text", help="Item text column (--relevance-features)."),
    covariates: str | None = typer.Option(None, "--covariates", help="Comma list of context columns "
                                          "(propensity / outcome models)."),
    clip: float | None = typer.Option(None, "--clip", help="Propensity floor (weights <= 1/clip)."),
    cap: float | None = typer.Option(None, "--cap", help="Ceiling on the weights."),
    position_clip: float = typer.Option(0.05, "--position-clip", help="Floor on relative examination."),
    n_folds: int = typer.Option(5, "--n-folds", help="Cross-fitting folds (DR outcome model, estimated propensity)."),
    folds: str = typer.Option("auto", "--folds", help="Folds of the dr outcome model: split (shuffled), hash "
                              "(a hash of the row number, what --engine spark uses) or auto (split in process, "
                              "hash on Spark)."),
    bootstrap: int = typer.Option(50, "--bootstrap", help="Bootstrap replicates for the examination CIs."),
    ci_level: float = typer.Option(0.95, "--ci-level", help="Confidence level.", callback=unit_interval),
    seed: int = typer.Option(0, "--seed", help="Seed."),
    report: Path | None = typer.Option(None, "--report", help="Write the HTML (or .md) report here."),
    summary_json: Path | None = typer.Option(None, "--summary-json", help="Write the summary JSON here."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not print the summary."),
    engine: str = typer.Option("auto", "--engine", help="'auto' (in process) or 'spark': LOGS is then a "
                               "Parquet/Delta path or a table name and --out a Parquet folder written by Spark."),
    spark_master: str | None = typer.Option(None, "--spark-master", help="With --engine spark: e.g. local[*]."),
) -> None:
    from causalrec.data.atomic import atomic_write_with
    from causalrec.data.schema import LogSchema
    from causalrec.debias import debias
    from causalrec.errors import InputError
    from causalrec.report.debias import build_debias_report

    if propensity is not None and estimate_propensity:
        raise InputError("--propensity and --estimate-propensity exclude each other", column="--propensity",
                         fix="name the logged propensity column, or ask for an estimate, not both")
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise InputError(f"--out '{out}' must be a .parquet file", column=str(out),
                         fix="e.g. --out corrected.parquet")
    named_columns(logs, {"--position": position, "--exposure": exposure})  # never dropped silently
    feats = None
    if relevance_features is not None:
        if relevance_features != "text":
            raise InputError(f"--relevance-features {relevance_features!r} is not supported", column="--relevance-features",
                             fix="use --relevance-features text")
        from causalrec.data.readers import read_table
        from causalrec.debias.relevance_features import text_relevance_features

        frame_in = read_table(logs)
        for col in (user_text, item_text):
            if col not in frame_in.columns:
                raise InputError(f"column '{col}' is not in the log", column=col,
                                 fix="name the text columns with --user-text / --item-text")
        feats = text_relevance_features(frame_in[user_text].astype(str), frame_in[item_text].astype(str), seed=seed)
        logs = frame_in
    schema = LogSchema(item_id=item, outcome=outcome, propensity=propensity or "propensity",
                       position=position, position_base=position_base, n_positions=n_positions,
                       covariates=tuple(parse_list(covariates)))
    if engine == "spark":
        from causalrec.engines.spark import read_source, spark_session

        logs = read_source(spark_session(spark_master), logs)
    elif engine not in ("auto", "local"):
        raise InputError(f"unknown engine {engine!r}", column="--engine", fix="use auto, local or spark")
    result = debias(
        logs, schema=schema, method=method, estimate_propensity=estimate_propensity,
        examination=examination if position is not None else "none", exposure=exposure,
        relevance_groups=relevance_groups, relevance_features=feats, context=context,
        clip=clip, cap=cap, position_clip=position_clip, n_folds=n_folds, folds=folds, bootstrap=bootstrap,
        ci_level=ci_level, seed=seed,
    )
    frame = result.frame
    if engine == "spark":
        from causalrec.engines.spark import write_parquet

        write_parquet(frame, out)
    else:
        atomic_write_with(out, lambda p: frame.to_parquet(p, index=False))
    typer.echo(f"wrote {out} ({result.n_rows:,} rows)", err=True)
    emit(result, summary_json, report, build_debias_report, quiet=quiet)
