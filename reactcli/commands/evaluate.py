"""``react evaluate``: the seven REACT 2024 metrics of a prediction array, as a table and a JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import (
    DataOption,
    InceptionOption,
    PirenderOption,
    SplitOption,
    ThreadsOption,
    WorkersOption,
    apply_threads,
    check_writable,
)
from reactcli.errors import ReactError


def evaluate(
    data: DataOption,
    predictions: Annotated[
        Path, typer.Option("--predictions", help="(N, K, T, 25) .npy/.pt, or a react generate folder (emotion.npy).")
    ],
    split: SplitOption = "val",
    out: Annotated[Path | None, typer.Option("--out", help="Write the metrics as JSON here.")] = None,
    workers: WorkersOption = None,
    pirender: PirenderOption = None,
    inception: InceptionOption = None,
    realism_protocol: Annotated[
        str,
        typer.Option("--realism-protocol", help="FRRea frames: official-2024 (the baseline's subset) or all."),
    ] = "official-2024",
    realism_max_images: Annotated[
        int | None,
        typer.Option("--realism-max-images", min=2, help="FRRea on only the first N frames (a quick look)."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="FRRea: auto, cpu, cuda or cuda:N.")] = "auto",
    threads: ThreadsOption = None,
) -> None:
    """Score listener reactions with FRC, FRD, FRDiv, FRVar, FRDvs, FRSyn (+ FRSyn_all) and FRRea.

    Predictions are in the mirrored sample order of the split (rows as listed, then the roles
    swapped); T is cut to 750. FRD and FRC are sums over the K reactions, as in the official
    scripts. FRRea needs --pirender and --inception and a react generate folder (face3dmm.npy): it
    renders the protocol's frames into OUT's folder/fid/{real,fake} and scores them with the FID;
    without the two files it is null and the JSON says why.
    """
    apply_threads(threads)
    from reactcli.metrics.evaluate import evaluate_arrays, load_predictions, load_truth
    from reactcli.progress import console, err_console, make_progress
    from reactcli.tables import metrics_table

    if out is not None:
        check_writable(out)  # before FRD, not after it
    job = None
    if pirender is None and inception is None:
        realism_only = [flag for flag, given in (
            ("--realism-protocol", realism_protocol != "official-2024"),
            ("--realism-max-images", realism_max_images is not None),
            ("--device", device != "auto"),
        ) if given]  # fmt: skip
        if realism_only:
            raise ReactError(f"{', '.join(realism_only)}: for FRRea only, which needs --pirender and --inception")
    else:
        from reactcli.metrics.frrea import prepare_frrea
        from reactcli.runtime import resolve_device

        if pirender is None or inception is None:
            given, lacking = ("--pirender", "--inception") if inception is None else ("--inception", "--pirender")
            raise ReactError(f"{given} is for FRRea, which needs {lacking} too")
        if out is None:
            raise ReactError("FRRea writes its frames next to the metrics JSON: give --out metrics.json")
        job = prepare_frrea(data, split, predictions, pirender, inception, Path(out).parent / "fid",
                            realism_protocol, realism_max_images, resolve_device(device))  # fmt: skip
    if out is not None:  # a folder that cannot take the JSON fails now, not after FRD
        from reactcli.atomic import check_space

        check_space(out, 1 << 20)
    truth = load_truth(data, split)
    preds = load_predictions(predictions, truth)
    with make_progress() as progress:
        task = progress.add_task("FRD (DTW)", total=preds.shape[0], info="")
        result = evaluate_arrays(
            preds, truth, workers, on_frd_progress=lambda amount: progress.advance(task, amount)
        )
        if job is not None:
            from reactcli.metrics.frrea import merge_frrea, run_frrea

            frames = progress.add_task("FRRea frames (PIRender)", total=job.images, info=job.protocol)
            feats = progress.add_task("FRRea features (Inception)", total=2 * job.images, info="")
            realism = run_frrea(job, lambda n: progress.advance(frames, n), lambda n: progress.advance(feats, n))
            result = merge_frrea(result, realism)
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
