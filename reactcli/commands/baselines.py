"""``react baselines``: GT, Mime, Random, MeanSeq and MeanFr scored with every metric, as one table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import DataOption, SeedOption, SplitOption
from reactcli.commands.evaluate import WorkersOption, metrics_table


def baselines(
    data: DataOption,
    split: SplitOption = "val",
    out: Annotated[Path | None, typer.Option("--out", help="Write every row's metrics as JSON here.")] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Reactions per speaker (K).")] = 10,
    seed: SeedOption = 0,
    workers: WorkersOption = None,
) -> None:
    """Score the naive rows the challenge reports next to every model (K copies each).

    Mime is the speaker's own emotion without a lag; MeanSeq and MeanFr are the per-frame and
    global means of the train split's emotion (left out, with the reason, if it has none).
    """
    from reactcli.errors import ReactError
    from reactcli.metrics.baselines import BASELINE_NAMES, baseline_predictions, train_emotion
    from reactcli.metrics.evaluate import evaluate_arrays, load_truth
    from reactcli.progress import console, err_console, make_progress

    truth = load_truth(data, split)
    try:
        train = train_emotion(data)
        skipped = None
    except ReactError as exc:
        train, skipped = None, str(exc)
    rows: dict[str, dict] = {}
    with make_progress() as progress:
        for name in BASELINE_NAMES:
            if train is None and name in ("MeanSeq", "MeanFr"):
                continue
            preds = baseline_predictions(name, truth.listener, truth.speaker, samples, seed, train)
            task = progress.add_task(f"{name}: FRD", total=preds.shape[0], info="")
            rows[name] = evaluate_arrays(
                preds, truth, workers, on_frd_progress=lambda amount, t=task: progress.advance(t, amount)
            )
    n = truth.listener.shape[0]
    console.print(metrics_table(rows, f"REACT 2024 baselines, {split} (N={n}, K={samples})"))
    if skipped:
        err_console.print(f"[yellow]MeanSeq and MeanFr left out: {skipped}[/yellow]")
    if out is not None:
        from reactcli.atomic import save_json

        payload = {"split": split, "N": n, "K": samples, "seed": seed, "rows": rows}
        if skipped:
            payload["skipped"] = {"MeanSeq": skipped, "MeanFr": skipped}
        save_json(out, payload)
        err_console.print(f"wrote {out}")
