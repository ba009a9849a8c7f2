"""``react compare``: one table from saved ``metrics.json`` / ``baselines.json`` files.

Researchers compare runs long after evaluating them; recomputing FRD for a table is wasteful, and
the JSON files already hold every metric. The same rows can be written as the tables people paste
into papers (GitHub Markdown, a LaTeX ``tabular``, CSV), so no number is ever retyped by hand. The
reading, formatting and writers are in :mod:`reactcli.tables`; this module parses and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.tables import TableFormat


def compare(
    files: Annotated[list[Path], typer.Argument(help="metrics.json / baselines.json files, in display order.")],
    fmt: Annotated[
        TableFormat | None,
        typer.Option(
            "--format",
            help="table (terminal), markdown, latex (booktabs tabular) or csv. "
            "Default: from the --out extension (.md, .tex, .csv, .txt), else table.",
            case_sensitive=False,
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the table to this file instead of stdout.")] = None,
    metrics: Annotated[
        str | None, typer.Option("--metrics", help="Comma-separated metrics, in column order (default: all).")
    ] = None,
    names: Annotated[
        str | None, typer.Option("--names", help="Comma-separated method names replacing the row names, in order.")
    ] = None,
    bold_best: Annotated[
        bool,
        typer.Option(
            "--bold-best",
            help="Bold the best value of each metric in its direction (ties too; GT is a reference, never bold). "
            "Not for csv.",
        ),
    ] = False,
    digits: Annotated[
        int | None,
        typer.Option(
            "--digits", min=0, max=12, help="Decimals for every number (default: 4, or 2 for a metric reaching 10)."
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option("--title", help="Table title (a comment in LaTeX). Default: the files' edition, e.g. REACT 2024."),
    ] = None,
) -> None:
    """Put the metrics of several runs and baselines side by side, from their JSON files.

    The terminal table has one row per metric; Markdown, LaTeX and CSV have one row per method,
    as papers print them. Null metrics (FRRea without its weights) show as "-" (empty in CSV).
    REACT 2025/2026 (MARS) files give the MARS metrics (FRC, FRD, FRSyn, FRSyn_fixed, FRDiv,
    FRVar, and MAE / EEG_* where present); files of different editions cannot share a table, and a
    result scored without the post-processor is named "(non-official)".
    """
    from reactcli.atomic import save_text
    from reactcli.metrics.names import parse_metrics
    from reactcli.progress import console, err_console
    from reactcli.tables import (
        check_format,
        collect_rows,
        default_metrics,
        default_title,
        format_for,
        render_rows,
        rows_table,
    )

    fmt = format_for(out) if fmt is None else fmt
    check_format(fmt, bold_best)
    parse_metrics(metrics)  # a misspelt name fails before any file is read
    rows = collect_rows(files, names)
    chosen = parse_metrics(metrics, default_metrics(rows))
    title = default_title(rows) if title is None else title
    if fmt is TableFormat.table and out is None:
        console.print(rows_table(rows, title, chosen, digits, bold_best))
        return
    text = render_rows(rows, fmt, chosen, digits, bold_best, title)
    if out is None:
        typer.echo(text, nl=False)
    else:
        save_text(out, text)
        err_console.print(f"wrote {out} ({fmt.value}, {len(rows)} row(s))", markup=False, highlight=False)
