"""The ``react`` command: one Typer app whose commands live in ``reactcli/commands``.

``main`` is the console-script entry point and the one place that turns a failure into what the
user reads: a :class:`ReactError` (bad input) or an ``OSError`` (a read-only or full disk, a
missing permission) becomes one line on stderr and exit code 1; Ctrl-C becomes one line and exit
code 130. ``--debug`` shows the traceback instead.

The command modules are imported here by name, so the wiring is plain to read (and to a linter);
they import torch and the other heavy libraries inside their functions, so ``react --help`` stays
fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import typer
from typer.core import TyperGroup

from reactcli import __version__
from reactcli.commands.baselines import baselines
from reactcli.commands.compare import compare
from reactcli.commands.evaluate import evaluate
from reactcli.commands.fid import fid
from reactcli.commands.generate import generate
from reactcli.commands.live import live
from reactcli.commands.package_submission import package_submission
from reactcli.commands.preprocess import preprocess
from reactcli.commands.render import render
from reactcli.commands.synth import synth
from reactcli.commands.train_predictor import train_predictor
from reactcli.commands.train_tokenizer import train_tokenizer
from reactcli.errors import Interrupted, ReactError

#: Said when Ctrl-C stops a command that has nothing more specific to report. It is true of every
#: command: each file is written to a temporary name and renamed when complete (reactcli.atomic).
INTERRUPTED = "interrupted; files already written are complete, the one being written was discarded"


class _Group(TyperGroup):
    """The app's command group; Ctrl-C inside a command leaves it as :class:`Interrupted`.

    Typer turns a ``KeyboardInterrupt`` into a silent ``Exit(130)`` before ``main`` could see it
    (and click into ``Abort``), so the interrupt is caught here, where the command runs, and
    re-raised as an error that Typer lets through.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted(INTERRUPTED) from None


app = typer.Typer(
    name="react",
    cls=_Group,
    help="Online appropriate facial reaction generation (REACT 2024): data, training, metrics, rendering.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

#: (command name, the Typer-annotated function), in the order ``react --help`` lists them.
COMMANDS: list[tuple[str, Any]] = [
    ("synth", synth),
    ("preprocess", preprocess),
    ("train-tokenizer", train_tokenizer),
    ("train-predictor", train_predictor),
    ("generate", generate),
    ("evaluate", evaluate),
    ("fid", fid),
    ("baselines", baselines),
    ("compare", compare),
    ("render", render),
    ("package-submission", package_submission),
    ("live", live),
]

for _name, _function in COMMANDS:
    app.command(_name)(_function)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reactcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Online appropriate facial reaction generation (REACT 2024)."""


def os_error_line(exc: OSError) -> str:
    """``<path>: <reason>`` for an operating-system failure (EACCES, ENOSPC, EROFS, ...).

    The path is the exception's file name (the second one too for a failed rename); without one the
    reason stands alone.
    """
    reason = exc.strerror or str(exc)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def main(argv: list[str] | None = None) -> None:
    """Run ``react``; every failure a user can cause or fix is one line on stderr, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, prog_name="react")
    except Interrupted as exc:
        if debug:
            raise
        typer.secho(str(exc), err=True, fg="yellow")
        sys.exit(exc.exit_code)
    except ReactError as exc:
        if debug:
            raise
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(exc.exit_code)
    except OSError as exc:
        if debug:
            raise
        typer.secho(f"error: {os_error_line(exc)}", err=True, fg="red")
        sys.exit(1)
    except KeyboardInterrupt:  # outside a command (while parsing the command line)
        if debug:
            raise
        typer.secho(INTERRUPTED, err=True, fg="yellow")
        sys.exit(130)


if __name__ == "__main__":
    main()
