"""``react preprocess``: validate a dataset and fill the feature cache (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from reactcli.commands.common import ConfigOption, DataOption, DeviceOption, SeedOption, SetOption, build_config
from reactcli.errors import ReactError

if TYPE_CHECKING:
    from reactcli.data.cache import FeatureCache
    from reactcli.data.layout import DatasetLayout


def _source_mtime(layout: DatasetLayout, split: str, clip: str) -> float | None:
    """Newest modification time of a clip's source files (None if one is missing)."""
    try:
        sources = [layout.face3dmm(split, clip), layout.emotion(split, clip), layout.audio(split, clip)]
        return max(p.stat().st_mtime for p in sources)
    except (ReactError, OSError):
        return None


def _finished(path: Path, rows: int, cols: int | None, newer_than: float | None) -> bool:
    """A cache file counts as done only if it is a readable array of the right shape that is
    newer than its sources (a dataset regenerated in place must not reuse stale features)."""
    if newer_than is None or not path.is_file() or path.stat().st_mtime < newer_than:
        return False
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return False
    return array.ndim == 2 and array.shape[0] == rows and (cols is None or array.shape[1] == cols)


def preprocess(
    data: DataOption,
    config: ConfigOption = None,
    splits: Annotated[str, typer.Option("--splits", help="Comma-separated splits to check and cache.")] = "train,val",
    set_: SetOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
) -> None:
    """Check every clip (table of problems), compute train 3DMM mean/std, cache per-frame audio features."""
    from rich.table import Table

    from reactcli.atomic import save_npy
    from reactcli.data.cache import FeatureCache
    from reactcli.data.features import FeatureExtractor
    from reactcli.data.layout import CLIP_FRAMES, EMOTION_FRAMES, DatasetLayout, check_split, mirrored, read_pairs
    from reactcli.data.validate import Problem, check_clip, check_neighbours
    from reactcli.progress import console, make_progress
    from reactcli.runtime import resolve_device, seed_everything

    cfg = build_config(config, set_)
    seed_everything(seed)
    layout = DatasetLayout(data)
    cache = FeatureCache(data, cfg)
    extractor = FeatureExtractor(cfg.audio, str(resolve_device(device)))
    chosen = [check_split(s.strip()) for s in splits.split(",") if s.strip()]

    problems: list[Problem] = []
    jobs: list[tuple[str, str]] = []
    for split in chosen:
        try:
            samples = mirrored(read_pairs(layout.root, split))
        except ReactError as exc:
            problems.append(Problem(split, str(layout.root / f"{split}.csv"), str(exc).split(": ", 1)[-1]))
            continue
        problems += check_neighbours(layout, split, samples)
        clips = dict.fromkeys(c for s in samples for c in (s.speaker, s.listener))
        jobs += [(split, clip) for clip in clips]

    counts = {split: {"clips": 0, "cached": 0, "skipped": 0} for split in chosen}
    with make_progress() as progress:
        task = progress.add_task("preprocess clips", total=len(jobs), info="")
        for split, clip in jobs:
            counts[split]["clips"] += 1
            audio_path, face_path, emotion_path = cache.clip_paths(split, clip)
            source_time = _source_mtime(layout, split, clip)
            if (
                _finished(audio_path, CLIP_FRAMES, extractor.dim, source_time)
                and _finished(face_path, CLIP_FRAMES, 58, source_time)
                and _finished(emotion_path, EMOTION_FRAMES, 25, source_time)
            ):
                counts[split]["skipped"] += 1
                progress.advance(task)
                continue
            clip_problems, loaded = check_clip(layout, split, clip)
            problems += clip_problems
            if not clip_problems:
                save_npy(face_path, loaded["face"])
                save_npy(emotion_path, loaded["emotion"])
                save_npy(audio_path, extractor(loaded["wave"], int(loaded["rate"])))
                counts[split]["cached"] += 1
            progress.update(task, advance=1, info=f"{len(problems)} problems")

    if "train" in chosen and not any(p.split == "train" for p in problems):
        _write_face_stats(cache, [clip for split, clip in jobs if split == "train"])

    summary = Table(title=f"preprocess {layout.root} ({extractor.tag})")
    for column in ("split", "clips", "cached now", "already cached", "problems"):
        summary.add_column(column, justify="right" if column != "split" else "left")
    for split, c in counts.items():
        n_problems = sum(p.split == split for p in problems)
        summary.add_row(split, str(c["clips"]), str(c["cached"]), str(c["skipped"]), str(n_problems))
    console.print(summary)
    if problems:
        table = Table(title="problems", show_lines=False)
        table.add_column("split")
        table.add_column("file", overflow="fold")
        table.add_column("problem", overflow="fold")
        for p in problems:
            table.add_row(p.split, p.path, p.problem)
        console.print(table)
        raise ReactError(f"{layout.root}: {len(problems)} problem(s) found (see the table above); fix them and rerun")
    if "train" in chosen:
        console.print(f"train 3DMM statistics: {cache.face_stats()}")


def _write_face_stats(cache: FeatureCache, clips: list[str]) -> None:
    """Mean/std over every frame of every train clip, accumulated in float64."""
    from reactcli.atomic import atomic_path

    total = np.zeros(58)
    total_sq = np.zeros(58)
    count = 0
    for clip in clips:
        face = cache.load(cache.face3dmm("train", clip)).astype(np.float64)
        total += face.sum(0)
        total_sq += (face * face).sum(0)
        count += len(face)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    with atomic_path(cache.face_stats()) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, mean=mean.astype(np.float32), std=std.astype(np.float32), frames=count)
