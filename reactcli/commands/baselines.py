"""``react baselines``: GT, Mime, Random, MeanSeq, MeanFr and Ridge scored with every metric, as one table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import (
    ConfigOption,
    DataOption,
    SeedOption,
    SetOption,
    SplitOption,
    ThreadsOption,
    WorkersOption,
    apply_threads,
    build_config,
    check_writable,
)
from reactcli.metrics.ridge import DEFAULT_ALPHA, DEFAULT_LOOKBACK, DEFAULT_STEP


def baselines(
    data: DataOption,
    split: SplitOption = "val",
    out: Annotated[Path | None, typer.Option("--out", help="Write every row's metrics as JSON here.")] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", min=1, help="Reactions per speaker (K; default generation.samples).")
    ] = None,
    seed: SeedOption = 0,
    workers: WorkersOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    ridge_lookback: Annotated[
        int, typer.Option("--ridge-lookback", min=1, help="Ridge: frames of speaker history (<= t) it reads.")
    ] = DEFAULT_LOOKBACK,
    ridge_step: Annotated[int, typer.Option("--ridge-step", min=1, help="Ridge: frames between lags.")] = DEFAULT_STEP,
    ridge_alpha: Annotated[
        float, typer.Option("--ridge-alpha", help="Ridge: strength per training frame (> 0).")
    ] = DEFAULT_ALPHA,
    threads: ThreadsOption = None,
) -> None:
    """Score the naive rows the challenge reports next to every model (K copies each).

    Mime is the speaker's own emotion without a lag; MeanSeq and MeanFr are the per-frame and
    global means of the train split's emotion; Ridge is a causal linear regression fitted on the
    train split from the speaker's emotion and audio features (the preprocess cache of --config's
    audio settings) over the last --ridge-lookback frames. A row whose inputs are missing is left
    out with the reason.
    """
    apply_threads(threads)
    from reactcli.errors import ReactError
    from reactcli.metrics.baselines import EMOTION_BASELINES, baseline_predictions, train_emotion
    from reactcli.metrics.evaluate import evaluate_arrays, load_truth
    from reactcli.metrics.ridge import ridge_from_cache, ridge_predictions
    from reactcli.progress import console, err_console, make_progress
    from reactcli.tables import metrics_table

    if ridge_alpha <= 0:
        raise ReactError(f"--ridge-alpha {ridge_alpha}: the ridge strength must be > 0")
    cfg = build_config(config, set_, generation={"samples": samples})
    samples = cfg.generation.samples
    if out is not None:
        check_writable(out)  # before fitting and scoring every row, not after
    truth = load_truth(data, split)
    skipped: dict[str, str] = {}
    try:
        train = train_emotion(data)
    except ReactError as exc:
        train = None
        skipped.update({"MeanSeq": str(exc), "MeanFr": str(exc)})
    predictions = {
        name: lambda name=name: baseline_predictions(name, truth.listener, truth.speaker, samples, seed, train)
        for name in EMOTION_BASELINES if name not in skipped
    }
    try:
        ridge = ridge_from_cache(data, cfg, ridge_lookback, ridge_step, ridge_alpha)
        predictions["Ridge"] = lambda: ridge_predictions(ridge, data, split, cfg, samples)
    except ReactError as exc:
        skipped["Ridge"] = f"{exc} (run `react preprocess --splits train,{split}` first)"
    rows: dict[str, dict] = {}
    with make_progress() as progress:
        for name, make in predictions.items():
            try:
                preds = make()
            except ReactError as exc:
                skipped[name] = str(exc)
                continue
            task = progress.add_task(f"{name}: FRD", total=preds.shape[0], info="")
            rows[name] = evaluate_arrays(
                preds, truth, workers, on_frd_progress=lambda amount, t=task: progress.advance(t, amount)
            )
    n = truth.listener.shape[0]
    console.print(metrics_table(rows, f"REACT 2024 baselines, {split} (N={n}, K={samples})"))
    for name, reason in skipped.items():
        err_console.print(f"{name} left out: {reason}", markup=False, highlight=False)
    if out is not None:
        from reactcli.atomic import save_json

        payload = {"split": split, "N": n, "K": samples, "seed": seed, "rows": rows}
        if "Ridge" in rows:
            payload["ridge"] = {"lookback": ridge_lookback, "step": ridge_step, "alpha": ridge_alpha,
                                "audio": cfg.audio.encoder}
        if skipped:
            payload["skipped"] = skipped
        save_json(out, payload)
        err_console.print(f"wrote {out}")
