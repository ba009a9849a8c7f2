"""``react train-tokenizer``: stage 1, the FSQ face tokenizer (torchrun-ready)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import (
    ConfigOption,
    DataOption,
    DeviceOption,
    PeakTflopsOption,
    SeedOption,
    SetOption,
    TensorboardOption,
    ThreadsOption,
    apply_threads,
    build_config,
)


def train_tokenizer(
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", help="Run folder; tokenizer.ckpt is written there.")],
    config: ConfigOption = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Total training steps.")] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the stopped run in --out from tokenizer_last.ckpt. Takes training.tokenizer_max_steps, "
            "val_every, log_every, tensorboard, compile and peak_tflops from the command line; every other setting "
            "(and the seed) from the checkpoint, and a changed tokenizer/training setting is refused.",
        ),
    ] = False,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    set_: SetOption = None,
    tensorboard: TensorboardOption = False,
    threads: ThreadsOption = None,
    peak_tflops: PeakTflopsOption = None,
) -> None:
    """Train the FSQ face tokenizer; print reconstruction error per face part and codebook usage.

    Under torchrun every process trains a shard of each batch (DistributedDataParallel) and rank 0 writes.
    Ctrl-C (or SIGTERM) stops after the step in progress and keeps tokenizer_last.ckpt for --resume.
    """
    apply_threads(threads)
    from rich.table import Table

    from reactcli.progress import console
    from reactcli.training.ddp import init_distributed, shutdown
    from reactcli.training.tokenizer_stage import EMOTION_ONLY
    from reactcli.training.tokenizer_stage import train_tokenizer as run
    from reactcli.vocab import EMOTION_DIM, FACE_DIM, TOKENIZER_CKPT

    # an absent flag must not mask training.tensorboard from the file or environment
    training = {"tokenizer_max_steps": max_steps, "tensorboard": True if tensorboard else None,
                "peak_tflops": peak_tflops}
    cfg = build_config(config, set_, training=training)
    ctx = init_distributed(device)
    try:
        report = run(data, cfg, out, seed, ctx, resume=resume)
    finally:
        shutdown(ctx)
    if report is None:  # not rank 0 of a torchrun job
        return

    table = Table(title=f"tokenizer reconstruction ({report.split} split, L1 in raw 3DMM units)")
    table.add_column("face part")
    table.add_column("mean |error|", justify="right")
    for name, value in report.group_l1.items():
        table.add_row(name, f"{value:.4f}")
    table.add_row(f"[bold]all {FACE_DIM} dims[/]", f"[bold]{report.face_l1:.4f}[/]")
    table.add_row(f"[bold]emotion ({EMOTION_DIM})[/]", f"[bold]{report.emotion_l1:.4f}[/]")
    console.print(table)
    usage = Table(title="codebook usage (train split)")
    for col in ("codes", "used", "perplexity", "steps", "time"):
        usage.add_column(col, justify="right")
    usage.add_row(
        str(report.codebook_size), f"{report.codes_used_pct:.1f} %", f"{report.perplexity:.1f}",
        str(report.steps), f"{report.seconds:.0f} s",
    )
    console.print(usage)
    console.print(f"data: REACT {report.edition}, {report.recordings} train "
                  f"{'recordings' if report.edition != '2024' else 'clips (mirrored samples)'}")
    what = "emotion L1 alone" if report.final_phase == EMOTION_ONLY else "grouped 3DMM L1 + emotion L1"
    console.print(
        f"final train loss {report.final_loss:.4f}: the mean of the last {report.final_steps} step(s) (the progress "
        f"bar's figure), {what}; after step {report.emotion_only_from} only the emotion decoder trains"
    )
    console.print(f"tokenizer written to [bold]{out / TOKENIZER_CKPT}[/]")
    console.print(f"training log [bold]{report.log}[/], curves [bold]{report.curves}[/]")
