"""``react compare``: one table from saved ``metrics.json`` / ``baselines.json`` files.

Researchers compare runs long after evaluating them; recomputing FRD for a table is wasteful, and
the JSON files already hold every metric. The same rows can be written as the tables people paste
into papers (GitHub Markdown, a LaTeX ``tabular``, CSV), so no number is ever retyped by hand.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reactcli.errors import ReactError, file_error

if TYPE_CHECKING:
    import pandas as pd


class TableFormat(str, Enum):
    """What ``react compare`` writes: the terminal table or one of the paper formats."""

    table = "table"
    markdown = "markdown"
    latex = "latex"
    csv = "csv"


#: ``--out`` without ``--format`` takes the format from these extensions.
EXTENSIONS = {
    ".md": TableFormat.markdown,
    ".markdown": TableFormat.markdown,
    ".tex": TableFormat.latex,
    ".csv": TableFormat.csv,
    ".txt": TableFormat.table,
}

#: Rows of a baselines JSON that are references, not competitors: never marked as the best.
REFERENCE_ROWS = frozenset({"GT"})


@dataclass
class Row:
    """One method of the table: its metrics (None = null) and whether it is a reference row."""

    name: str
    values: dict[str, float | None]
    reference: bool


def _number(path: Path, row: str, key: str, value: Any) -> float | None:
    """A metric value as a float, or None for null / NaN; anything else names the file and row."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise file_error(path, f"row '{row}': {key} is {json.dumps(value)}, expected a number or null")
    return None if math.isnan(value) else float(value)


def _rows(path: Path) -> list[Row]:
    """The rows of one JSON: a metrics.json is one row, a baselines.json one row per baseline."""
    if not path.is_file():
        raise file_error(path, "metrics file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise file_error(path, f"not a JSON file ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("rows"), dict):  # react baselines
        raw = data["rows"]
        reference = REFERENCE_ROWS
        if not raw:
            raise file_error(path, "baselines file has no rows")
    elif isinstance(data, dict) and "FRC" in data:  # react evaluate
        name = path.parent.name if path.stem == "metrics" and path.parent.name else path.stem
        raw, reference = {name: data}, frozenset()
    else:
        raise file_error(path, "expected the JSON written by `react evaluate` or `react baselines`")
    from reactcli.vocab import METRIC_KEYS

    rows = []
    for name, values in raw.items():
        if not isinstance(values, dict):
            raise file_error(path, f"row '{name}' is {type(values).__name__}, expected an object of metrics")
        numbers = {key: _number(path, name, key, values.get(key)) for key in METRIC_KEYS}
        rows.append(Row(name, numbers, name in reference))
    return rows


def collect_rows(files: list[Path], names: str | None = None) -> list[Row]:
    """Every file's rows in argument order; ``names`` ("a,b,...") renames them in that order.

    A name seen twice gets its file appended, so two runs both called "metrics" stay apart.
    """
    rows: list[Row] = []
    seen: set[str] = set()
    for path in files:
        for row in _rows(path):
            if row.name in seen:
                row.name = f"{row.name} ({path})"
            seen.add(row.name)
            rows.append(row)
    if names is not None:
        new = [n.strip() for n in names.split(",")]
        if not all(new):
            raise ReactError(f"--names has an empty name ('{names}')")
        if len(new) != len(rows):
            listed = ", ".join(r.name for r in rows)
            raise ReactError(f"--names gives {len(new)} name(s) for {len(rows)} row(s) ({listed})")
        if len(set(new)) != len(new):
            raise ReactError(f"--names lists a name twice ({names})")
        for row, name in zip(rows, new, strict=True):
            row.name = name
    return rows


def metrics_frame(rows: list[Row], metrics: tuple[str, ...]) -> pd.DataFrame:
    """One row per method, one float column per metric, NaN for null: the table every format shows."""
    import pandas as pd

    frame = pd.DataFrame(
        [[math.nan if r.values[k] is None else r.values[k] for k in metrics] for r in rows],
        index=pd.Index([r.name for r in rows], name="method"),
        columns=list(metrics),
        dtype="float64",
    )
    return frame


def _cells(
    frame: pd.DataFrame, reference: list[bool], digits: int | None, bold_best: bool
) -> dict[str, list[tuple[str, bool]]]:
    """Per metric: each method's formatted cell and whether it is to be shown as the best."""
    from reactcli.commands.evaluate import best_cells, format_metric

    columns: dict[str, list[tuple[str, bool]]] = {}
    for key in frame.columns:
        cells = format_metric([None if math.isnan(v) else float(v) for v in frame[key]], digits)
        wins = best_cells(key, cells, reference) if bold_best else [False] * len(cells)
        columns[key] = list(zip(cells, wins, strict=True))
    return columns


def to_markdown(frame: pd.DataFrame, reference: list[bool], digits: int | None, bold_best: bool) -> str:
    """A GitHub Markdown table: header with direction arrows, numbers right-aligned, best in **bold**."""
    from reactcli.metrics.names import metric

    columns = _cells(frame, reference, digits, bold_best)

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|")

    lines = [
        "| method | " + " | ".join(f"{escape(k)} {metric(k).arrow}" for k in frame.columns) + " |",
        "|:---|" + "---:|" * len(frame.columns),
    ]
    for i, name in enumerate(frame.index):
        cells = [f"**{text}**" if win else text for text, win in (columns[k][i] for k in frame.columns)]
        lines.append(f"| {escape(str(name))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell (method names like ``FRSyn_all`` or ``run_3 & co``)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(frame: pd.DataFrame, reference: list[bool], digits: int | None, bold_best: bool, title: str) -> str:
    """A booktabs ``tabular``: one row per method, arrows in the header, best in ``\\textbf``.

    Only the ``tabular`` is written, so it drops into the paper's own ``table`` float with its own
    caption; the title goes into a comment to say where the table came from.
    """
    from reactcli.metrics.names import metric

    columns = _cells(frame, reference, digits, bold_best)

    def cell(text: str, win: bool) -> str:
        return "\\textbf{" + text + "}" if win else text

    arrows = {True: r"$\uparrow$", False: r"$\downarrow$"}
    header = " & ".join(["Method", *(f"{latex_escape(k)} {arrows[metric(k).higher_is_better]}" for k in frame.columns)])
    comment = " ".join(title.split())
    lines = [
        f"% {comment} (react compare); needs \\usepackage{{booktabs}}",
        "\\begin{tabular}{l" + "r" * len(frame.columns) + "}",
        "\\toprule",
        header + " \\\\",
        "\\midrule",
    ]
    for i, name in enumerate(frame.index):
        lines.append(" & ".join([latex_escape(str(name)), *(cell(*columns[k][i]) for k in frame.columns)]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(frame: pd.DataFrame, digits: int | None) -> str:
    """CSV for spreadsheets and scripts: plain metric names, empty cells for null.

    Without ``--digits`` every number is written in full (shortest round-trip form), so reading the
    file back gives exactly the numbers of the JSON files.
    """
    return frame.to_csv(
        index_label="method", na_rep="", lineterminator="\n", float_format=None if digits is None else f"%.{digits}f"
    )


def to_text_table(table: Any) -> str:
    """The rich table as plain text, for ``--format table --out FILE`` (no colours, no wrapping)."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=1000, color_system=None, force_terminal=False).print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


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
    title: Annotated[str, typer.Option("--title", help="Table title (a comment in LaTeX).")] = "REACT 2024 metrics",
) -> None:
    """Put the metrics of several runs and baselines side by side, from their JSON files.

    The terminal table has one row per metric; Markdown, LaTeX and CSV have one row per method,
    as papers print them. Null metrics (FRRea without its weights) show as "-" (empty in CSV).
    """
    from reactcli.atomic import save_text
    from reactcli.commands.evaluate import metrics_table
    from reactcli.metrics.names import parse_metrics
    from reactcli.progress import console, err_console

    if fmt is None:
        if out is None:
            fmt = TableFormat.table
        elif out.suffix.lower() in EXTENSIONS:
            fmt = EXTENSIONS[out.suffix.lower()]
        else:
            known = ", ".join(EXTENSIONS)
            raise file_error(out, f"cannot tell the table format from '{out.suffix}' (use {known}, or pass --format)")
    if bold_best and fmt is TableFormat.csv:
        raise ReactError("--bold-best does not apply to --format csv (its cells are plain numbers)")
    chosen = parse_metrics(metrics)
    rows = collect_rows(files, names)
    reference = [r.reference for r in rows]

    if fmt is TableFormat.table:
        table = metrics_table({r.name: r.values for r in rows}, title, chosen, digits, bold_best, reference)
        if out is None:
            console.print(table)
            return
        text = to_text_table(table)
    else:
        frame = metrics_frame(rows, chosen)
        if fmt is TableFormat.markdown:
            text = to_markdown(frame, reference, digits, bold_best)
        elif fmt is TableFormat.latex:
            text = to_latex(frame, reference, digits, bold_best, title)
        else:
            text = to_csv(frame, digits)
    if out is None:
        typer.echo(text, nl=False)
    else:
        save_text(out, text)
        err_console.print(f"wrote {out} ({fmt.value}, {len(rows)} row(s))", markup=False, highlight=False)
