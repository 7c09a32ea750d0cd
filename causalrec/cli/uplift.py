"""``causalrec uplift LOGS --treatment COL --outcome COL``: average effect of exposure.

Parses options, calls :func:`causalrec.uplift.estimate`, renders the result; no
statistics here. torch, transformers and econml load only inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

from causalrec.cli.app import app
from causalrec.cli.checks import named_columns, unit_interval
from causalrec.cli.output import emit, parse_list


@app.command("uplift", help="Uplift: ATE and ATT of exposure (recommendation) on an outcome, "
             "adjusting for user/item text embeddings, IDs or covariates.")
def uplift_command(
    logs: Path = typer.Argument(..., help="Log file (CSV or Parquet), one row per (user, item)."),
    treatment: str = typer.Option(..., "--treatment", help="Binary (0/1) exposure column."),
    outcome: str = typer.Option(..., "--outcome", help="Outcome column (click, purchase, revenue)."),
    user_text: str | None = typer.Option(None, "--user-text", help="Column with the user's text (e.g. history)."),
    item_text: str | None = typer.Option(None, "--item-text", help="Item text column (of the log, or of --items)."),
    items: Path | None = typer.Option(None, "--items", help="Item catalogue (CSV/Parquet) holding the item text."),
    item_key: str | None = typer.Option(None, "--item-key", help="Catalogue key column (default: item_id)."),
    user_id: str = typer.Option("user_id", "--user-id", help="User id column (cross-fitting groups; ignored if absent)."),
    item_id: str = typer.Option("item_id", "--item-id", help="Item id column (catalogue join, id features)."),
    user_history: str | None = typer.Option(None, "--user-history", help="Column with each user's history: a list "
                                            "of item texts/ids, or one string split on --history-sep."),
    history_sep: str | None = typer.Option(None, "--history-sep", help="Separator of history items (e.g. ' | ')."),
    history_pooling: str = typer.Option("mean", "--history-pooling", help="Pool history item embeddings: mean "
                                        "or attention (item-aware)."),
    propensity: str | None = typer.Option(None, "--propensity", help="Column of logged exposure propensities in "
                                          "(0, 1): used instead of a propensity model."),
    heads: str = typer.Option("mlp", "--heads", help="Nuisance heads for text: mlp, bilinear (u^T W v term), "
                              "auto (lower cross-fitted loss of mlp, bilinear) or shared (one DragonNet-style model "
                              "of e and mu, targeted regularisation)."),
    text_components: int | None = typer.Option(None, "--text-components", help="Project text vectors on this "
                                               "many principal components of the item vectors."),
    text_clusters: str | None = typer.Option(None, "--text-clusters", help="Replace text vectors by soft "
                                             "memberships of K KMeans clusters of the item vectors (K, auto: silhouette, or loss: the K "
                                             "with the lowest cross-fitted propensity log loss)."),
    text_cluster_weights: str = typer.Option("mixture", "--text-cluster-weights", help="How --text-clusters "
                                             "memberships are read: soft (softmax of distances) or mixture "
                                             "(topic proportions, for texts that mix topics)."),
    text_interaction: str = typer.Option("product", "--text-interaction", help="User-item interaction columns: "
                                         "product (u * v) or outer (every u_j v_l; vectors of <= 64 dims)."),
    covariates: str | None = typer.Option(None, "--covariates", help="Comma list of tabular covariates."),
    features: str = typer.Option("auto", "--features", help="Adjustment set: auto, text, ids or covariates."),
    method: str = typer.Option("naive,ipw,aipw,dml", "--method", help="Comma list of naive, ipw, aipw, dml."),
    model: str | None = typer.Option(None, "--model", help="Local Hugging Face encoder folder (default MiniLM)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    n_folds: int | None = typer.Option(None, "--n-folds", help="Cross-fitting folds (default 5)."),
    folds: str = typer.Option("auto", "--folds", help="Cross-fitting folds: split (shuffled, grouped by user), "
                              "hash (a hash of the user, or of the row number: what --engine spark uses) or "
                              "auto (split in process, hash on Spark), as in `causalrec debias`. An integer "
                              "is the deprecated spelling of --n-folds."),
    clip: float = typer.Option(0.01, "--clip", help="Clip estimated propensities to [clip, 1 - clip]."),
    trim: float | None = typer.Option(None, "--trim", help="Drop rows with propensity outside [trim, 1 - trim]."),
    dml_modifiers: int = typer.Option(4, "--dml-modifiers", help="Principal components used as DML effect modifiers."),
    ci_level: float = typer.Option(0.95, "--ci-level", help="Confidence level.", callback=unit_interval),
    ci_target: str = typer.Option("sample", "--ci-target", help="AIPW/DML intervals for the 'sample' ATE (the "
                                  "effect on these rows, default) or the 'population' ATE (also counts the spread "
                                  "of the effect across rows; wider)."),
    seed: int = typer.Option(0, "--seed", help="Seed of folds and models."),
    out: Path | None = typer.Option(None, "--out", help="Write the JSON result here."),
    report: Path | None = typer.Option(None, "--report", help="Write the HTML (or .md) report here."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not print the table."),
    # -- heterogeneity, diagnostics, refutations: on by default with --report --
    per_item: bool | None = typer.Option(None, "--per-item/--no-per-item",
                                         help="AIPW effect per item with Holm/BH-adjusted p-values."),
    segments: str | None = typer.Option(None, "--segments", help="Effects per segment: a log column, or "
                                        "'embedding' (KMeans of user-text embeddings; default with --report "
                                        "and --user-text). 'none' disables."),
    n_segments: int = typer.Option(8, "--n-segments", help="Number of embedding segments."),
    cate: str | None = typer.Option(None, "--cate", help="CATE model: linear_dml, causal_forest, dr_learner "
                                    "or none (default linear_dml with --report)."),
    curves: bool | None = typer.Option(None, "--curves/--no-curves", help="DR-weighted uplift/Qini curve."),
    refute: bool | None = typer.Option(None, "--refute/--no-refute",
                                       help="dowhy refutations + econml sensitivity (default on with --report)."),
    refute_simulations: int = typer.Option(10, "--refute-simulations", help="Simulations per refutation."),
    n_boot: int = typer.Option(200, "--n-boot", help="Bootstrap replicates of the uplift curve."),
    engine: str = typer.Option("auto", "--engine", help="'auto' (in process) or 'spark': LOGS is then a "
                               "Parquet/Delta path or a table name; AIPW on --covariates only (--method aipw)."),
    spark_master: str | None = typer.Option(None, "--spark-master", help="With --engine spark: e.g. local[*]."),
    hash_folds: bool = typer.Option(False, "--hash-folds", hidden=True,
                                    help="Deprecated alias of --folds hash."),
) -> None:
    from causalrec.data.schema import LogSchema
    from causalrec.uplift import estimate

    fold_kind, n_folds = _fold_options(folds, n_folds, hash_folds)
    named_columns(logs, {"--user-text": user_text, "--item-text": item_text if items is None else None})
    if items is not None:
        named_columns(items, {"--item-text": item_text, "--item-key": item_key}, what="item catalogue")
    build = None
    if report is not None:
        from causalrec.report.uplift import build_uplift_report as build
    schema = LogSchema(user_id=user_id, item_id=item_id, outcome=outcome, treatment=treatment,
                       propensity=None, position=None, request_id=None, timestamp=None,
                       user_text=user_text, item_text=None if items is not None else item_text)
    source = logs
    if engine == "spark":
        from causalrec.engines.spark import read_source, spark_session

        source = read_source(spark_session(spark_master), logs)
    elif engine not in ("auto", "local"):
        from causalrec.errors import InputError

        raise InputError(f"unknown engine {engine!r}", column="--engine", fix="use auto, local or spark")
    result = estimate(
        source, schema=schema, folds=fold_kind,
        items=str(items) if items is not None else None, item_key=item_key,
        item_text=item_text, user_text=user_text, user_history=user_history, history_sep=history_sep,
        history_pooling=history_pooling, propensity=propensity, heads=heads, text_components=text_components,
        text_clusters=(None if text_clusters in (None, "", "none") else
                       text_clusters if text_clusters in ("auto", "loss") else _int_option(text_clusters, "--text-clusters")),
        text_interaction=text_interaction, text_cluster_weights=text_cluster_weights,
        covariates=parse_list(covariates), features=features,
        methods=parse_list(method) or ["naive", "ipw", "aipw", "dml"], n_folds=n_folds, clip=clip, trim=trim,
        model=model, device=device, dml_effect_modifiers=dml_modifiers, ci_level=ci_level, ci_target=ci_target, seed=seed,
        **_analysis_options(report is not None, user_text, per_item, segments, n_segments, cate, curves, refute,
                            refute_simulations, n_boot),
    )
    emit(result, out, report, build, quiet=quiet)


def _fold_options(folds: str, n_folds: int | None, hash_folds: bool) -> tuple[str, int]:
    """``(fold kind, fold count)`` from ``--folds``, ``--n-folds`` and the deprecated spellings.

    ``--folds`` names the kind of folds as in ``causalrec debias`` (split, hash, auto); the older
    spellings keep working with a warning on stderr: ``--folds N`` (the count, now ``--n-folds N``)
    and ``--hash-folds`` (now ``--folds hash``)."""
    from causalrec.errors import InputError
    from causalrec.uplift.estimate import FOLD_KINDS

    kind = folds.strip().lower()
    if kind.lstrip("+-").isdigit():
        if n_folds is not None and n_folds != int(kind):
            raise InputError(f"--folds {folds} and --n-folds {n_folds} disagree", column="--folds",
                             fix="give the number of folds once, as --n-folds N")
        typer.echo(f"causalrec: warning: --folds {folds} (a number) is deprecated; use --n-folds {folds} "
                   "(--folds now names the kind of folds: split, hash or auto)", err=True)
        n_folds, kind = int(kind), "auto"
    elif kind not in FOLD_KINDS:
        raise InputError(f"unknown --folds {folds!r}", column="--folds",
                         fix=f"use one of {', '.join(FOLD_KINDS)} (the number of folds is --n-folds N)")
    if hash_folds:
        typer.echo("causalrec: warning: --hash-folds is deprecated; use --folds hash", err=True)
        if kind not in ("auto", "hash"):
            raise InputError(f"--hash-folds contradicts --folds {folds}", column="--folds",
                             fix="use --folds hash alone")
        kind = "hash"
    return kind, 5 if n_folds is None else n_folds


def _int_option(value: str, option: str) -> int:
    from causalrec.errors import InputError

    try:
        return int(value)
    except ValueError:
        raise InputError(f"{option} must be an integer or 'auto', got {value!r}", column=option,
                         fix=f"e.g. {option} 8") from None


def _analysis_options(with_report: bool, user_text: str | None, per_item: bool | None, segments: str | None,
                      n_segments: int, cate: str | None, curves: bool | None, refute: bool | None,
                      refute_simulations: int, n_boot: int) -> dict:
    """Keyword arguments of ``estimate`` for the analysis; everything on by default with ``--report``."""
    on = with_report
    seg = segments if segments is not None else ("embedding" if on and user_text else None)
    opts = {
        "per_item": on if per_item is None else per_item,
        "segments": None if seg in (None, "", "none") else seg,
        "cate": ("linear_dml" if on else None) if cate is None else (None if cate == "none" else cate),
        "curves": on if curves is None else curves,
        "refute": on if refute is None else refute,
    }
    opts["analysis_options"] = {"num_simulations": refute_simulations, "n_boot": n_boot, "n_segments": n_segments}
    return opts
