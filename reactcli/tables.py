"""Metric tables: reading saved results, formatting cells, marking the best, and every writer.

``react evaluate``, ``react baselines`` and ``react compare`` all print the same kind of table, and
``react compare`` also writes the ones people paste into papers (GitHub Markdown, a LaTeX
``tabular``, CSV). One module keeps the rules they share (one precision per metric, the best cell
judged on the rounded value, the ground truth never "best") so no two tables can disagree, and the
commands only parse options and print.

Imports of pandas and rich happen inside the functions that need them: the commands import this
module at their top, and ``react --help`` must stay fast.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reactcli.editions import MARS_METRIC_KEYS
from reactcli.errors import ReactError, file_error
from reactcli.metrics.names import best, metric
from reactcli.vocab import METRIC_KEYS

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
REFERENCE_ROWS = frozenset({"GT", "GT_identical"})
#: What a row name gets when its result was not computed by the official protocol (MARS ``resample``).
NON_OFFICIAL = " (non-official)"


def format_for(out: Path | None) -> TableFormat:
    """The format a file name asks for (the terminal table without one); an unknown extension is an error."""
    if out is None:
        return TableFormat.table
    suffix = out.suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        raise file_error(out, f"cannot tell the table format from '{out.suffix}' (use {known}, or pass --format)")
    return EXTENSIONS[suffix]


def check_format(fmt: TableFormat, bold_best: bool) -> None:
    """Options that cannot go together, refused before any file is read."""
    if bold_best and fmt is TableFormat.csv:
        raise ReactError("--bold-best does not apply to --format csv (its cells are plain numbers)")


# -- cells --------------------------------------------------------------------------------------------
def format_metric(values: Sequence[float | None], digits: int | None = None) -> list[str]:
    """The cells of one metric across prediction sets, all with the same number of decimals.

    One precision per metric keeps its numbers comparable at a glance and aligned in a column:
    ``digits`` when given, else 4 decimals, or 2 when a value reaches 10 (FRD's tens and hundreds
    would otherwise be too wide for the demo's eight columns in 80 characters). Null (None or NaN,
    e.g. FRRea without its weights) is "-".
    """
    present = [abs(v) for v in values if v is not None and not math.isnan(v)]
    places = digits if digits is not None else (2 if present and max(present) >= 10 else 4)
    return ["-" if v is None or math.isnan(v) else f"{v:.{places}f}" for v in values]


def best_cells(key: str, cells: Sequence[str], reference: Sequence[bool] | None = None) -> list[bool]:
    """Which cells hold the best value of metric ``key`` as shown (ties, after rounding, all win).

    Comparing the rounded cells, not the raw numbers, means a reader never sees two equal numbers
    with only one of them bold. Reference rows (the ground truth) are shown but never "best": GT
    is the bound the methods are measured against, not a competitor.
    """
    reference = reference or [False] * len(cells)
    shown = [None if cell == "-" or ref else float(cell) for cell, ref in zip(cells, reference, strict=True)]
    top = best(key, shown)
    return [top is not None and value == top for value in shown]


# -- rows from saved results ----------------------------------------------------------------------------
@dataclass
class Row:
    """One method of the table: its metrics (None = null), whether it is a reference row, and the
    edition its file was scored for ("2024", or "2025"/"2026" for MARS)."""

    name: str
    values: dict[str, float | None]
    reference: bool
    edition: str = "2024"


def edition_keys(edition: str) -> tuple[str, ...]:
    """The metric keys a result of ``edition`` may hold, in display order."""
    return METRIC_KEYS if edition == "2024" else MARS_METRIC_KEYS


def present_metrics(results: Sequence[dict[str, Any]], edition: str | None = None) -> tuple[str, ...]:
    """The keys (display order) that at least one result holds, null included: a MARS table shows MAE
    only for 2026 and the EEG rows only when EEG predictions were scored. ``edition`` defaults to
    the first result's."""
    if edition is None:
        edition = str(results[0].get("edition", "2024")) if results else "2024"
    keys = edition_keys(edition)
    if edition == "2024":
        return keys
    return tuple(k for k in keys if any(k in r for r in results))


def mars_title(result: dict[str, Any], what: str) -> str:
    """The title of a MARS table: edition, split, N, K, alignment, and a loud label when not official."""
    alignment = result.get("alignment", {}).get("mode", "?")
    title = (
        f"REACT {result.get('edition')} {what} (MARS), {result.get('split')} (N={result.get('N')}, "
        f"K={result.get('K')}), alignment {alignment}"
    )
    if not result.get("official", True):
        title += " - NON-OFFICIAL (no post-processor)"
    return title


def _number(path: Path, row: str, key: str, value: Any) -> float | None:
    """A metric value as a float, or None for null / NaN; anything else names the file and row."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise file_error(path, f"row '{row}': {key} is {json.dumps(value)}, expected a number or null")
    return None if math.isnan(value) else float(value)


def read_rows(path: Path) -> list[Row]:
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
    edition = str(data.get("edition", "2024"))
    if edition not in ("2024", "2025", "2026"):
        raise file_error(path, f"edition {json.dumps(data.get('edition'))}: expected 2024, 2025 or 2026")
    suffix = NON_OFFICIAL if data.get("official", True) is False else ""
    rows = []
    for name, values in raw.items():
        if not isinstance(values, dict):
            raise file_error(path, f"row '{name}' is {type(values).__name__}, expected an object of metrics")
        keys = [k for k in edition_keys(edition) if edition == "2024" or k in values]
        numbers = {key: _number(path, name, key, values.get(key)) for key in keys}
        rows.append(Row(f"{name}{suffix}", numbers, name in reference, edition))
    return rows


def collect_rows(files: list[Path], names: str | None = None) -> list[Row]:
    """Every file's rows in argument order; ``names`` ("a,b,...") renames them in that order.

    A name seen twice gets its file appended, so two runs both called "metrics" stay apart.
    """
    rows: list[Row] = []
    seen: set[str] = set()
    editions: dict[str, Path] = {}
    for path in files:
        for row in read_rows(path):
            editions.setdefault(row.edition, path)
            if len(editions) > 1:
                (a, first), (b, second) = list(editions.items())[:2]
                raise file_error(
                    second,
                    f"holds REACT {b} results, {first} REACT {a} ones: different data and protocols, "
                    "so one table cannot compare them",
                )
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


def default_metrics(rows: list[Row]) -> tuple[str, ...]:
    """The columns when ``--metrics`` is not given: REACT 2024's eight, or the MARS keys some row holds."""
    if not rows or rows[0].edition == "2024":
        return METRIC_KEYS
    return tuple(k for k in MARS_METRIC_KEYS if any(k in r.values for r in rows))


def default_title(rows: list[Row]) -> str:
    edition = rows[0].edition if rows else "2024"
    return "REACT 2024 metrics" if edition == "2024" else f"REACT {edition} metrics (MARS)"


def metrics_frame(rows: list[Row], metrics: tuple[str, ...]) -> pd.DataFrame:
    """One row per method, one float column per metric, NaN for null: the table every format shows."""
    import pandas as pd

    return pd.DataFrame(
        [[math.nan if r.values.get(k) is None else r.values[k] for k in metrics] for r in rows],
        index=pd.Index([r.name for r in rows], name="method"),
        columns=list(metrics),
        dtype="float64",
    )


# -- the terminal table ---------------------------------------------------------------------------------
def metrics_table(
    rows: dict[str, dict[str, Any]],
    title: str,
    metrics: Sequence[str] | None = None,
    digits: int | None = None,
    bold_best: bool = False,
    reference: Sequence[bool] | None = None,
) -> Any:
    """A rich table: one row per metric (arrow = better direction), one column per prediction set.

    Compact on purpose (no vertical rules, one precision per metric) so that the demo's eight
    columns fit an 80-column terminal without wrapping numbers. ``metrics`` picks and orders the
    rows (default: all, in the order of ``reactcli.vocab.METRICS``).
    """
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("metric", no_wrap=True)
    for name in rows:
        table.add_column(name, justify="right", no_wrap=True)
    for key in metrics or METRIC_KEYS:
        cells = format_metric([values.get(key) for values in rows.values()], digits)
        if bold_best:
            wins = best_cells(key, cells, reference)
            cells = [f"[bold]{c}[/bold]" if win else c for c, win in zip(cells, wins, strict=True)]
        table.add_row(f"{key} {metric(key).arrow}", *cells)
    return table


def to_text_table(table: Any) -> str:
    """A rich table as plain text, for ``--format table --out FILE`` (no colours, no wrapping)."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=1000, color_system=None, force_terminal=False).print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


# -- the paper formats ----------------------------------------------------------------------------------
def _cells(
    frame: pd.DataFrame, reference: list[bool], digits: int | None, bold_best: bool
) -> dict[str, list[tuple[str, bool]]]:
    """Per metric: each method's formatted cell and whether it is to be shown as the best."""
    columns: dict[str, list[tuple[str, bool]]] = {}
    for key in frame.columns:
        cells = format_metric([None if math.isnan(v) else float(v) for v in frame[key]], digits)
        wins = best_cells(key, cells, reference) if bold_best else [False] * len(cells)
        columns[key] = list(zip(cells, wins, strict=True))
    return columns


def to_markdown(frame: pd.DataFrame, reference: list[bool], digits: int | None, bold_best: bool) -> str:
    """A GitHub Markdown table: header with direction arrows, numbers right-aligned, best in **bold**."""
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

    Without ``digits`` every number is written in full (shortest round-trip form), so reading the
    file back gives exactly the numbers of the JSON files.
    """
    return frame.to_csv(
        index_label="method", na_rep="", lineterminator="\n", float_format=None if digits is None else f"%.{digits}f"
    )


def render_rows(
    rows: list[Row], fmt: TableFormat, metrics: tuple[str, ...], digits: int | None, bold_best: bool, title: str
) -> str:
    """The whole table as text in ``fmt`` (the terminal table as plain text): what ``--out`` writes."""
    check_format(fmt, bold_best)
    reference = [r.reference for r in rows]
    if fmt is TableFormat.table:
        return to_text_table(rows_table(rows, title, metrics, digits, bold_best))
    frame = metrics_frame(rows, metrics)
    if fmt is TableFormat.markdown:
        return to_markdown(frame, reference, digits, bold_best)
    if fmt is TableFormat.latex:
        return to_latex(frame, reference, digits, bold_best, title)
    return to_csv(frame, digits)


def rows_table(rows: list[Row], title: str, metrics: tuple[str, ...], digits: int | None, bold_best: bool) -> Any:
    """:func:`metrics_table` of saved rows (GT as a reference), for the terminal."""
    reference = [r.reference for r in rows]
    return metrics_table({r.name: r.values for r in rows}, title, metrics, digits, bold_best, reference)
