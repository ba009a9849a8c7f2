"""``react generate``: K online reactions per speaker, for a dataset split or for one clip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import DeviceOption, SeedOption, SetOption, ThreadsOption, apply_threads


def generate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="predictor.ckpt from train-predictor.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (dataset mode) or .npz file (single clip).")],
    data: Annotated[Path | None, typer.Option("--data", help="Dataset root (dataset mode).")] = None,
    split: Annotated[str, typer.Option("--split", help="val or test (dataset mode).")] = "val",
    speaker_audio: Annotated[Path | None, typer.Option("--speaker-audio", help="Speaker wav (single clip).")] = None,
    speaker_3dmm: Annotated[Path | None, typer.Option("--speaker-3dmm", help="Speaker 3DMM .npy.")] = None,
    speaker_emotion: Annotated[
        Path | None, typer.Option("--speaker-emotion", help="Speaker emotion CSV (single clip; models that take it).")
    ] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=1, help="Reactions per speaker.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="Sample among the k likeliest codes.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="Sampling temperature (> 0).")] = None,
    batch_clips: Annotated[
        int | None, typer.Option("--batch-clips", min=1, help="Clips generated together as one batch "
                                 "(dataset mode; default: by free memory on CUDA, 8 on CPU).")
    ] = None,
    set_: SetOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    threads: ThreadsOption = None,
) -> None:
    """Generate listener reactions frame by frame (strictly online) with the trained model.

    Dataset mode writes OUT/emotion.npy (N, K, 750, 25), OUT/face3dmm.npy (N, K, 751, 58) (raw 3DMM
    coefficients) in the mirrored sample order, and OUT/generation.json (how they were made), all at
    once: an older set in OUT is kept whole if the run fails. Single-clip mode writes an .npz with
    emotion (K, 751, 25) and face3dmm (K, 751, 58); the wav must match the 3DMM's 751 frames.
    """
    apply_threads(threads)
    from reactcli.commands.common import collect_overrides
    from reactcli.errors import ReactError
    from reactcli.runtime import resolve_device

    # The checkpoint's configuration is the base layer; only sampling (generation.*) can change
    # here, with the usual precedence: flags > --set > REACT_GENERATION__* environment variables.
    overrides = collect_overrides(set_, generation={"samples": samples, "top_k": top_k, "temperature": temperature})

    single = speaker_audio is not None or speaker_3dmm is not None
    if single and data is not None:
        raise ReactError("give either --data (dataset mode) or --speaker-audio/--speaker-3dmm (single clip), not both")
    if single and (speaker_audio is None or speaker_3dmm is None):
        raise ReactError("single-clip mode needs both --speaker-audio and --speaker-3dmm")
    if not single and data is None:
        raise ReactError("give --data ROOT (dataset mode) or --speaker-audio and --speaker-3dmm (single clip)")
    from reactcli.generate import generate_clip_file, generate_split
    from reactcli.progress import console

    dev = resolve_device(device)
    if single:
        meta = generate_clip_file(checkpoint, speaker_audio, speaker_3dmm, out, seed, dev, overrides, speaker_emotion)
        where = f"{meta['K']} reactions written to [bold]{out}[/]"
    else:
        meta = generate_split(checkpoint, data, split, out, seed, dev, overrides, batch_clips)
        where = f"{meta['N']} x {meta['K']} reactions written to [bold]{out}[/]"
    console.print(f"{where} (emotion {tuple(meta['emotion_shape'])}, face3dmm {tuple(meta['face3dmm_shape'])})")
