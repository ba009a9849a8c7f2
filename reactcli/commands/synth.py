"""``react synth``: write a synthetic dataset in the real REACT 2024 layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import SeedOption


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
) -> None:
    """Make a synthetic dataset with learnable speaker -> listener structure (see reactcli/data/synth.py)."""
    from reactcli.data.synth import make_synthetic_dataset
    from reactcli.progress import console, make_progress

    counts = {"train": train_pairs, "val": val_pairs, "test": test_pairs}
    with make_progress() as progress:
        task = progress.add_task("synth clips", total=sum(counts.values()), info="")
        rows = make_synthetic_dataset(
            out, counts, video=video, emotion_dirs=emotion_dirs, seed=seed, on_clip=lambda: progress.advance(task)
        )
    summary = ", ".join(f"{split} {len(r)} pairs ({2 * len(r)} samples)" for split, r in rows.items())
    console.print(f"synthetic dataset written to [bold]{out}[/]: {summary}")
