"""The ``react`` command: one Typer app whose commands live in ``reactcli/commands``.

``main`` is the console-script entry point. It turns a :class:`ReactError` into one line on
stderr and exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys

import typer

from reactcli import __version__
from reactcli.errors import ReactError

app = typer.Typer(
    name="react",
    help="Online appropriate facial reaction generation (REACT 2024): data, training, metrics, rendering.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# (command name, module under reactcli.commands, function name)
COMMANDS: list[tuple[str, str, str]] = [
    ("synth", "synth", "synth"),
    ("preprocess", "preprocess", "preprocess"),
    ("train-tokenizer", "train_tokenizer", "train_tokenizer"),
    ("train-predictor", "train_predictor", "train_predictor"),
    ("generate", "generate", "generate"),
    ("evaluate", "evaluate", "evaluate"),
    ("fid", "fid", "fid"),
    ("baselines", "baselines", "baselines"),
    ("compare", "compare", "compare"),
    ("render", "render", "render"),
    ("package-submission", "package_submission", "package_submission"),
    ("live", "live", "live"),
]

for _name, _module, _func in COMMANDS:
    app.command(_name)(getattr(importlib.import_module(f"reactcli.commands.{_module}"), _func))


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


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, prog_name="react")
    except ReactError as exc:
        if debug:
            raise
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True, fg="red")
        sys.exit(130)


if __name__ == "__main__":
    main()
