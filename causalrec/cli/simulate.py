"""``causalrec simulate``: write semi-synthetic text logs with known causal truth."""

from __future__ import annotations

from pathlib import Path

import typer

from causalrec.cli.app import app
from causalrec.cli.output import parse_list
from causalrec.errors import InputError


@app.command("simulate")
def simulate_command(
    out: Path = typer.Option(..., "--out", help="Folder to write logs.parquet, items.csv, users.csv, relevance.csv, truth.json "
                             "(with --kind catalogue-slates: logs, catalogue.csv, target and truth.json)."),
    kind: str = typer.Option("text-logs", "--kind", help="'text-logs' (uplift/debiasing logs with exposure) or "
                             "'catalogue-slates' (ranked lists over a titled catalogue, a Plackett-Luce logging policy "
                             "and a topk target whose value is exact)."),
    n_rows: int = typer.Option(20000, "--n-rows", help="Number of log rows (impressions / candidates)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the logs."),
    catalog_seed: int = typer.Option(None, "--catalog-seed", help="Seed of the item catalogue and user pool (default: --seed)."),
    n_users: int = typer.Option(3000, "--n-users", help="Size of the returning-user pool."),
    n_items: int = typer.Option(None, "--n-items", help="Size of the item catalogue (default 600; catalogue-slates 2000)."),
    n_topics: int = typer.Option(None, "--n-topics", help="Number of topics (default 8, at most 10; catalogue-slates: "
                                 "default 20, at most 24)."),
    n_requests: int = typer.Option(5000, "--n-requests", help="catalogue-slates: number of logged lists (requests)."),
    list_length: int = typer.Option(5, "--list-length", help="catalogue-slates: slots per list."),
    reward: str = typer.Option("cascade", "--reward", help="catalogue-slates: click model, 'cascade' or 'independent' "
                               "(position-based)."),
    n_positions: int = typer.Option(5, "--n-positions", help="Candidates (slots) per request."),
    confounding: float = typer.Option(1.0, "--confounding", help="How strongly exposure follows the user-item affinity (0 = not at all)."),
    overlap: float = typer.Option(0.05, "--overlap", help="Propensities lie in [overlap, 1 - overlap]."),
    hidden_confounding: float = typer.Option(0.0, "--hidden-confounding", help="Share of the affinity not visible in the text (0..1)."),
    new_user_share: float = typer.Option(0.1, "--new-user-share", help="Share of requests from brand-new users."),
    new_item_share: float = typer.Option(0.05, "--new-item-share", help="Share of candidates that are brand-new items."),
    random_share: float = typer.Option(0.1, "--random-share", help="Share of requests in the randomised slice."),
    random_exposure: float = typer.Option(0.5, "--random-exposure", help="Exposure probability in the randomised slice."),
    position_bias: float = typer.Option(1.0, "--position-bias", help="Examination (1 + position) ** -position_bias."),
    formats: str = typer.Option("parquet", "--formats", help="Log file formats: parquet, csv or parquet,csv."),
) -> None:
    """Simulate text-recommendation logs whose exposure is confounded through text, with truth.json
    (or, with --kind catalogue-slates, ranked-list logs over a large titled catalogue)."""
    name = kind.strip().lower().replace("_", "-")
    if name == "catalogue-slates":
        _catalogue_slates(out, n_requests=n_requests, n_items=2000 if n_items is None else n_items,
                          list_length=list_length, n_topics=20 if n_topics is None else n_topics,
                          reward=reward, seed=seed, world_seed=catalog_seed, formats=tuple(parse_list(formats)))
        return
    if name != "text-logs":
        raise InputError(f"unknown simulation kind '{kind}'", column="--kind",
                         fix="use 'text-logs' or 'catalogue-slates'")
    from causalrec.simulate import simulate_logs

    n_items, n_topics = 600 if n_items is None else n_items, 8 if n_topics is None else n_topics

    sim = simulate_logs(
        n_rows, seed, n_users=n_users, n_items=n_items, n_topics=n_topics, n_positions=n_positions,
        confounding=confounding, overlap=overlap, hidden_confounding=hidden_confounding,
        new_user_share=new_user_share, new_item_share=new_item_share, random_share=random_share,
        random_exposure=random_exposure, position_bias=position_bias, catalog_seed=catalog_seed,
    )
    sim.write(out, formats=tuple(parse_list(formats)))
    t = sim.truth
    typer.echo(
        f"simulated {t['n_rows']:,} rows ({t['n_users']:,} users, {t['n_items']:,} items): "
        f"true ATE {t['ate']:.4f}, ATT {t['att']:.4f}, naive difference {t['naive_difference']:.4f}, "
        f"treated share {t['treated_share']:.3f}"
    )
    typer.echo(f"wrote {out}", err=True)


def _catalogue_slates(out: Path, *, n_requests: int, n_items: int, list_length: int, n_topics: int, reward: str,
                      seed: int, world_seed: int | None, formats: tuple[str, ...]) -> None:
    """Write the catalogue-slate simulation and print the ``causalrec ope`` line that evaluates its target."""
    import shlex

    from causalrec.ope.catalogue_slate_synthetic import make_catalogue_slate_logs

    try:
        sim = make_catalogue_slate_logs(n_requests, n_items, list_length, n_topics, reward=reward, seed=seed,
                                        world_seed=world_seed)
    except ValueError as e:  # the simulator's own argument checks, as a CLI error
        raise InputError(str(e), column="--kind catalogue-slates",
                         fix="check --n-items, --list-length, --n-topics, --n-requests, --reward") from e
    paths = sim.write(out, formats=formats)
    t = sim.truth
    typer.echo(
        f"simulated {n_requests:,} lists x {list_length} slots over {n_items:,} items ({reward} clicks): "
        f"true value of the topk target {t['value_per_impression']:.6f} per impression "
        f"({t['value_per_list']:.6f} per list, exact)"
    )
    q = shlex.quote
    typer.echo(
        f"causalrec ope {q(str(paths['logs']))} --target {q(str(paths['target']))} --target-kind topk "
        f"--outcome click --estimators rips,snrips,cascade_dr --out {q(str(Path(out) / 'ope.json'))}"
    )
    typer.echo(f"wrote {', '.join(str(p) for k, p in paths.items() if not k.startswith('logs_'))}", err=True)
