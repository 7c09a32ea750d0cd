"""The typer application object that every command module registers on, and
:func:`main`, which runs it with causalrec's exit-code convention.

Exit codes: 0 success; 2 bad input (an :class:`~causalrec.errors.InputError`,
or a usage error such as a mistyped option); 1 internal error; 130 interrupted.

Why the usage errors are rendered here: typer >= 0.2x vendors its own copy of
click (``typer._click``) and raises *those* exception classes, which are not
subclasses of ``click.exceptions.ClickException``; an entry point that checks
only click's classes turns "No such option: --targt" into a traceback and exit 1.
The classes are found through typer's public ``typer.BadParameter`` (whose
bases are the ``ClickException``/``UsageError`` of whichever click typer uses),
so this works with a vendored and with a plain click alike. The message is
click's usual one (usage line, help hint, ``Error: ...``), plain text so logs
stay greppable, with the close match of a mistyped option.
"""

from __future__ import annotations

import difflib
import os
import sys

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


def _click_classes(name: str) -> tuple[type, ...]:
    """The click exception class ``name`` of typer's click and of plain click (if installed)."""
    found: list[type] = []
    for cls in (*typer.BadParameter.__mro__, typer.Abort):
        if cls.__name__ == name and cls not in found:
            found.append(cls)
    try:
        import click.exceptions as ce
    except ImportError:  # pragma: no cover - typer without a click install
        ce = None
    if ce is not None and isinstance(getattr(ce, name, None), type) and getattr(ce, name) not in found:
        found.append(getattr(ce, name))
    return tuple(found)


def _suggest(exc: Exception) -> None:
    """Put click's "Did you mean --x?" into a mistyped option's message.

    typer's copy of click lists the close matches as "(Possible options: ...)"
    only; mistyped *commands* already get typer's own suggestion.
    """
    message = getattr(exc, "message", None)
    typed = getattr(exc, "option_name", None)
    possibilities = list(getattr(exc, "possibilities", None) or ())
    if not isinstance(message, str) or "Did you mean" in message or not typed or not possibilities:
        return
    close = difflib.get_close_matches(typed, possibilities, n=3, cutoff=0.0)
    text = f"{message.rstrip('.')}. Did you mean {close[0]}?"
    if len(possibilities) > 1:
        text += f" (close matches: {', '.join(sorted(possibilities))})"
    exc.message = text
    exc.possibilities = None  # the suggestion is in the message now


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    from causalrec.errors import CausalrecError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    click_exception = _click_classes("ClickException")
    abort = _click_classes("Abort")
    try:
        # standalone_mode=False: click returns Exit codes (--help: 0, Ctrl-C: 130) and
        # raises everything else, so every error is rendered here in one way.
        rv = app(args=argv, standalone_mode=False)
    except CausalrecError as exc:  # InputError and friends: the user's problem
        typer.echo(f"causalrec: error: {exc}", err=True)
        return 2
    except click_exception as exc:  # usage errors (exit 2) and click's own errors
        _suggest(exc)
        exc.show()
        return int(getattr(exc, "exit_code", 2))
    except abort:
        typer.echo("causalrec: aborted", err=True)
        return 1
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        typer.echo("causalrec: interrupted", err=True)
        return 130
    except BrokenPipeError:  # `causalrec ... | head`: the reader left; nothing to report
        return 1
    except OSError as exc:
        if exc.filename is None:
            return _internal(exc)
        # a path the user gave that cannot be read or written (no such folder, no permission, a folder)
        where = exc.filename2 if getattr(exc, "filename2", None) else exc.filename  # os.replace: the target
        typer.echo(f"causalrec: error: cannot use '{where}': {exc.strerror or exc}\n"
                   "  fix: check the path and its permissions (an output path must be a file in a "
                   "folder you can write)", err=True)
        return 2
    except Exception as exc:
        return _internal(exc)
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0


def _internal(exc: BaseException) -> int:
    """A bug, not bad input: the traceback for the report, and exit code 1."""
    import traceback

    traceback.print_exception(exc)
    typer.echo(f"causalrec: internal error: {type(exc).__name__}: {exc}", err=True)
    return 1


def _entry() -> None:  # pragma: no cover - the console script
    sys.exit(main())
