"""``react train-predictor``: stage 2, the cross-modal reaction predictor (torchrun-ready)."""

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
    collect_overrides,
)


def train_predictor(
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", help="Run folder for predictor.ckpt and predictor_last.ckpt.")],
    tokenizer: Annotated[
        Path | None, typer.Option("--tokenizer", help="tokenizer.ckpt from train-tokenizer (not needed with --resume).")
    ] = None,
    config: ConfigOption = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Total training steps.")] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the stopped run in --out from predictor_last.ckpt. Takes training.predictor_max_steps, "
            "val_every, log_every, tensorboard, compile and peak_tflops from the command line; every other setting "
            "(and the seed) from the checkpoint, and a changed audio/predictor/training setting is refused.",
        ),
    ] = False,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    set_: SetOption = None,
    tensorboard: TensorboardOption = False,
    threads: ThreadsOption = None,
    peak_tflops: PeakTflopsOption = None,
) -> None:
    """Train the reaction predictor; under torchrun every process trains a shard and rank 0 writes.

    The tokenizer's settings (tokenizer.*) come from its checkpoint: a file, variable or --set that
    gives another value is refused. Ctrl-C (or SIGTERM) stops after the step in progress and keeps
    predictor_last.ckpt for --resume.
    """
    apply_threads(threads)
    from rich.table import Table

    from reactcli.config import config_to_dict, load_config
    from reactcli.progress import console
    from reactcli.training.ddp import init_distributed, shutdown
    from reactcli.training.predictor_stage import RESUME_FROM_COMMAND_LINE
    from reactcli.training.predictor_stage import train_predictor as run
    from reactcli.vocab import PREDICTOR_CKPT, PREDICTOR_LAST_CKPT

    # an absent flag must not mask training.tensorboard from the file or environment
    training = {"predictor_max_steps": max_steps, "tensorboard": True if tensorboard else None,
                "peak_tflops": peak_tflops}
    base = None
    if tokenizer is not None and not resume:
        from reactcli.models.checkpoint import TOKENIZER_KIND, read_checkpoint, stored_config

        # the tokenizer section is the checkpoint's: the config may repeat it, not change it
        stored = stored_config(tokenizer, read_checkpoint(tokenizer, TOKENIZER_KIND))
        base = (str(tokenizer), {"tokenizer": config_to_dict(stored)["tokenizer"]})
    cfg = load_config(config, collect_overrides(set_, training=training), base=base, fixed=frozenset({"tokenizer"}))
    ctx = init_distributed(device)
    try:
        report = run(data, cfg, tokenizer, out, seed, ctx, resume=resume)
    finally:
        shutdown(ctx)
    if not ctx.is_main:
        return
    if resume:
        taken = ", ".join(f"training.{key}" for key in RESUME_FROM_COMMAND_LINE)
        console.print(f"resumed: {taken} from the command line, every other setting from the checkpoint")
    table = Table(title="reaction predictor")
    train_loss = f"train loss, mean of last {report.final_steps} step{'s' if report.final_steps != 1 else ''}"
    for col in ("parameters", "steps", train_loss, f"best {report.selected_by}", "best step", "valid codes", "time"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{report.parameters / 1e6:.2f} M",
        f"{report.start_step}->{report.steps}" if report.start_step else str(report.steps),
        f"{report.final_loss:.4f}", f"{report.best_val:.4f}", str(report.best_step), str(report.codes_valid),
        f"{report.seconds:.0f} s",
    )
    console.print(table)
    console.print(f"data: REACT {report.edition}, {report.samples} train samples")
    if not report.audio_causal:
        console.print("[bold yellow]offline model[/]: trained on the MARS release's audio-features (wav2vec2's "
                      "transformer sees the whole recording, so they are not causal); the checkpoints record "
                      "audio_causal = false")
    console.print("the train loss is the progress bar's last figure (cross-entropy + weighted emotion MSE); "
                  f"predictor.ckpt is the step with the lowest {report.selected_by} (a column of the log)")
    console.print(f"best checkpoint [bold]{out / PREDICTOR_CKPT}[/], last [bold]{out / PREDICTOR_LAST_CKPT}[/]")
    console.print(f"training log [bold]{report.log}[/], curves [bold]{report.curves}[/]")
