"""The typer application object that every command module registers on."""

import typer

app = typer.Typer(
    name="causalrec",
    help="Causal answers from recommendation logs: off-policy evaluation, uplift, "
    "debiasing, ranking and A/B analysis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """causalrec: causal answers from recommendation logs.

    A callback keeps typer in multi-command mode (without one, an app with a
    single registered command would turn that command into the whole CLI).
    """
