"""``react synth``: write a synthetic dataset in the real REACT 2024 layout (or MARS's, ``--edition``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import SeedOption
from reactcli.errors import ReactError


def synth(
    out: Annotated[Path, typer.Option("--out", help="Dataset root to create.")],
    train_pairs: Annotated[int, typer.Option("--train-pairs", min=0, help="Conversation rows in train.")] = 24,
    val_pairs: Annotated[
        int, typer.Option("--val-pairs", min=4, help="Rows in val (>= 4: it holds the 4 submission clips).")
    ] = 12,
    test_pairs: Annotated[int, typer.Option("--test-pairs", min=0, help="Rows in test.")] = 4,
    video: Annotated[str, typer.Option("--video", help="mp4, frames (PNG folders) or none.")] = "mp4",
    emotion_dirs: Annotated[str, typer.Option("--emotion-dirs", help="roles (Expert_video/P25...) or p1p2.")] = "roles",
    seed: SeedOption = 0,
    edition: Annotated[str, typer.Option("--edition", help="2024, or 2025/2026: a MARS-layout dataset.")] = "2024",
    dyads: Annotated[
        str | None, typer.Option("--dyads", help="MARS: dyads per split, TRAIN,VAL,TEST (default 4,2,2).")
    ] = None,
    sessions: Annotated[
        int | None, typer.Option("--sessions", help="MARS: scripted sessions each dyad records, 1-23 (default 4).")
    ] = None,
    frames: Annotated[
        str | None, typer.Option("--frames", help="MARS: recording lengths MIN-MAX at 30 fps (default 58-600).")
    ] = None,
    ideal_samples: Annotated[
        int,
        typer.Option(
            "--ideal-samples", min=0,
            help="Also write K draws of the ideal sampler per val/test sample (DATA/ideal_<split>/, a "
            "predictions folder react evaluate reads); 0 = none.",
        ),
    ] = 0,
) -> None:
    """Make a synthetic dataset with learnable speaker -> listener structure (see reactcli/data/synth.py)."""
    from reactcli.data.ideal import IdealSampler
    from reactcli.data.synth import make_synthetic_dataset
    from reactcli.progress import console, make_progress

    if edition != "2024":
        pairs = {"--train-pairs": (train_pairs, 24), "--val-pairs": (val_pairs, 12), "--test-pairs": (test_pairs, 4)}
        _refuse({**pairs, "--emotion-dirs": (emotion_dirs, "roles"), "--ideal-samples": (ideal_samples, 0)},
                f"--edition {edition}")
        _synth_mars(out, edition, dyads, sessions, frames, video, seed)
        return
    _refuse({"--dyads": (dyads, None), "--sessions": (sessions, None), "--frames": (frames, None)}, "--edition 2024")

    counts = {"train": train_pairs, "val": val_pairs, "test": test_pairs}
    ideal = IdealSampler(ideal_samples, seed) if ideal_samples else None
    with make_progress() as progress:
        task = progress.add_task("synth clips", total=sum(counts.values()), info="")
        rows = make_synthetic_dataset(
            out, counts, video=video, emotion_dirs=emotion_dirs, seed=seed, on_clip=lambda: progress.advance(task),
            on_split=ideal,
        )
    summary = ", ".join(f"{split} {len(r)} pairs ({2 * len(r)} samples)" for split, r in rows.items())
    console.print(f"synthetic dataset written to [bold]{out}[/]: {summary}")
    if ideal is not None and ideal.written:
        folders = ", ".join(f"{out}/{path.name}" for path in ideal.written.values())
        console.print(f"ideal sampler: K = {ideal_samples} draws per sample in {folders}")


def _refuse(options: dict[str, tuple[object, object]], edition: str) -> None:
    """Options (value, default) of the other edition's generator set to anything but their
    default are refused, never silently ignored."""
    given = [name for name, (value, default) in options.items() if value != default]
    if given:
        raise ReactError(f"{', '.join(given)}: not an option of the {edition} generator")


def _synth_mars(
    out: Path, edition: str, dyads: str | None, sessions: int | None, frames: str | None, video: str, seed: int
) -> None:
    from reactcli.data.synth_mars import DEFAULT_DYADS, DEFAULT_FRAMES, make_mars_dataset, parse_dyads, parse_frames
    from reactcli.progress import console, make_progress

    counts = DEFAULT_DYADS if dyads is None else parse_dyads(dyads)
    length = DEFAULT_FRAMES if frames is None else parse_frames(frames)
    n_sessions = 4 if sessions is None else sessions
    with make_progress() as progress:
        task = progress.add_task("synth recordings", total=sum(counts.values()) * n_sessions, info="")
        written = make_mars_dataset(
            out, edition, counts, n_sessions, length, video, seed, on_recording=lambda: progress.advance(task)
        )
    summary = ", ".join(f"{split} {len(r)} recordings" for split, r in written.items())
    console.print(f"synthetic MARS (REACT {edition}) dataset written to [bold]{out}[/]: {summary}")
