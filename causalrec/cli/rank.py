"""``causalrec rank train|eval``: fine-tune the text ranker on (corrected) labels, evaluate it unbiasedly.

Parses options and calls :mod:`causalrec.ranking`; no statistics here. torch
and transformers load inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from causalrec.cli.app import app
from causalrec.cli.checks import unit_interval
from causalrec.cli.output import emit, parse_list

rank_app = typer.Typer(help="Train a ranker fine-tuned from the text encoder on corrected labels, and "
                       "evaluate it on known relevance or randomised logs.", no_args_is_help=True)
app.add_typer(rank_app, name="rank")


def examination_curve(value: str) -> list[float]:
    """``--examination``: a comma list of numbers, or a JSON file holding a list, ``{"examination": [...]}``
    or the summary JSON of ``causalrec debias`` (its ``examination.positions[*].examination``)."""
    from causalrec.errors import InputError

    fix = ("pass relative examination per slot, e.g. --examination 1,0.5,0.33, or the --summary-json "
           "of `causalrec debias`")
    path = Path(value)
    if path.suffix.lower() == ".json" or path.is_file():
        if not path.is_file():
            raise InputError(f"--examination file '{value}' does not exist", column="--examination", fix=fix)
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"--examination file '{value}' is not valid JSON ({exc})", column="--examination",
                             fix=fix) from exc
        if isinstance(obj, dict):
            obj = obj.get("examination", obj)
        if isinstance(obj, dict) and isinstance(obj.get("positions"), list):
            # causalrec debias --summary-json: one record per slot, in slot order
            rows = sorted(obj["positions"], key=lambda r: r.get("position", 0))
            obj = [r.get("examination") for r in rows]
        vals = obj
    else:
        vals = parse_list(value)
    try:
        curve = [float(v) for v in vals]
    except (TypeError, ValueError) as exc:
        raise InputError(f"--examination {value!r} is not a list of numbers", column="--examination",
                         fix=fix) from exc
    if not curve:
        raise InputError(f"--examination {value!r} holds no values", column="--examination", fix=fix)
    return curve


@rank_app.command("train", help="Fine-tune the two-tower text ranker on DATA's labels (and sample weights), "
                  "starting from the zero-shot encoder; the epoch is chosen on held-out request lists.")
def train_command(
    data: Path = typer.Argument(..., help="Training table (CSV/Parquet), e.g. the output of `causalrec debias`."),
    label: str = typer.Option(..., "--label", help="Label column (click, or corrected_label)."),
    out: Path = typer.Option(..., "--out", help="Model folder to write (safetensors + JSON)."),
    weight: str | None = typer.Option(None, "--weight", help="Sample-weight column (e.g. weight)."),
    objective: str = typer.Option("listwise", "--objective", help="listwise (softmax cross-entropy per list), "
                                  "lambdarank (NDCG-weighted pairs), pointwise (weighted BCE), pairwise "
                                  "(weighted RankNet) or click_model (relevance x examination per slot, on raw "
                                  "clicks with --position)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Passes over the data; 0 saves the zero-shot model. "
                                      "Default 5; for click_model with held-out lists a budget of 30 with --patience 3."),
    val_share: float = typer.Option(0.2, "--val-share", help="Share of request lists held out to choose the "
                                    "epoch (0: keep the last epoch)."),
    val_label: str | None = typer.Option(None, "--val-label", help="Column scoring the held-out lists "
                                         "(default --label; pass corrected labels to select without bias)."),
    val_weight: str | None = typer.Option(None, "--val-weight", help="Weight column for the held-out lists "
                                          "(default --weight when --val-label is not given)."),
    reg: float = typer.Option(1e-3, "--reg", help="L2 pull toward the zero-shot parameters."),
    select_by: str = typer.Option("auto", "--select-by", help="Epoch criterion on the held-out lists: dcg "
                                  "(DCG@10 with the validation gains), loglik (click_model: held-out click "
                                  "log-likelihood; the DCG gate vs the zero-shot start still applies) or auto "
                                  "(loglik for click_model, else dcg)."),
    patience: int | None = typer.Option(None, "--patience", help="Stop after this many epochs without "
                                        "improvement of the --select-by criterion (--epochs is then a budget)."),
    ema_epochs: float | None = typer.Option(None, "--ema-epochs", help="Validate, select and save an "
                                            "exponential moving average of the weights over about this many "
                                            "passes (0: the raw weights). Default 2 for click_model, else 0."),
    position: str | None = typer.Option(None, "--position", help="Slot column (click_model objective)."),
    position_base: int = typer.Option(0, "--position-base", help="Whether positions count from 0 or 1."),
    examination: str | None = typer.Option(None, "--examination", help="click_model: fix the examination "
                                           "tower to a known curve instead of learning it (needed under a "
                                           "personalised ranking): relative examination per slot as a comma "
                                           "list (1,0.5,0.33,...) or a JSON file (a list, or the --summary-json "
                                           "of `causalrec debias`, e.g. on a randomised slice)."),
    exam_context: str | None = typer.Option(None, "--exam-context", help="click_model: learn one examination "
                                            "tower per value of this column (e.g. device) instead of one "
                                            "for all rows."),
    model: Path | None = typer.Option(None, "--model", help="Local encoder folder (default all-MiniLM-L6-v2)."),
    device: str = typer.Option("auto", "--device", help="auto (GPU when present), cpu or cuda."),
    user_text: str = typer.Option("user_text", "--user-text", help="User / context text column."),
    item_text: str = typer.Option("item_text", "--item-text", help="Item text column."),
    group: str = typer.Option("request_id", "--group", help="Request id column (lists; validation split)."),
    max_length: int = typer.Option(48, "--max-length", help="Token limit per text."),
    trainable_layers: int = typer.Option(0, "--trainable-layers", help="Top encoder layers to train "
                                         "(0: projection and item prior only, -1: all)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Lists (listwise, lambdarank), rows or pairs per step."),
    lr: float = typer.Option(5e-5, "--lr", help="Learning rate of the encoder layers."),
    head_lr: float = typer.Option(2e-3, "--head-lr", help="Learning rate of the projection, item prior, scale."),
    seed: int = typer.Option(0, "--seed", help="Seed."),
) -> None:
    from causalrec.data.atomic import atomic_write_text
    from causalrec.ranking.run import fit_ranker_on_frame
    from causalrec.ranking.train import TrainConfig

    if epochs is None:
        # The click model selects its epoch by held-out click log-likelihood of its averaged weights
        # (ema_epochs 2), a smooth criterion that early stopping can follow: in debias_rank pilots its
        # best epochs were 10-25, so a fixed 5 stops it short and 30 is a ceiling, not a length;
        # the other objectives keep their fixed 5 passes.
        # Without held-out lists (--val-share 0) nothing can stop it early: keep the fixed 5.
        budget = objective == "click_model" and val_share > 0
        epochs = 30 if budget else 5
        if budget and patience is None:
            patience = 3
    curve = None
    if examination is not None:
        if objective != "click_model":
            from causalrec.errors import InputError

            raise InputError(f"--examination fixes the click model's examination tower; objective is {objective!r}",
                             column="--examination", fix="add --objective click_model --position COL, or drop "
                             "--examination (other objectives take corrected labels from `causalrec debias`)")
        curve = examination_curve(examination)
    cfg = TrainConfig(objective=objective, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr,
                      max_length=max_length, trainable_layers=trainable_layers, seed=seed, device=device,
                      reg=reg, val_share=val_share, select_by=select_by, patience=patience,
                      ema_epochs=ema_epochs)
    ranker, hist = fit_ranker_on_frame(data, label=label, weight=weight, user_text=user_text, item_text=item_text,
                                       group=group, position=position, position_base=position_base,
                                       val_label=val_label, val_weight=val_weight, encoder=model, config=cfg,
                                       examination=curve, exam_context=exam_context)
    ranker.meta.update({"label": label, "weight": weight, "val_label": val_label or label,
                        "train_data": str(data), "examination_source": examination})
    ranker.save(out)
    atomic_write_text(out / "train_history.json", json.dumps(hist.to_dict(), indent=2, default=str) + "\n")
    if epochs == 0:
        typer.echo("saved the zero-shot model (epochs 0, untrained)")
    else:
        typer.echo(f"trained on {hist.n_rows:,} rows ({hist.n_texts:,} unique texts, device {hist.device}); "
                   f"loss per epoch: {', '.join(f'{v:.4f}' for v in hist.losses)}")
        typer.echo(hist.curve_text())
    for note in hist.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"wrote {out}", err=True)


@rank_app.command("eval", help="Evaluate trained rankers: NDCG/recall against known relevance, or the "
                  "policy value of their top-k on randomised logs (IPS/SNIPS/DR). Several model folders "
                  "are evaluated on the same data and printed side by side.")
def eval_command(
    paths: list[Path] = typer.Argument(..., help="MODEL_DIR [MODEL_DIR ...] DATA: folders written by "
                                       "`causalrec rank train`, then the evaluation table (CSV/Parquet)."),
    out: Path = typer.Option(..., "--out", help="Write the JSON result here."),
    relevance: str | None = typer.Option(None, "--relevance", help="Known relevance column (simulator truth)."),
    k: str = typer.Option("5,10", "--k", help="Cut-offs for NDCG@k / recall@k."),
    user_text: str = typer.Option("user_text", "--user-text", help="User / context text column."),
    item_text: str = typer.Option("item_text", "--item-text", help="Item text column."),
    group: str = typer.Option("request_id", "--group", help="Request id column (lists to rank)."),
    item: str = typer.Option("item_id", "--item", help="Item column (randomised-log mode)."),
    outcome: str = typer.Option("outcome", "--outcome", help="Outcome column (randomised-log mode)."),
    propensity: str = typer.Option("propensity", "--propensity", help="Logging propensity (randomised-log mode)."),
    position: str = typer.Option("position", "--position", help="Position column (randomised-log mode)."),
    position_base: int = typer.Option(0, "--position-base", help="Whether positions count from 0 or 1."),
    estimators: str = typer.Option("ips,snips,dr", "--estimators", help="OPE estimators (randomised-log mode)."),
    ci_level: float = typer.Option(0.95, "--ci-level", help="Confidence level.", callback=unit_interval),
    seed: int = typer.Option(0, "--seed", help="Seed (tie-breaking, folds)."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not print the table."),
) -> None:
    from causalrec.data.schema import LogSchema
    from causalrec.errors import InputError
    from causalrec.ranking.model import TwoTowerRanker
    from causalrec.ranking.run import compare_rankers, evaluate_ranker

    try:
        ks = [int(v) for v in parse_list(k)]
    except ValueError as exc:
        raise InputError(f"--k must be a comma list of integers, got {k!r}", column="--k", fix="e.g. --k 5,10") from exc
    if len(paths) < 2:
        raise InputError("rank eval needs MODEL_DIR ... DATA (at least one model folder and the data)",
                         column="MODEL_DIR", fix="e.g. causalrec rank eval zero_shot ranker test.parquet --out r.json")
    *model_dirs, data = paths
    schema = LogSchema(item_id=item, outcome=outcome, propensity=propensity, position=position,
                       position_base=position_base)
    kwargs = dict(relevance=relevance, ks=ks, user_text=user_text, item_text=item_text, group=group,
                  schema=schema, estimators=parse_list(estimators), ci_level=ci_level, seed=seed)
    if len(model_dirs) == 1:
        result = evaluate_ranker(TwoTowerRanker.load(model_dirs[0]), data, **kwargs)
    else:
        names = [d.name or str(d) for d in model_dirs]
        if len(set(names)) < len(names):
            names = [str(d) for d in model_dirs]
        result = compare_rankers([(n, TwoTowerRanker.load(d)) for n, d in zip(names, model_dirs, strict=True)],
                                 data, **kwargs)
    emit(result, out, None, None, quiet=quiet)
