"""``causalrec simulate``: write semi-synthetic text logs with known causal truth."""

from __future__ import annotations

from pathlib import Path

import typer

from causalrec.cli.app import app
from causalrec.cli.output import parse_list


@app.command("simulate")
def simulate_command(
    out: Path = typer.Option(..., "--out", help="Folder to write logs.parquet, items.csv, users.csv, relevance.csv, truth.json."),
    n_rows: int = typer.Option(20000, "--n-rows", help="Number of log rows (impressions / candidates)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the logs."),
    catalog_seed: int = typer.Option(None, "--catalog-seed", help="Seed of the item catalogue and user pool (default: --seed)."),
    n_users: int = typer.Option(3000, "--n-users", help="Size of the returning-user pool."),
    n_items: int = typer.Option(600, "--n-items", help="Size of the item catalogue."),
    n_topics: int = typer.Option(8, "--n-topics", help="Number of topics (at most 10)."),
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
    """Simulate text-recommendation logs whose exposure is confounded through text, with truth.json."""
    from causalrec.simulate import simulate_logs

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
