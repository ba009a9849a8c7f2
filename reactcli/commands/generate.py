"""``react generate``: K online reactions per speaker, for a dataset split or for one clip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import (
    BidirectionalOption,
    DeviceOption,
    EditionOption,
    SeedOption,
    SetOption,
    ThreadsOption,
    apply_threads,
)


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
                                 "(dataset mode; default: by free memory on CUDA, 24 on CPU).")
    ] = None,
    results_pt: Annotated[
        Path | None, typer.Option("--results-pt", help="MARS: also write the organisers' test-stage results.pt "
                                  "(PRED, AU rounded).")
    ] = None,
    edition: EditionOption = None,
    bidirectional: BidirectionalOption = None,
    set_: SetOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    threads: ThreadsOption = None,
) -> None:
    """Generate listener reactions frame by frame (strictly online) with the trained model.

    Dataset mode, REACT 2024: OUT/emotion.npy (N, K, 750, 25), OUT/face3dmm.npy (N, K, 751, 58) (raw
    3DMM coefficients) in the mirrored sample order, and OUT/generation.json (how they were made).
    REACT 2025/2026 (a MARS root): a ragged set, one (K, L_i, 25) + (K, L_i, 58) block per sample
    (L_i the input's facial-attributes length, 30 fps) in the official sorted order, named by the
    input recordings; --results-pt also writes the organisers' results.pt. Either is written at
    once: an older set in OUT is kept whole if the run fails. Single-clip mode (REACT 2024) writes
    an .npz with emotion (K, 751, 25) and face3dmm (K, 751, 58); the wav must match the 3DMM's 751 frames.
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
    mars_options = {
        "--results-pt": results_pt, "--edition": edition, "--bidirectional/--no-bidirectional": bidirectional
    }
    from reactcli.generate import generate_clip_file, generate_split
    from reactcli.progress import console

    dev = resolve_device(device)
    if single:
        _refuse(mars_options, "single-clip mode (REACT 2024)")
        meta = generate_clip_file(checkpoint, speaker_audio, speaker_3dmm, out, seed, dev, overrides, speaker_emotion)
        where = f"{meta['K']} reactions written to [bold]{out}[/]"
    else:
        from reactcli.editions import detect_edition
        from reactcli.errors import file_error

        if not data.is_dir():
            raise file_error(data, "--data: dataset root not found")
        try:
            mars = detect_edition(data, edition).is_mars
        except ReactError:
            mars = edition is None  # a MARS root that cannot tell 2025 from 2026: its index decides
            if not mars:
                raise
        if mars:
            _generate_mars(checkpoint, data, split, out, seed, dev, overrides, batch_clips, edition, bidirectional,
                           results_pt)
            return
        _refuse(mars_options, f"{data} is REACT 2024")
        meta = generate_split(checkpoint, data, split, out, seed, dev, overrides, batch_clips)
        where = f"{meta['N']} x {meta['K']} reactions written to [bold]{out}[/]"
    console.print(f"{where} (emotion {tuple(meta['emotion_shape'])}, face3dmm {tuple(meta['face3dmm_shape'])})")


def _refuse(options: dict[str, object], why: str) -> None:
    from reactcli.errors import ReactError

    given = [flag for flag, value in options.items() if value is not None]
    if given:
        raise ReactError(f"{', '.join(given)}: for MARS datasets (REACT 2025/2026) only; {why}")


def _generate_mars(
    checkpoint: Path, data: Path, split: str, out: Path, seed: int, dev: object, overrides: dict,
    batch_clips: int | None, edition: str | None, bidirectional: bool | None, results_pt: Path | None,
) -> None:
    from reactcli.generate_mars import generate_mars_split
    from reactcli.progress import console

    done = generate_mars_split(checkpoint, data, split, out, seed, dev, overrides, batch_clips, edition,
                               bidirectional, results_pt)  # fmt: skip
    rec = done.record
    frames = rec["emotion_frames"]
    direction = "both directions" if rec["bidirectional"] else "speaker -> listener"
    console.print(
        f"{rec['N']} x {rec['K']} reactions written to [bold]{out}[/] (REACT {rec['edition']} {split}, {direction}, "
        f"{min(frames)}-{max(frames)} frames at {rec['fps']} fps, {rec['layout']}; raw 3DMM)"
    )
    if rec["mode"] == "offline":
        console.print(
            f"[yellow]offline[/]: the model reads the release's audio-features (audio.encoder = "
            f"'{rec['audio_encoder']}'), whose wav2vec2 transformer saw each whole recording; these reactions are "
            "not online, whatever the stream"
        )
    else:
        console.print("online: every frame from the speaker's frames up to it (causal audio features)")
    if rec.get("personality"):
        console.print(f"personalised: {rec['personality']}")
    if rec.get("history"):
        console.print(f"history: {rec['history']}")
    console.print(f"{done.frames} input frames in {done.seconds:.1f} s: {done.realtime_factor:.1f}x real time "
                  f"(K = {rec['K']} reactions each)")
    if done.results_pt is not None:
        console.print(f"results.pt (the organisers' test-stage layout, AU rounded): [bold]{done.results_pt}[/]")
