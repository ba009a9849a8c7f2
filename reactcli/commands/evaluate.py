"""``react evaluate``: the seven REACT 2024 metrics of a prediction array, as a table and a JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from reactcli.commands.common import DataOption, SplitOption

WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Threads for FRD (default: all CPU cores).")
]


def metrics_table(rows: dict[str, dict[str, Any]], title: str) -> Any:
    """A rich table: one row per metric (arrow = better direction), one column per prediction set.

    Compact on purpose (no vertical rules, 2 decimals from 10 up) so that the demo's eight columns
    fit an 80-column terminal without wrapping numbers.
    """
    from rich import box
    from rich.table import Table

    from reactcli.metrics.evaluate import METRIC_KEYS

    higher = {"FRC", "FRDiv", "FRVar", "FRDvs"}
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("metric", no_wrap=True)
    for name in rows:
        table.add_column(name, justify="right", no_wrap=True)
    for key in METRIC_KEYS:
        cells = []
        for values in rows.values():
            value = values.get(key)
            cells.append("-" if value is None else f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}")
        table.add_row(f"{key} {'↑' if key in higher else '↓'}", *cells)
    return table


def evaluate(
    data: DataOption,
    predictions: Annotated[
        Path, typer.Option("--predictions", help="(N, K, T, 25) .npy/.pt, or a react generate folder (emotion.npy).")
    ],
    split: SplitOption = "val",
    out: Annotated[Path | None, typer.Option("--out", help="Write the metrics as JSON here.")] = None,
    workers: WorkersOption = None,
) -> None:
    """Score listener reactions with FRC, FRD, FRDiv, FRVar, FRDvs, FRSyn (+ FRSyn_all) and FRRea.

    Predictions are in the mirrored sample order of the split (rows as listed, then the roles
    swapped); T is cut to 750. FRD and FRC are sums over the K reactions, as in the official
    scripts. FRRea is null unless its optional FID requirements are met (the JSON says why).
    """
    from reactcli.data.layout import read_pairs
    from reactcli.metrics.evaluate import evaluate_arrays, load_predictions, load_truth, validate_predictions
    from reactcli.progress import console, err_console, make_progress

    truth = load_truth(data, split)
    rows = len(read_pairs(data, split))
    raw = load_predictions(predictions)
    preds = validate_predictions(raw, truth.listener.shape[0], rows, predictions)
    del raw
    with make_progress() as progress:
        task = progress.add_task("FRD (DTW)", total=preds.shape[0], info="")
        result = evaluate_arrays(
            preds, truth, workers, on_frd_progress=lambda amount: progress.advance(task, amount)
        )
    title = f"REACT 2024 metrics, {split} (N={result['N']}, K={result['K']})"
    console.print(metrics_table({Path(predictions).name or str(predictions): result}, title))
    for key, note in result["notes"].items():
        err_console.print(f"{key}: {note}", style="dim", markup=False)
    times = ", ".join(f"{k} {v:.2f}s" for k, v in result["timings"].items() if k != "FRSyn_all")
    err_console.print(f"[dim]wall time: {times}[/dim]")
    if out is not None:
        from reactcli.atomic import save_json

        save_json(out, result)
        err_console.print(f"wrote {out}")
