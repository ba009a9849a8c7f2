"""Shared rich progress bars and consoles, so every long loop and table looks and behaves the same.

On a terminal rich wraps text and folds table cells to the window. Written to a log file or a
pipe, the same wrapping would split paths mid-word at 80 columns (``.../RECOLA/group-`` then
``2/P41/1.csv`` on the next line), so they could not be grepped or copied: where a stream is not
a terminal its console never wraps (soft wrap, a very wide page), and :func:`print_problems` writes
one problem per line instead of a table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

PLAIN_WIDTH = 100_000  # "never wrap": wider than any path or table row


def make_console(stderr: bool = False) -> Console:
    """A console for stdout (or stderr): rich's own on a terminal, a non-wrapping one elsewhere."""
    terminal = Console(stderr=stderr)
    if terminal.is_terminal:
        return terminal
    return Console(stderr=stderr, width=PLAIN_WIDTH, soft_wrap=True)


console = make_console()
err_console = make_console(stderr=True)


def print_problems(title: str, rows: Iterable[tuple[str, str, str]], out: Console | None = None) -> None:
    """(split, path, problem) rows: a table on a terminal, else one ``split  path: problem`` line each."""
    from rich.table import Table

    out = out or console
    rows = list(rows)
    if not out.is_terminal:
        out.print(f"{title}:", markup=False, highlight=False)
        for split, path, problem in rows:
            out.print(f"{split}  {path}: {problem}", markup=False, highlight=False)
        return
    table = Table(title=title, show_lines=False)
    table.add_column("split")
    table.add_column("file", overflow="fold")
    table.add_column("problem", overflow="fold")
    for split, path, problem in rows:
        table.add_row(split, path, problem)
    out.print(table)


def make_progress(**kwargs: object) -> Progress:
    """A progress bar on stderr so stdout stays clean for tables and JSON."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=err_console,
        transient=False,
        **kwargs,  # type: ignore[arg-type]
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar; ``total`` defaults to ``len(items)`` when it has one."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total, info="")
        for item in items:
            yield item
            progress.advance(task)


@contextmanager
def stage_bars() -> Iterator[tuple[Callable[[str], None], Callable[[int, int], None]]]:
    """``(on_stage, on_count)`` for a run made of named stages: one bar per stage, the previous one
    removed as the next starts; ``on_count(done, total)`` moves the current stage's bar (a stage
    that never calls it shows a spinner)."""
    with make_progress() as progress:
        tasks: list = []

        def on_stage(name: str) -> None:
            if tasks:
                progress.remove_task(tasks.pop())
            tasks.append(progress.add_task(name, total=None, info=""))

        def on_count(done: int, total: int) -> None:
            progress.update(tasks[-1], completed=done, total=total)

        yield on_stage, on_count
