"""``react compare``: one table from saved ``metrics.json`` / ``baselines.json`` files.

Researchers compare runs long after evaluating them; recomputing FRD for a table is wasteful, and
the JSON files already hold every metric.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    from reactcli.errors import file_error

    if not path.is_file():
        raise file_error(path, "metrics file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise file_error(path, f"not a JSON file ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("rows"), dict):  # react baselines
        return {name: values for name, values in data["rows"].items() if isinstance(values, dict)}
    if isinstance(data, dict) and "FRC" in data:  # react evaluate
        name = path.parent.name if path.stem == "metrics" and path.parent.name else path.stem
        return {name: data}
    raise file_error(path, "expected the JSON written by `react evaluate` or `react baselines`")


def compare(
    files: Annotated[list[Path], typer.Argument(help="metrics.json / baselines.json files, in column order.")],
    title: Annotated[str, typer.Option("--title", help="Table title.")] = "REACT 2024 metrics",
) -> None:
    """Print the metrics of several runs and baselines side by side, from their JSON files."""
    from reactcli.commands.evaluate import metrics_table
    from reactcli.progress import console

    rows: dict[str, dict[str, Any]] = {}
    for path in files:
        for name, values in _rows(path).items():
            rows[name if name not in rows else f"{name} ({path})"] = values
    console.print(metrics_table(rows, title))
