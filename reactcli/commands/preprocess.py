"""``react preprocess``: validate a dataset and fill the feature cache (resumable).

The edition comes from the root's folders (``reactcli/editions.py``): a REACT 2024 root is checked
clip by clip and its audio features computed; a MARS root (2025/2026) is checked recording by
recording, its junk and unpaired recordings listed and its arrays cached (``data/preprocess_mars.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reactcli.commands.common import (
    ConfigOption,
    DataOption,
    SeedOption,
    SetOption,
    ThreadsOption,
    apply_threads,
    build_config,
)
from reactcli.errors import ReactError

if TYPE_CHECKING:
    from reactcli.config import ReactConfig
    from reactcli.editions import Edition

#: At most this many notes are printed; the index keeps every one.
MAX_NOTES_SHOWN = 50


def preprocess(
    data: DataOption,
    config: ConfigOption = None,
    splits: Annotated[str, typer.Option("--splits", help="Comma-separated splits to check and cache.")] = "train,val",
    edition: Annotated[
        str | None,
        typer.Option("--edition", help="2024, 2025 or 2026; needed only for a MARS root without EEG or personality."),
    ] = None,
    set_: SetOption = None,
    seed: SeedOption = 0,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N (2024 audio features; default auto).")
    ] = None,
    threads: ThreadsOption = None,
) -> None:
    """Check every clip or recording (table of problems), compute train 3DMM mean/std, fill the cache."""
    apply_threads(threads)
    from rich.table import Table

    from reactcli.data.preprocess import preprocess_dataset
    from reactcli.editions import detect_edition
    from reactcli.progress import console, print_problems
    from reactcli.runtime import resolve_device, seed_everything

    cfg = build_config(config, set_)
    seed_everything(seed)
    chosen = [s.strip() for s in splits.split(",") if s.strip()]
    found = detect_edition(data, edition)
    if found.is_mars:
        if device is not None:
            raise ReactError(f"--device {device}: MARS preprocessing computes no features (the release ships them)")
        _preprocess_mars(data, cfg, chosen, found)
        return
    result = preprocess_dataset(data, cfg, chosen, str(resolve_device(device or "auto")))

    summary = Table(title=f"preprocess {result.root} ({result.feature_tag})")
    for column in ("split", "clips", "cached now", "already cached", "problems"):
        summary.add_column(column, justify="right" if column != "split" else "left")
    for split, c in result.counts.items():
        n_problems = sum(p.split == split for p in result.problems)
        summary.add_row(split, str(c.clips), str(c.cached), str(c.skipped), str(n_problems))
    console.print(summary)
    if result.problems:
        print_problems("problems", [(p.split, p.path, p.problem) for p in result.problems])
        raise ReactError(f"{result.root}: {len(result.problems)} problem(s) found (listed above); fix them and rerun")
    if result.face_stats is not None:
        console.print(f"train 3DMM statistics: {result.face_stats}")


def _preprocess_mars(data: Path, cfg: ReactConfig, chosen: list[str], edition: Edition) -> None:
    """Run the MARS stage and print its tables: summary, junk, unpaired recordings, notes, problems."""
    from rich.table import Table

    from reactcli.data.preprocess_mars import preprocess_mars
    from reactcli.progress import console, print_problems

    result = preprocess_mars(data, cfg, chosen, edition)
    direction = "both directions" if edition.bidirectional else "speaker -> listener"
    summary = Table(title=f"preprocess {result.root} (MARS, REACT {edition.name}, {edition.fps} fps)")
    columns = ("split", "recordings", f"samples ({direction})", "cached now", "already cached", "junk skipped")
    for column in (*columns, "unpaired", "notes", "problems"):
        summary.add_column(column, justify="right" if column != "split" else "left")
    for split, c in result.counts.items():
        n_notes = sum(p.split == split for p in result.notes)
        n_problems = sum(p.split == split for p in result.problems)
        row = (c.recordings, c.samples, c.cached, c.skipped, c.junk, c.unpaired, n_notes, n_problems)
        summary.add_row(split, *(str(v) for v in row))
    console.print(summary)
    if result.junk:
        print_problems("skipped, not recordings (remove them)", [(p.split, p.path, p.problem) for p in result.junk])
    if result.unpaired:
        print_problems("recordings without their dyad partner", [(p.split, p.path, p.problem) for p in result.unpaired])
    if result.notes:
        shown = result.notes[:MAX_NOTES_SHOWN]
        print_problems("notes (handled as the official loaders do)", [(p.split, p.path, p.problem) for p in shown])
        if len(result.notes) > len(shown):
            console.print(f"... and {len(result.notes) - len(shown)} more notes, all kept in each split's index.json")
    if result.problems:
        print_problems("problems", [(p.split, p.path, p.problem) for p in result.problems])
        raise ReactError(f"{result.root}: {len(result.problems)} problem(s) found (listed above); fix them and rerun")
    for split, path in result.indexes.items():
        console.print(f"{split} index: {path}")
    if result.face_stats is not None:
        console.print(
            f"train 3DMM statistics: {result.face_stats} (the organisers' MARS loaders normalise with the 2024 "
            "mean_face/std_face instead: reactcli/resources/face_stats_react2024.npz)"
        )
